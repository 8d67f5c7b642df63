// RECAP step 2 through the real binary: `recap recaption` over a smoke corpus cut into eight
// web shards (splitting across processes, kill -9 and resume, provenance checks), and
// `recap captioner eval` scoring every caption source on the same samples.
#include "core/torch_pch.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <fstream>
#include <set>
#include <thread>

#include <fmt/format.h>
#include <gmock/gmock.h>
#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/safetensors.h"
#include "core/sha256.h"
#include "diffusion/guidance.h"
#include "models/decoding.h"
#include "stages/captioner_train.h"
#include "stages/corpus.h"
#include "stages/corpus_stats.h"
#include "stages/recaption.h"
#include "stages/t2i_train.h"
#include "stages/tokenizer_train.h"
#include "photo_folder.h"
#include "test_util.h"

namespace recap::stages {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

constexpr int kWebSamples = 400;  // smoke preset
constexpr int kWebShards = 8;     // with shard_size 50

// A smoke corpus in 50-sample shards, its tokenizer and a smoke captioner, made once per test
// process (ctest runs each TEST in its own).
struct World {
  test::TempDir dir{"recaption"};
  fs::path corpus = dir / "corpus", tokenizer = dir / "tok.model", cap = dir / "cap";
  fs::path model = cap / "captioner.safetensors";

