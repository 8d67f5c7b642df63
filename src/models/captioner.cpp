#include "core/torch_pch.h"
#include "models/captioner.h"

#include <algorithm>
#include <optional>

#include <fmt/format.h>
#include <fmt/ranges.h>

#include "core/error.h"

namespace recap::models {

namespace {

using text::Tokenizer;

void check(const CaptionerOptions& o) {
  if (o.vocab_size <= Tokenizer::kLong)
    throw Error(fmt::format("captioner: vocab_size {} leaves no room past the special ids",
                            o.vocab_size));
  if (o.max_length < kPromptLength + 1)
    throw Error(fmt::format("captioner: max_length {} is shorter than BOS, style and EOS",
                            o.max_length));
  if (o.dim <= 0 || o.heads <= 0 || o.dim % o.heads != 0)
    throw Error(fmt::format("captioner: dim {} is not divisible by {} heads", o.dim, o.heads));
  if (o.layers <= 0 || o.encoder_layers < 0)
    throw Error(fmt::format("captioner: needs layers > 0 and encoder_layers >= 0 (got {}, {})",
                            o.layers, o.encoder_layers));
  const int64_t stride = o.vision.stride;
  if (o.grid <= 0 || stride <= 0 || o.image_size % stride != 0 ||
      (o.image_size / stride) % o.grid != 0)
    throw Error(fmt::format("captioner: image_size {} / vision stride {} must be a multiple of "
                            "grid {}", o.image_size, stride, o.grid));
}

}  // namespace

int style_token(CaptionStyle style) {
  return style == CaptionStyle::kShort ? Tokenizer::kShort : Tokenizer::kLong;
}

CaptionerImpl::CaptionerImpl(CaptionerOptions o) : options_(o) {
  check(o);
  vision = register_module("vision", nn::ConvBackbone(o.vision));
  image_proj = register_module("image_proj", torch::nn::Linear(o.vision.width, o.dim));
  image_position =
      register_parameter("image_position", torch::randn({o.grid * o.grid, o.dim}) * 0.02);
  image_blocks = register_module("image_blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.encoder_layers; ++i)
    image_blocks->push_back(
        nn::TransformerBlock(nn::TransformerBlockOptions{o.dim, o.heads, 0, 4, o.dropout}));
  auto layer_norm = [&] { return torch::nn::LayerNorm(torch::nn::LayerNormOptions({o.dim})); };
  image_norm = register_module("image_norm", layer_norm());

  token_embedding = register_module("token_embedding", torch::nn::Embedding(o.vocab_size, o.dim));
  position_embedding =
      register_module("position_embedding", torch::nn::Embedding(o.max_length, o.dim));
  // GPT-2's 0.02 rather than Embedding's N(0, 1): with tied weights the logits are
  // final_norm(h) . E^T, and unit-variance rows would start them at ~sqrt(D), far from uniform.
  {
    torch::NoGradGuard no_grad;
    token_embedding->weight.normal_(0, 0.02);
    position_embedding->weight.normal_(0, 0.02);
  }
  blocks = register_module("blocks", torch::nn::ModuleList());
  for (int64_t i = 0; i < o.layers; ++i)
    blocks->push_back(
        nn::TransformerBlock(nn::TransformerBlockOptions{o.dim, o.heads, o.dim, 4, o.dropout}));
  final_norm = register_module("final_norm", layer_norm());
  if (!o.tie_embeddings)
    lm_head = register_module(
        "lm_head", torch::nn::Linear(torch::nn::LinearOptions(o.dim, o.vocab_size).bias(false)));
}

torch::Tensor CaptionerImpl::encode_image(const torch::Tensor& images) {
  const int64_t s = options_.image_size;
  if (images.dim() != 4 || images.size(1) != 3 || images.size(2) != s || images.size(3) != s)
    throw Error(fmt::format("captioner: expected images [B, 3, {}, {}], got [{}]", s, s,
                            fmt::join(images.sizes(), ", ")));
  auto h = vision->forward(images);  // [B, W, S / stride, S / stride]
  if (h.size(2) != options_.grid)   // average cells down to the token grid
    h = torch::nn::functional::adaptive_avg_pool2d(
        h, torch::nn::functional::AdaptiveAvgPool2dFuncOptions({options_.grid, options_.grid}));
  h = image_proj(h.flatten(2).transpose(1, 2));  // [B, W, grid, grid] -> [B, N, D]
  h = h + image_position.unsqueeze(0);
  for (const auto& block : *image_blocks) h = block->as<nn::TransformerBlock>()->forward(h);
  return image_norm(h);
}

std::vector<nn::BlockCache> CaptionerImpl::make_caches() const {
  return std::vector<nn::BlockCache>(static_cast<size_t>(options_.layers));
}

torch::Tensor CaptionerImpl::logits(const torch::Tensor& image_tokens, const torch::Tensor& ids,
                                    std::vector<nn::BlockCache>* caches) {
  if (caches && caches->size() != blocks->size())
    throw std::logic_error("captioner: one BlockCache per decoder layer expected");
  const int64_t offset = caches ? caches->front().self.length() : 0;
  if (ids.dim() != 2 || offset + ids.size(1) > options_.max_length)
    throw Error(
        fmt::format("captioner: expected token ids [B, T] with {} cached + T <= {}, got [{}]",
                    offset, options_.max_length, fmt::join(ids.sizes(), ", ")));
  auto positions = torch::arange(offset, offset + ids.size(1), ids.options());
  auto h = token_embedding(ids) + position_embedding(positions).unsqueeze(0);  // [B, T, D]
  for (size_t i = 0; i < blocks->size(); ++i)
    h = blocks[i]->as<nn::TransformerBlock>()->forward(h, image_tokens, /*causal=*/true,
                                                       caches ? &(*caches)[i] : nullptr);
  h = final_norm(h);
  return lm_head ? lm_head(h) : torch::nn::functional::linear(h, token_embedding->weight);
}

torch::Tensor CaptionerImpl::loss(const torch::Tensor& images, const torch::Tensor& ids,
                                  const torch::Tensor& padding) {
  if (ids.dim() != 2 || ids.size(1) < kPromptLength + 1 || padding.sizes() != ids.sizes())
    throw Error(fmt::format("captioner: loss needs ids [B, T>={}] and padding of the same shape, "
                            "got [{}] and [{}]", kPromptLength + 1, fmt::join(ids.sizes(), ", "),
                            fmt::join(padding.sizes(), ", ")));
  constexpr int64_t kIgnore = -100;
  const int64_t t = ids.size(1) - 1;
  auto logits = this->logits(encode_image(images), ids.narrow(1, 0, t));  // [B, T-1, V]
  // Target j is token j + 1; the first kPromptLength - 1 targets are the given style token.
  auto targets = ids.narrow(1, 1, t).masked_fill(padding.narrow(1, 1, t), kIgnore);
  targets.narrow(1, 0, kPromptLength - 1).fill_(kIgnore);
  return torch::nn::functional::cross_entropy(
      logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}),
      torch::nn::functional::CrossEntropyFuncOptions().ignore_index(kIgnore));
}

