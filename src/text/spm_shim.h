// The C ABI of librecap_spm.so, the one place sentencepiece is linked (spm_shim.cpp).
// Debian's libsentencepiece.so.0 embeds and exports its own protobuf-lite, which collides with
// the system libprotobuf that libtorch loads (docs/ARCHITECTURE.md); so recap never links it,
// and tokenizer.cpp dlmopen()s this shim into a link-map namespace of its own instead, with its
// own libc and libstdc++. Hence only C types cross the boundary: no C++ object, exception or
// allocation is shared between the two sides.
//
// Conventions: functions returning int give 0 on success; on failure they return nonzero and,
// when `error` is not null, set *error to a message. Every buffer handed out (*error, model
// bytes, ids, text) is malloc'd by the shim and released with recap_spm_free.
#pragma once
#include <stddef.h>

#ifdef __cplusplus
extern "C" {
#endif

// Bumped whenever a signature below changes, so a stale shim is refused rather than misused.
#define RECAP_SPM_ABI_VERSION 1

typedef struct recap_spm recap_spm;  // a loaded model (a SentencePieceProcessor)

int recap_spm_abi_version(void);
void recap_spm_free(void* p);

// Trains on `count` sentences (texts[i] of lengths[i] bytes) with sentencepiece's own
// "--key=value ..." trainer arguments; `seed` seeds sentencepiece's process-wide generator.
// The serialized ModelProto goes to *model / *model_len.
int recap_spm_train(const char* const* texts, const size_t* lengths, size_t count,
                    const char* args, unsigned seed, char** model, size_t* model_len,
                    char** error);

// Parses serialized model bytes; null on failure (with *error set).
recap_spm* recap_spm_load(const char* model, size_t model_len, char** error);
void recap_spm_close(recap_spm* spm);

int recap_spm_encode(const recap_spm* spm, const char* text, size_t text_len, int** ids,
                     size_t* count, char** error);
int recap_spm_decode(const recap_spm* spm, const int* ids, size_t count, char** text,
                     size_t* text_len, char** error);

int recap_spm_vocab_size(const recap_spm* spm);
// The id of `piece`, or -1 when the vocabulary has no such piece.
int recap_spm_piece_to_id(const recap_spm* spm, const char* piece, size_t piece_len);
// The piece for `id`, owned by `spm` (valid until recap_spm_close); null when out of range.
const char* recap_spm_id_to_piece(const recap_spm* spm, int id, size_t* piece_len);
// Sentencepiece's meta ids in the order pad, unk, bos, eos (-1 where the model has none).
void recap_spm_meta_ids(const recap_spm* spm, int ids[4]);

#ifdef __cplusplus
}
#endif