  World() {
    const Config config = Config::load("smoke", {"corpus.shard_size=50"});
    corpus::make_corpus(config, corpus, 2);
    corpus::train_corpus_tokenizer(corpus, tokenizer, corpus::tokenizer_options(config));
    train_captioner(corpus, tokenizer, cap, config, 2);
  }
  std::string base_args() const {
    return "recaption --threads 1 --model " + model.string() + " --tokenizer " +
           tokenizer.string() + " --in " + (corpus / "web").string();
  }
};

const World& world() {
  static const auto* w = new World;  // outlives the tests; the OS reclaims it
  return *w;
}

std::vector<fs::path> sidecars_in(const fs::path& dir) {
  std::vector<fs::path> out;
  for (const auto& e : fs::directory_iterator(dir))
    if (e.path().string().ends_with(".recap.jsonl")) out.push_back(e.path());
  std::sort(out.begin(), out.end());
  return out;
}

std::vector<nlohmann::json> lines_of(const fs::path& file) {
  std::vector<nlohmann::json> out;
  std::ifstream in(file);
  for (std::string line; std::getline(in, line);) out.push_back(nlohmann::json::parse(line));
  return out;
}

// Starts `recap args...` with its output discarded; returns the child's pid.
pid_t spawn_recap(const std::vector<std::string>& args) {
  std::vector<std::string> argv = {RECAP_BINARY};
  argv.insert(argv.end(), args.begin(), args.end());
  const pid_t pid = ::fork();
  if (pid == 0) {
    const int null = ::open("/dev/null", O_WRONLY);
    ::dup2(null, 1);
    ::dup2(null, 2);
    std::vector<char*> raw;
    for (auto& a : argv) raw.push_back(a.data());
    raw.push_back(nullptr);
    ::execv(raw[0], raw.data());
    ::_exit(127);
  }
  return pid;
}

TEST(Recaption, ShardSplitCoversEveryKeyOnceAndLoads) {
  const World& w = world();
  test::TempDir out("recaption-split");
  for (int i = 0; i < 3; ++i) {
    auto r =
        test::run_recap(w.base_args() + " --batch-size 32 --max-length 12 --num-shards 3 " +
                        "--shard-index " + std::to_string(i) + " --out " + out.path().string());
    ASSERT_EQ(r.status, 0) << r.output;
    EXPECT_THAT(r.output, HasSubstr("images/s"));
    // Index i takes the sorted shards i, i+3, i+6.
    EXPECT_THAT(r.output, HasSubstr(fmt::format("sidecars written {}", i < 2 ? 3 : 2)));
  }
  const auto files = sidecars_in(out.path());
  ASSERT_EQ(files.size(), static_cast<size_t>(kWebShards));
  EXPECT_EQ(files.front().filename().string(), "web-00000.recap.jsonl");

  // load_recaptions refuses a (key, kind) given twice, so this also proves there is no overlap.
  const auto recaps = load_recaptions(files);
  EXPECT_TRUE(recaps.short_captions.empty());
  ASSERT_EQ(recaps.long_captions.size(), static_cast<size_t>(kWebSamples));
  for (int i = 0; i < kWebSamples; ++i)
    EXPECT_TRUE(recaps.long_captions.count(corpus::sample_key(corpus::Split::Web, i))) << i;

  // Lines follow shard order and carry their provenance.
  const auto first = lines_of(files.front());
  ASSERT_EQ(first.size(), 50u);
  EXPECT_EQ(first[0]["key"], "web-000000000");
  EXPECT_EQ(first[49]["key"], "web-000000049");
  EXPECT_EQ(first[0]["kind"], "long");
  EXPECT_EQ(first[0]["model"], sha256_file(w.model));
  models::DecodeOptions decode;
  decode.max_length = 12;
  decode.seed = 1234;  // run.seed
  EXPECT_EQ(first[0]["decode"], decode.to_json());

  // corpus_stats reads the sidecars too: all of them as one source covers every web sample.
  std::string all;
  for (const auto& f : files) all += read_file(f);
  write_file_atomic(out / "all.jsonl", all);
  const auto stats = corpus::corpus_stats(w.corpus, {out / "all.jsonl"});
  ASSERT_EQ(stats.sources.size(), 4u);
  EXPECT_EQ(stats.sources[3].name, "all");
  EXPECT_EQ(stats.sources[3].captions, kWebSamples);
  EXPECT_EQ(stats.sources[3].missing, 0);
  EXPECT_EQ(stats.sources[3].unknown_keys, 0);
}

TEST(Recaption, KilledRunResumesToIdenticalSidecarsAndChecksProvenance) {
  const World& w = world();
  test::TempDir dir("recaption-kill");
  const fs::path whole = dir / "whole", killed = dir / "killed";
  // Nucleus sampling with small batches: slow enough to kill mid-run, and the seeds must be
  // derived per shard and batch for a resumed run to match.
  const std::string decode = " --method nucleus --top-p 0.95 --max-length 16 --batch-size 2";
  auto uninterrupted = test::run_recap(w.base_args() + decode + " --out " + whole.string());
  ASSERT_EQ(uninterrupted.status, 0) << uninterrupted.output;
  EXPECT_THAT(uninterrupted.output, HasSubstr("sidecars written 8, skipped 0"));

  fs::create_directories(killed);
  const pid_t pid = spawn_recap(
      {"recaption", "--threads", "1", "--model", w.model.string(), "--tokenizer",
       w.tokenizer.string(), "--in", (w.corpus / "web").string(), "--method", "nucleus", "--top-p",
       "0.95", "--max-length", "16", "--batch-size", "2", "--out", killed.string()});
  ASSERT_GT(pid, 0);
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(120);
  while (sidecars_in(killed).empty() && std::chrono::steady_clock::now() < deadline)
    std::this_thread::sleep_for(std::chrono::milliseconds(2));
  ::kill(pid, SIGKILL);
  int status = 0;
  ::waitpid(pid, &status, 0);
  const size_t finished = sidecars_in(killed).size();
  EXPECT_GE(finished, 1u);
  EXPECT_LT(finished, static_cast<size_t>(kWebShards)) << "the run ended before the kill";

  auto resumed = test::run_recap(w.base_args() + decode + " --out " + killed.string());
  ASSERT_EQ(resumed.status, 0) << resumed.output;
  EXPECT_THAT(resumed.output, HasSubstr(fmt::format("skipped {}", finished)));
  const auto a = sidecars_in(whole), b = sidecars_in(killed);
  ASSERT_EQ(a.size(), static_cast<size_t>(kWebShards));
  ASSERT_EQ(b.size(), a.size());
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].filename(), b[i].filename());
    EXPECT_EQ(read_file(a[i]), read_file(b[i])) << b[i];
  }
  // Only the sidecars are left: the killed run's partial temporary was cleared.
  EXPECT_EQ(std::distance(fs::directory_iterator(killed), fs::directory_iterator()), kWebShards);

  // Everything finished: a rerun decodes nothing.
  auto again = test::run_recap(w.base_args() + decode + " --out " + whole.string());
  ASSERT_EQ(again.status, 0) << again.output;
  EXPECT_THAT(again.output, HasSubstr("0 images"));
  EXPECT_THAT(again.output, HasSubstr("sidecars written 0, skipped 8"));

  // Other decoding settings or another kind on finished sidecars: refused, naming the file.
  auto greedy = test::run_recap(w.base_args() + " --batch-size 2 --out " + whole.string());
  EXPECT_EQ(greedy.status, 2);
  EXPECT_THAT(greedy.output, HasSubstr("web-00000.recap.jsonl: made with other settings"));
  auto kind = test::run_recap(w.base_args() + decode + " --kind short --out " + whole.string());
  EXPECT_EQ(kind.status, 2);
  EXPECT_THAT(kind.output, HasSubstr("web-00000.recap.jsonl"));

  // Inputs that cannot be recaptioned.
  auto no_model = test::run_recap("recaption --model " + (dir / "none.safetensors").string() +
                                  " --tokenizer " + w.tokenizer.string() + " --in " +
                                  (w.corpus / "web").string() + " --out " + (dir / "x").string());
  EXPECT_EQ(no_model.status, 2);
  EXPECT_THAT(no_model.output, HasSubstr("none.safetensors: no such model"));
  auto not_shard = test::run_recap(
      "recaption --model " + w.model.string() + " --tokenizer " + w.tokenizer.string() + " --in " +
      (w.corpus / "corpus.json").string() + " --out " + (dir / "x").string());
  EXPECT_EQ(not_shard.status, 2);
  EXPECT_THAT(not_shard.output, HasSubstr("corpus.json: not a .tar shard"));
  auto bad_index = test::run_recap(w.base_args() + " --num-shards 2 --shard-index 2 --out " +
                                   (dir / "x").string());
  EXPECT_EQ(bad_index.status, 2);
  EXPECT_THAT(bad_index.output, HasSubstr("shard index 2 is outside [0, 2)"));
}

