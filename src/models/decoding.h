// Caption decoding: batched greedy, beam search and nucleus sampling over a Captioner, all
// starting from the prompt [BOS, style] and using the decoder's KV caches, so each step feeds
// only the newest token. Same model, images and options give the same tokens (sampling draws
// from a generator seeded by the options, never the global one).
#pragma once
#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include <nlohmann/json.hpp>

#include "core/torch_pch.h"
#include "models/captioner.h"
#include "text/tokenizer.h"

namespace recap::models {

enum class DecodeMethod { kGreedy, kBeam, kNucleus };
std::string to_string(DecodeMethod method);               // "greedy", "beam", "nucleus"
DecodeMethod parse_decode_method(std::string_view name);  // recap::Error on unknown names

struct DecodeOptions {
  DecodeMethod method = DecodeMethod::kGreedy;
  int64_t beam_width = 4;
  double top_p = 0.9;           // nucleus: smallest set of tokens with this much probability
  double temperature = 1.0;     // nucleus: logits are divided by it first
  int64_t max_length = 0;       // tokens including the prompt and EOS; 0: the model's
  uint64_t seed = 0;            // nucleus generator seed
  double length_penalty = 1.0;  // beam: hypotheses rank by log-prob / length^length_penalty

  nlohmann::json to_json() const;  // every field, for the provenance of recaptions
};

// Per image, the generated tokens after the prompt, ending with EOS when the model emitted one
// before max_length. The model is switched to eval mode for the call and restored after.
// recap::Error on options out of range.
std::vector<std::vector<int>> decode(Captioner& model, const torch::Tensor& images,
                                     CaptionStyle style, const DecodeOptions& options);

// One nucleus draw per row of logits [B, V] -> token ids [B] (long): softmax(logits /
// temperature) restricted to the smallest top set of at least top_p mass (never empty, so
// top_p -> 0 is argmax), one uniform per row from `generator`, drawn on the CPU so devices
// agree.
torch::Tensor sample_top_p(const torch::Tensor& logits, double top_p, double temperature,
                           at::Generator& generator);

std::vector<std::string> decode_text(const text::Tokenizer& tokenizer,
                                     const std::vector<std::vector<int>>& tokens);

}  // namespace recap::models
