// One harness per parser of outside input, shared by the libFuzzer targets (fuzz_<name>,
// built from fuzz_target.cpp with RECAP_FUZZ) and the regression tests
// (tests/test_fuzz_regressions.cpp; recap_tests compiles this file too), so a reproducer
// replays through exactly the code the fuzzer ran.
//
// A harness feeds `data` to the parser the way recap reads such input and returns when the
// parser accepts it or refuses it with recap::Error. Everything else is a finding: another
// exception type escaping (a std::logic_error from a failed check below included), a crash, a
// sanitizer report, a timeout.
#pragma once
#include <string>
#include <string_view>
#include <utility>
#include <vector>

namespace recap::fuzz {

// Safetensors::parse, every tensor's bytes, and the writer's round trip of what parsed.
void safetensors(std::string_view data);
// `data` as a tar shard (plain or compressed) through open_source with broken shards rejected,
// as the loader reads one.
void shard(std::string_view data);
// Format sniffing, header reading, the truncation check and decode_image, then a resize.
void image(std::string_view data);
// `data` as an image folder's captions.jsonl, in a folder holding image_folder_files().
void image_folder(std::string_view data);
// `data` as a manifest beside image_folder_files(): as manifest.csv and as manifest.jsonl
// (data::ManifestSource), with the default caption field and with "re_caption".
void manifest(std::string_view data);
// `data` as the files of a sidecar folder (data::SidecarFolderSource): records separated by
// NUL bytes, each a relative name, a newline, and the file's bytes (sidecar_folder_seed()
// builds one), written beside a fixed a.png and a symlink leaving the folder.
void sidecar_folder(std::string_view data);
// `data` as a JSONL file: read_jsonl, then as a recaption sidecar (stages::load_recaptions).
void jsonl(std::string_view data);
// `data` as one line of a prompt file: world::prompt_from_json.
void prompt(std::string_view data);
// TOML up to the first NUL byte, then one `--set` override per line; what loads must survive
// to_toml and load again to the same values.
void config(std::string_view data);
// data::check_caption, the UTF-8 checks, and the world's caption parser.
void caption(std::string_view data);

// The files the image_folder harness puts next to its captions.jsonl (relative paths), for
// seeds that name them: a.png, b.jpg, sub/c.png, a directory and a symlink leaving the folder.
const std::vector<const char*>& image_folder_files();
// Files as the sidecar_folder harness reads them: {name, bytes} pairs.
std::string sidecar_folder_seed(const std::vector<std::pair<std::string, std::string>>& files);

}  // namespace recap::fuzz