// One truncated shard among the eight: the other seven are captioned, the broken one's captions
// before the break are kept under a name no reader takes for a sidecar, the job fails at the
// end naming it, a rerun does not take the partial file for finished work, and --strict
// stops at the break as before.
TEST(Recaption, BrokenShardIsNamedWhileTheOthersFinish) {
  const World& w = world();
  test::TempDir dir("recaption-broken");
  const fs::path in = dir / "in", out = dir / "out", strict = dir / "strict";
  fs::create_directories(in);
  for (const auto& shard : corpus::list_shards(w.corpus, corpus::Split::Web))
    fs::copy_file(shard, in / shard.filename());
  // Shard 3 holds web samples 150-199; cut it 10 bytes into the first entry of sample 170.
  const fs::path broken = in / "web-00003.tar";
  const std::string whole = read_file(broken);
  const std::string cut = test::cut_tar_at(whole, corpus::sample_key(corpus::Split::Web, 170));
  ASSERT_FALSE(cut.empty());
  write_file_atomic(broken, cut);
  const std::string args = "recaption --threads 1 --model " + w.model.string() + " --tokenizer " +
                           w.tokenizer.string() + " --in " + in.string() +
                           " --batch-size 32 --max-length 12 --out ";

  auto r = test::run_recap(args + out.string());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("sidecars written 7, skipped 0, broken 1"));
  EXPECT_THAT(r.output, HasSubstr("broken shards: " + broken.string()));  // the reject summary
  EXPECT_THAT(r.output, HasSubstr("recaption: 1 broken shard(s)"));
  EXPECT_THAT(r.output, HasSubstr(broken.string() + ": broken tar at entry 60 (stopped at byte "
                                                    "offset"));
  auto files = sidecars_in(out);
  ASSERT_EQ(files.size(), 7u);
  for (const auto& file : files) EXPECT_EQ(lines_of(file).size(), 50u) << file;
  const fs::path sidecar = sidecar_path(out, broken);
  EXPECT_FALSE(fs::exists(sidecar));
  ASSERT_TRUE(fs::exists(partial_sidecar_path(sidecar)));
  auto partial = lines_of(partial_sidecar_path(sidecar));
  ASSERT_EQ(partial.size(), 20u);  // every sample before the break, in shard order
  for (int i = 0; i < 20; ++i)
    EXPECT_EQ(partial[i]["key"], corpus::sample_key(corpus::Split::Web, 150 + i));

  // A rerun keeps the seven, tries the broken shard again and fails again.
  r = test::run_recap(args + out.string());
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr("sidecars written 0, skipped 7, broken 1"));
  EXPECT_EQ(lines_of(partial_sidecar_path(sidecar)).size(), 20u);

  // --strict: today's stop at the break with the reader's error; the shards before it are done,
  // nothing is written for the broken one or after it.
  r = test::run_recap(args + strict.string() + " --strict");
  EXPECT_EQ(r.status, 2) << r.output;
  EXPECT_THAT(r.output, HasSubstr(broken.string() + ": broken tar at entry 60"));
  EXPECT_THAT(r.output, Not(HasSubstr("broken shard(s)")));
  EXPECT_EQ(sidecars_in(strict).size(), 3u);
  EXPECT_FALSE(fs::exists(partial_sidecar_path(sidecar_path(strict, broken))));

  // The shard repaired: a rerun writes its whole sidecar and clears the partial one.
  write_file_atomic(broken, whole);
  r = test::run_recap(args + out.string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("sidecars written 1, skipped 7, broken 0"));
  EXPECT_EQ(lines_of(sidecar).size(), 50u);
  EXPECT_FALSE(fs::exists(partial_sidecar_path(sidecar)));
  EXPECT_EQ(std::distance(fs::directory_iterator(out), fs::directory_iterator()), kWebShards);
}

