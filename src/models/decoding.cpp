#include "core/torch_pch.h"
#include "models/decoding.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include <fmt/format.h>

#include "core/error.h"

namespace recap::models {

namespace {

using text::Tokenizer;
using Tokens = std::vector<std::vector<int>>;
constexpr double kNegInf = -std::numeric_limits<double>::infinity();

// Decoding never trains: dropout off for the call, the caller's mode back afterwards.
class EvalScope {
 public:
  explicit EvalScope(torch::nn::Module& module) : module_(module), was_(module.is_training()) {
    module_.eval();
  }
  ~EvalScope() { module_.train(was_); }
  EvalScope(const EvalScope&) = delete;
  EvalScope& operator=(const EvalScope&) = delete;

 private:
  torch::nn::Module& module_;
  bool was_;
};

// [rows, 2] = [BOS, style] on every row.
torch::Tensor prompt(int64_t rows, CaptionStyle style, const torch::Device& device) {
  return torch::tensor({int64_t{Tokenizer::kBos}, int64_t{style_token(style)}},
                       torch::TensorOptions(torch::kLong).device(device))
      .unsqueeze(0)
      .expand({rows, kPromptLength})
      .contiguous();
}

std::vector<int64_t> to_vector(const torch::Tensor& t) {
  auto cpu = t.to(torch::kCPU, torch::kLong).contiguous();
  return {cpu.data_ptr<int64_t>(), cpu.data_ptr<int64_t>() + cpu.numel()};
}

// Greedy and nucleus: one token per row and step, chosen by `choose` from logits [B, V].
// Finished rows keep being fed (their tokens are dropped) so every step draws the same random
// numbers whatever has finished, which keeps sampling a pure function of the seed.
Tokens choose_each_step(Captioner& model, const torch::Tensor& image_tokens, CaptionStyle style,
                        int64_t max_length,
                        const std::function<torch::Tensor(const torch::Tensor&)>& choose) {
  const int64_t b = image_tokens.size(0);
  auto caches = model->make_caches();
  auto input = prompt(b, style, image_tokens.device());
  Tokens out(static_cast<size_t>(b));
  std::vector<bool> done(static_cast<size_t>(b), false);
  int64_t live = b;
  for (int64_t length = kPromptLength; length < max_length && live > 0; ++length) {
    auto next = choose(model->logits(image_tokens, input, &caches).select(1, -1));  // [B]
    const auto tokens = to_vector(next);
    for (size_t i = 0; i < tokens.size(); ++i) {
      if (done[i]) continue;
      out[i].push_back(static_cast<int>(tokens[i]));
      if (tokens[i] == Tokenizer::kEos) done[i] = true, --live;
    }
    input = next.unsqueeze(1);
  }
  return out;
}

struct Hypothesis {
  double score;  // log-prob / length^alpha
  std::vector<int> tokens;
};

// Beam search over rows = images x k, beam j of image i in row i * k + j, so image tokens and
// caches are [B * k, ...] and reselecting beams is an index_select on dim 0. A candidate ending
// in EOS becomes a finished hypothesis when it ranks in the top k of its step (as in
// Hugging Face's implementation: with k = 1 this is exactly greedy decoding).
Tokens beam_search(Captioner& model, const torch::Tensor& image_tokens, CaptionStyle style,
                   int64_t max_length, int64_t k, double alpha) {
  const int64_t b = image_tokens.size(0), rows = b * k;
  const int64_t vocab = model->options().vocab_size, max_generated = max_length - kPromptLength;
  const auto device = image_tokens.device();
  auto context = image_tokens.repeat_interleave(k, 0);  // [B * k, N, D]
  auto caches = model->make_caches();
  auto input = prompt(rows, style, device);
  // Only the first beam of each image is live at the start, so the first step does not pick k
  // copies of the same token.
  std::vector<double> scores(static_cast<size_t>(rows), kNegInf);
  for (int64_t i = 0; i < b; ++i) scores[static_cast<size_t>(i * k)] = 0;
  Tokens beams(static_cast<size_t>(rows));
  std::vector<std::vector<Hypothesis>> finished(static_cast<size_t>(b));  // best first, <= k
  std::vector<bool> done(static_cast<size_t>(b), false);

  auto normalised = [alpha](double logp, int64_t length) {
    return logp / std::pow(static_cast<double>(length), alpha);
  };
  auto add_finished = [k, &finished](int64_t image, Hypothesis h) {
    auto& list = finished[static_cast<size_t>(image)];
    auto at = std::find_if(list.begin(), list.end(),
                           [&](const Hypothesis& o) { return o.score < h.score; });
    list.insert(at, std::move(h));
    if (static_cast<int64_t>(list.size()) > k) list.pop_back();
  };

  for (int64_t length = kPromptLength; length < max_length; ++length) {
    const int64_t generated = length - kPromptLength + 1;  // per hypothesis, after this step
    auto logp = torch::log_softmax(model->logits(context, input, &caches).select(1, -1), -1)
                    .to(torch::kDouble);  // [B * k, V]
    auto total = logp + torch::tensor(scores, logp.options()).unsqueeze(1);
    auto [top, index] = total.view({b, k * vocab}).topk(2 * k, -1);  // [B, 2k]
    top = top.to(torch::kCPU).contiguous();
    const auto top_index = to_vector(index);
    const double* top_score = top.data_ptr<double>();

    std::vector<int64_t> source(static_cast<size_t>(rows)), token(static_cast<size_t>(rows));
    std::vector<double> next_scores(static_cast<size_t>(rows), kNegInf);
    bool all_done = true;
    for (int64_t i = 0; i < b; ++i) {
      int64_t filled = 0;
      // 2k candidates hold at least k that do not end (each beam has one EOS).
      for (int64_t c = 0; c < 2 * k && filled < k && !done[static_cast<size_t>(i)]; ++c) {
        const auto at = static_cast<size_t>(i * 2 * k + c);
        if (!std::isfinite(top_score[at])) break;
        const int64_t from = i * k + top_index[at] / vocab, tok = top_index[at] % vocab;
        if (tok == Tokenizer::kEos) {
          if (c >= k) continue;
          auto tokens = beams[static_cast<size_t>(from)];
          tokens.push_back(Tokenizer::kEos);
          add_finished(i, {normalised(top_score[at], generated), std::move(tokens)});
        } else {
          const auto r = static_cast<size_t>(i * k + filled++);
          source[r] = from, token[r] = tok, next_scores[r] = top_score[at];
        }
      }
      for (int64_t j = filled; j < k; ++j) {  // dead rows: any row of this image, never chosen
        const auto r = static_cast<size_t>(i * k + j);
        source[r] = i * k, token[r] = Tokenizer::kPad;
      }
      // Log-probs only fall as a beam grows, so the best score the top live beam (score s <= 0)
      // can still reach is s / max_generated^alpha (alpha >= 0). Once that cannot beat the k-th
      // finished hypothesis, the image is done: this stop is exact, not a heuristic.
      const auto& list = finished[static_cast<size_t>(i)];
      const double best_live = next_scores[static_cast<size_t>(i * k)];
      if (!std::isfinite(best_live) ||
          (static_cast<int64_t>(list.size()) == k &&
           normalised(best_live, max_generated) <= list.back().score))
        done[static_cast<size_t>(i)] = true;
      all_done = all_done && done[static_cast<size_t>(i)];
    }
    if (all_done) break;

    // Beams of an image only reselect rows of the same image, whose cross-attention caches
    // are identical, so only the self-attention caches need reordering.
    auto rows_from = torch::tensor(source, torch::TensorOptions(torch::kLong).device(device));
    for (auto& cache : caches) {
      cache.self.k = cache.self.k.index_select(0, rows_from);
      cache.self.v = cache.self.v.index_select(0, rows_from);
    }
    Tokens next_beams(static_cast<size_t>(rows));
    for (size_t r = 0; r < next_beams.size(); ++r) {
      next_beams[r] = beams[static_cast<size_t>(source[r])];
      next_beams[r].push_back(static_cast<int>(token[r]));
    }
    beams = std::move(next_beams);
    scores = std::move(next_scores);
    input = torch::tensor(token, rows_from.options()).unsqueeze(1);
  }

  Tokens out(static_cast<size_t>(b));
  for (int64_t i = 0; i < b; ++i) {
    // Images still open at max_length: their live beams compete unfinished.
    for (int64_t j = 0; j < k && !done[static_cast<size_t>(i)]; ++j) {
      const auto r = static_cast<size_t>(i * k + j);
      if (std::isfinite(scores[r]))
        add_finished(i, {normalised(scores[r], static_cast<int64_t>(beams[r].size())), beams[r]});
    }
    out[static_cast<size_t>(i)] = finished[static_cast<size_t>(i)].front().tokens;
  }
  return out;
}

void check(const DecodeOptions& o, int64_t model_max_length) {
  if (o.beam_width < 1) throw Error(fmt::format("decode: beam_width {} < 1", o.beam_width));
  if (!(o.top_p >= 0 && o.top_p <= 1))
    throw Error(fmt::format("decode: top_p {} is outside [0, 1]", o.top_p));
  if (!(o.temperature > 0))
    throw Error(fmt::format("decode: temperature {} is not positive", o.temperature));
  if (!(o.length_penalty >= 0))
    throw Error(fmt::format("decode: length_penalty {} is negative", o.length_penalty));
  if (o.max_length != 0 && (o.max_length < kPromptLength + 1 || o.max_length > model_max_length))
    throw Error(fmt::format("decode: max_length {} is outside [{}, {}] (0: the model's)",
                            o.max_length, kPromptLength + 1, model_max_length));
}

}  // namespace

std::string to_string(DecodeMethod method) {
  switch (method) {
    case DecodeMethod::kGreedy: return "greedy";
    case DecodeMethod::kBeam: return "beam";
    case DecodeMethod::kNucleus: return "nucleus";
  }
  throw std::logic_error("unknown DecodeMethod");
}

DecodeMethod parse_decode_method(std::string_view name) {
  for (auto m : {DecodeMethod::kGreedy, DecodeMethod::kBeam, DecodeMethod::kNucleus})
    if (name == to_string(m)) return m;
  throw Error(fmt::format("unknown decoding method '{}' (greedy, beam or nucleus)", name));
}

nlohmann::json DecodeOptions::to_json() const {
  return {{"method", to_string(method)}, {"beam_width", beam_width},
          {"top_p", top_p},              {"temperature", temperature},
          {"max_length", max_length},    {"seed", seed},
          {"length_penalty", length_penalty}};
}

torch::Tensor sample_top_p(const torch::Tensor& logits, double top_p, double temperature,
                           at::Generator& generator) {
  auto probs = torch::softmax(logits.to(torch::kFloat) / temperature, -1);  // [B, V]
  auto [sorted, order] = probs.sort(/*stable=*/true, -1, /*descending=*/true);
  // Keep a token while the mass before it is under top_p; the most likely one always stays.
  auto keep = (sorted.cumsum(-1) - sorted) < top_p;
  keep.select(-1, 0).fill_(true);
  auto mass = (sorted * keep).cumsum(-1);  // [B, V], flat at the kept total after the nucleus
  auto u = torch::rand({logits.size(0), 1}, generator, torch::kFloat).to(logits.device());
  // The first sorted token whose cumulative mass reaches u * total; u < 1 keeps it in the set.
  auto pick = (mass < u * mass.narrow(-1, mass.size(-1) - 1, 1)).sum(-1, /*keepdim=*/true);
  return order.gather(-1, pick).squeeze(-1);
}

std::vector<std::vector<int>> decode(Captioner& model, const torch::Tensor& images,
                                     CaptionStyle style, const DecodeOptions& options) {
  const int64_t model_max = model->options().max_length;
  check(options, model_max);
  const int64_t max_length = options.max_length > 0 ? options.max_length : model_max;
  torch::NoGradGuard no_grad;
  EvalScope eval(*model);
  auto image_tokens = model->encode_image(images);
  switch (options.method) {
    case DecodeMethod::kGreedy:
      return choose_each_step(model, image_tokens, style, max_length,
                              [](const torch::Tensor& logits) { return logits.argmax(-1); });
    case DecodeMethod::kNucleus: {
      auto generator = at::detail::createCPUGenerator(options.seed);
      return choose_each_step(model, image_tokens, style, max_length,
                              [&](const torch::Tensor& logits) {
                                return sample_top_p(logits, options.top_p, options.temperature,
                                                    generator);
                              });
    }
    case DecodeMethod::kBeam:
      return beam_search(model, image_tokens, style, max_length, options.beam_width,
                         options.length_penalty);
  }
  throw std::logic_error("unknown DecodeMethod");
}

std::vector<std::string> decode_text(const text::Tokenizer& tokenizer,
                                     const std::vector<std::vector<int>>& tokens) {
  std::vector<std::string> texts;
  texts.reserve(tokens.size());
  for (const auto& t : tokens) texts.push_back(tokenizer.decode(t));
  return texts;
}

}  // namespace recap::models