namespace {

// [BOS, style (when given), tokens..., EOS], at most max_length tokens.
std::vector<int> framed_ids(const text::Tokenizer& tokenizer, std::string_view text,
                            std::optional<int> style, int64_t max_length) {
  const int64_t frame = style ? kPromptLength + 1 : 2;
  if (max_length < frame)
    throw Error(fmt::format("caption_ids: max_length {} is shorter than BOS, {}EOS", max_length,
                            style ? "style and " : ""));
  auto tokens = tokenizer.encode(text);
  std::erase_if(tokens, [](int id) { return id == Tokenizer::kShort || id == Tokenizer::kLong; });
  const auto room = static_cast<size_t>(max_length - frame);
  if (tokens.size() > room) tokens.resize(room);
  std::vector<int> ids = {Tokenizer::kBos};
  if (style) ids.push_back(*style);
  ids.insert(ids.end(), tokens.begin(), tokens.end());
  ids.push_back(Tokenizer::kEos);
  return ids;
}

}  // namespace

std::vector<int> caption_ids(const text::Tokenizer& tokenizer, std::string_view text,
                             CaptionStyle style, int64_t max_length) {
  return framed_ids(tokenizer, text, style_token(style), max_length);
}

std::vector<int> caption_ids(const text::Tokenizer& tokenizer, std::string_view text,
                             int64_t max_length) {
  return framed_ids(tokenizer, text, std::nullopt, max_length);
}

CaptionBatch pad_captions(const std::vector<std::vector<int>>& captions) {
  if (captions.empty()) throw Error("pad_captions: no captions");
  size_t longest = 0;
  for (const auto& c : captions) longest = std::max(longest, c.size());
  const auto b = static_cast<int64_t>(captions.size()), t = static_cast<int64_t>(longest);
  auto ids = torch::full({b, t}, Tokenizer::kPad, torch::kLong);
  auto padding = torch::ones({b, t}, torch::kBool);
  for (int64_t i = 0; i < b; ++i) {
    const auto& c = captions[static_cast<size_t>(i)];
    const auto n = static_cast<int64_t>(c.size());
    ids[i].narrow(0, 0, n).copy_(torch::tensor(std::vector<int64_t>(c.begin(), c.end())));
    padding[i].narrow(0, 0, n).fill_(false);
  }
  return {ids, padding};
}

}  // namespace recap::models