TEST(CaptionEval, ScoresEverySourceOnTheSameSamples) {
  const World& w = world();
  test::TempDir out("caption-eval");
  constexpr int kSamples = 30;
  auto r =
      test::run_recap("captioner eval --threads 1 --corpus " + w.corpus.string() + " --tokenizer " +
                      w.tokenizer.string() + " --model ft=" + w.model.string() +
                      " --model pre=" + (w.cap / "captioner_pretrain.safetensors").string() +
                      ":short --max-length 16 --samples " + std::to_string(kSamples) + " --out " +
                      out.path().string());
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("group precision"));

  const auto json = nlohmann::json::parse(read_file(out / "caption_quality.json"));
  EXPECT_EQ(json["samples"], kSamples);
  EXPECT_EQ(json["web"]["used"], kSamples);
  std::vector<std::string> names;
  for (const auto& s : json["sources"]) {
    names.push_back(s["name"]);
    EXPECT_EQ(s["captions"], kSamples) << s["name"];
    EXPECT_EQ(s["missing"], 0) << s["name"];
    EXPECT_EQ(s["unknown_keys"], 0) << s["name"];
  }
  EXPECT_EQ(names, (std::vector<std::string>{"alt", "human-long", "human-short", "ft", "pre"}));
  EXPECT_EQ(json["models"][1]["kind"], "short");
  EXPECT_TRUE(fs::exists(out / "caption_quality.txt"));

  // The captions are the first web samples, in order, with their kind.
  const auto pre = lines_of(out / "pre.jsonl");
  ASSERT_EQ(pre.size(), static_cast<size_t>(kSamples));
  for (int i = 0; i < kSamples; ++i) {
    EXPECT_EQ(pre[i]["key"], corpus::sample_key(corpus::Split::Web, i));
    EXPECT_EQ(pre[i]["kind"], "short");
  }

  auto clash = test::run_recap("captioner eval --corpus " + w.corpus.string() + " --tokenizer " +
                               w.tokenizer.string() + " --model alt=" + w.model.string() +
                               " --out " + (out / "x").string());
  EXPECT_EQ(clash.status, 2);
  EXPECT_THAT(clash.output, HasSubstr("model name 'alt' is taken"));
}

