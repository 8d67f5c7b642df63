// Where each stage of `recap run` keeps its outputs under runs/NAME/. The orchestrator
// (stages/run_experiment) writes them, the report (stages/report) and `recap status` read them;
// this is the one place that names the paths.
#pragma once
#include <cstdint>
#include <filesystem>
#include <string>
#include <string_view>

#include "eval/image_results.h"

namespace recap::stages {

namespace fs = std::filesystem;

struct RunLayout {
  fs::path root;  // runs/NAME

  fs::path manifest() const { return root / "manifest.json"; }
  fs::path corpus() const { return root / "corpus"; }  // a `recap corpus make` folder
  fs::path tokenizer() const { return root / "tokenizer" / "tokenizer.model"; }
  // evaluator.safetensors, evaluator_accuracy.json
  fs::path evaluator() const { return root / "evaluator"; }
  // The captioner's pre-trained vision encoder: a second detector (another seed), same files.
  fs::path vision() const { return root / "vision"; }
  // pretrain/ and finetune/ (checkpoints, metrics.jsonl), captioner_pretrain.safetensors (the
  // stage-1 "off-the-shelf" captioner), captioner.safetensors (the fine-tuned RECAP captioner)
  fs::path captioner() const { return root / "captioner"; }
  fs::path captioner_stage1() const { return captioner() / "captioner_pretrain.safetensors"; }
  fs::path captioner_final() const { return captioner() / "captioner.safetensors"; }
  // One NAME.recap.jsonl sidecar per web shard, for each caption kind.
  fs::path recaption(std::string_view kind) const {
    return root / ("recaption-" + std::string(kind));
  }
  // caption_quality.json (corpus::to_json), caption_quality.txt, one JSONL per captioner.
  fs::path caption_quality() const { return root / "caption_quality"; }
  fs::path caption_quality_json() const { return caption_quality() / "caption_quality.json"; }
  // The latent space (t2i.space = latent): train/, autoencoder.safetensors, autoencoder.json
  // (options, loss, the reconstruction check).
  fs::path autoencoder() const { return root / "autoencoder"; }
  fs::path judge_clip() const { return root / "judge-clip"; }
  fs::path autoencoder_json() const { return autoencoder() / "autoencoder.json"; }
  // train/ (checkpoints, metrics.jsonl), grids/step-NNNNNN.png, t2i.safetensors
  fs::path t2i(std::string_view arm) const { return root / ("t2i-" + std::string(arm)); }
  fs::path t2i_weights(std::string_view arm) const { return t2i(arm) / "t2i.safetensors"; }
  fs::path t2i_metrics(std::string_view arm) const { return t2i(arm) / "train" / "metrics.jsonl"; }
  // One sample_to_folder output (PNGs + images.jsonl) per evaluation suite, and
  // samples-ARM/images.jsonl listing all of them ("file": "SUITE/NNNNNN.png") for evaluation.
  fs::path samples(std::string_view arm) const { return root / ("samples-" + std::string(arm)); }
  fs::path samples(std::string_view arm, std::string_view suite) const {
    return samples(arm) / suite;
  }
  // Intermediate training checkpoints, sampled like samples-ARM: step-N/ holds the exported
  // model (t2i.safetensors) and one folder per suite.
  fs::path checkpoint_samples(std::string_view arm) const {
    return root / ("checkpoints-" + std::string(arm));
  }
  fs::path checkpoint_samples(std::string_view arm, int64_t step) const {
    return checkpoint_samples(arm) / ("step-" + std::to_string(step));
  }
  // ARM.json, ceiling.json and ARM-step-N.json (stages::to_json(EvalReport)), table.txt, and
  // beside an arm's summary its per-image results, ARM.images.jsonl (eval/image_results.h)
  fs::path eval() const { return root / "eval"; }
  fs::path eval_json(std::string_view name) const {
    return eval() / (std::string(name) + ".json");
  }
  fs::path eval_images(std::string_view name) const {
    return recap::eval::image_results_path(eval_json(name));
  }
  fs::path eval_json(std::string_view arm, int64_t step) const {
    return eval_json(std::string(arm) + "-step-" + std::to_string(step));
  }
  // index.html, report.md and their images
  fs::path report() const { return root / "report"; }
};

}  // namespace recap::stages