// Your own data at the smoke scale: photographs of several sizes and aspects in an image
// folder, and a web shard, recaptioned into sidecars, caption files (one folder per source,
// or beside the images, never over a user's own) and JSONL/CSV manifests; then step 3 trains
// on the photos and the shard with half recaptions, half their own captions, and resumes only
// with the same mix.
TEST(OwnData, RecaptionToTxtAndManifestsThenTrainOnAMix) {
  const World& w = world();
  test::TempDir dir("own-data");
  const fs::path photos = dir / "photos", out = dir / "recaptions";
  const fs::path shard = w.corpus / "web" / "web-00000.tar";
  auto org = [](int i) {
    return i == 1 ? std::string("a photo, \"quoted\"") : fmt::format("photo {}", i);
  };
  test::write_photo_folder(photos, 6, org);
  const std::string recaption = "recaption --threads 1 --model " + w.model.string() +
                                " --tokenizer " + w.tokenizer.string() + " --max-length 12 ";
  const std::string args = recaption + "--in " + photos.string() + " --in " + shard.string() +
                           " --out " + out.string() + " --format txt --manifest " +
                           (out / "manifest.jsonl").string() + " --manifest " +
                           (dir / "manifest.csv").string();
  auto r = test::run_recap(args);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("sidecars written 2, skipped 0"));

  // Sidecars keep the original caption; each image's caption file holds the recaption.
  const auto photo_lines = lines_of(out / "photos.recap.jsonl");
  ASSERT_EQ(photo_lines.size(), 6u);
  for (int i = 0; i < 6; ++i) {
    const auto& line = photo_lines[static_cast<size_t>(i)];
    EXPECT_EQ(line["key"], fmt::format("p{:02d}.png", i));
    EXPECT_EQ(line["org_caption"], org(i));
    EXPECT_EQ(read_file(out / "photos" / fmt::format("p{:02d}.txt", i)),
              line["caption"].get<std::string>() + "\n");
  }
  const auto shard_lines = lines_of(out / "web-00000.recap.jsonl");
  ASSERT_EQ(shard_lines.size(), 50u);
  EXPECT_EQ(read_file(out / "web-00000" / "web-000000007.txt"),
            shard_lines[7]["caption"].get<std::string>() + "\n");

  // The manifests: every sample once, inputs in the order given, original beside new.
  const auto manifest = lines_of(out / "manifest.jsonl");
  ASSERT_EQ(manifest.size(), 56u);
  std::set<std::string> columns;
  for (const auto& [column, value] : manifest[0].items()) columns.insert(column);
  EXPECT_EQ(columns, (std::set<std::string>{"shard", "key", "file", "org_caption", "re_caption",
                                            "kind"}));
  EXPECT_EQ(manifest[1]["file"], (photos / "p01.png").string());
  EXPECT_EQ(manifest[1]["org_caption"], org(1));
  EXPECT_EQ(manifest[1]["re_caption"], photo_lines[1]["caption"]);
  EXPECT_EQ(manifest[1]["kind"], "long");
  EXPECT_EQ(manifest[6]["shard"], shard.string());
  EXPECT_EQ(manifest[6]["file"], "");
  const std::string csv = read_file(dir / "manifest.csv");
  EXPECT_TRUE(csv.starts_with("shard,key,file,org_caption,re_caption,kind\n")) << csv;
  EXPECT_EQ(std::count(csv.begin(), csv.end(), '\n'), 57);
  EXPECT_THAT(csv, HasSubstr(",\"a photo, \"\"quoted\"\"\"," +
                             photo_lines[1]["caption"].get<std::string>() + ",long\n"));

  // A rerun keeps everything; the caption files it would write are already there.
  r = test::run_recap(args);
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, HasSubstr("sidecars written 0, skipped 2"));

  // Beside the images: a user's own caption file is never overwritten.
  write_file_atomic(photos / "p03.txt", "my own caption\n");
  const std::string beside = recaption + "--in " + photos.string() + " --format txt " +
                             "--txt-beside --out " + (dir / "beside").string();
  r = test::run_recap(beside);
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.output, HasSubstr((photos / "p03.txt").string() + ": exists with another caption"));
  EXPECT_EQ(read_file(photos / "p03.txt"), "my own caption\n");
  r = test::run_recap(beside + " --txt-ext .caption");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_EQ(read_file(photos / "p03.caption"), photo_lines[3]["caption"].get<std::string>() + "\n");

  // Step 3 on the photos and the shard: half recaptions, half the images' own captions.
  const fs::path t2i_out = dir / "t2i";
  const std::string train = "t2i train --threads 1 --preset smoke --images " + photos.string() +
                            " " + shard.string() + " --tokenizer " + w.tokenizer.string() +
                            " --out " + t2i_out.string() + " --caption-source recap=" +
                            out.string() + " --set t2i.crop=random --set t2i.flip=true";
  r = test::run_recap(train + " --mix recap=0.5,original=0.5");
  ASSERT_EQ(r.status, 0) << r.output;
  EXPECT_THAT(r.output, ::testing::ContainsRegex(
                            R"(captions used 48 \(original [0-9]+, recap [0-9]+\), fell back 0)"));
  const auto weights = Safetensors::load(t2i_out / "t2i.safetensors");
  EXPECT_EQ(weights.metadata().at("captions"), "recap=0.5,original=0.5");
  // The same command resumes (nothing left to train); another mix is refused.
  r = test::run_recap(train + " --mix recap=0.5,original=0.5");
  ASSERT_EQ(r.status, 0) << r.output;
  r = test::run_recap(train + " --mix recap=0.95,original=0.05 --set t2i.steps=8");
  EXPECT_EQ(r.status, 2);
  EXPECT_THAT(r.output, HasSubstr("trained with the caption mix \"recap=0.5,original=0.5\""));
}

// Caption dropout feeds the empty prompt: a dropped caption's ids are the empty caption's and
// the unconditional row classifier-free guidance samples with, and the text encoder's
// encoding of it does not depend on how far the batch pads it.
TEST(OwnData, ADroppedCaptionIsTheUnconditionalRowGuidanceUses) {
  const auto tokenizer = text::Tokenizer::load(world().tokenizer);
  const auto ids = prompt_ids(tokenizer, {"", "two red squares left of a blue circle"}, 32);
  ASSERT_GT(ids.size(1), 2);
  const auto uncond = unconditional_ids(ids.size(1));
  EXPECT_TRUE(torch::equal(ids.slice(0, 0, 1), uncond));
  // Dropping the caption of row 1 makes it the empty prompt's row.
  EXPECT_FALSE(torch::equal(ids[1], ids[0]));
  const auto dropped = diffusion::drop_conditions(ids, uncond, torch::tensor({false, true}));
  EXPECT_TRUE(torch::equal(dropped[1], ids[0]));
  const auto options =
      t2i_train_options(Config::load("smoke"), tokenizer.vocab_size(), /*canvas=*/32);
  torch::manual_seed(1);
  models::TextEncoder encoder(options.model.text);
  encoder->eval();
  torch::NoGradGuard no_grad;
  const auto tight = encoder(unconditional_ids(2));
  const auto padded = encoder(unconditional_ids(9)).slice(1, 0, 2);
  EXPECT_TRUE(torch::allclose(tight, padded, 1e-5, 1e-6));
}

}  // namespace
}  // namespace recap::stages
