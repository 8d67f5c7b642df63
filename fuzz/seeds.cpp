// recap_fuzz_seeds DIR: writes a seed corpus per fuzz target, DIR/<target>/<name>, made from
// the same kinds of input the tests build (valid files of every format, and the bad entries
// the readers must refuse), so no binary seeds live in the repository.
#include <archive.h>
#include <archive_entry.h>

#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <string>
#include <vector>

#include <opencv2/imgcodecs.hpp>

#include "core/atomic_file.h"
#include "core/config.h"
#include "core/error.h"
#include "core/safetensors.h"
#include "data/image.h"
#include "data/shard_writer.h"
#include "harnesses.h"
#include "world/prompts.h"

namespace fs = std::filesystem;
using namespace recap;

namespace {

struct Entry {
  std::string path;
  std::string data;
  unsigned type = AE_IFREG;
  std::string link;  // symlink target
};

// A tar built entry by entry, so seeds can hold what ShardWriter refuses to write.
std::string raw_tar(const std::vector<Entry>& entries, bool gzip) {
  std::vector<char> buffer(1 << 20);
  size_t used = 0;
  archive* a = archive_write_new();
  archive_write_set_format_pax_restricted(a);
  if (gzip) archive_write_add_filter_gzip(a);
  archive_write_open_memory(a, buffer.data(), buffer.size(), &used);
  for (const Entry& e : entries) {
    archive_entry* entry = archive_entry_new();
    archive_entry_set_pathname(entry, e.path.c_str());
    archive_entry_set_filetype(entry, e.type);
    archive_entry_set_perm(entry, 0644);
    archive_entry_set_size(entry, static_cast<la_int64_t>(e.data.size()));
    if (!e.link.empty()) archive_entry_set_symlink(entry, e.link.c_str());
    archive_write_header(a, entry);
    if (!e.data.empty()) archive_write_data(a, e.data.data(), e.data.size());
    archive_entry_free(entry);
  }
  archive_write_close(a);
  archive_write_free(a);
  return std::string(buffer.data(), used);
}

data::Image gradient(int width, int height, int channels) {
  data::Image image{width, height, channels, {}};
  for (int i = 0; i < width * height * channels; ++i)
    image.pixels.push_back(static_cast<uint8_t>(i * 37));
  return image;
}

std::string encode_with_opencv(const data::Image& image, const char* ext) {
  cv::Mat mat(image.height, image.width, CV_8UC3, const_cast<uint8_t*>(image.pixels.data()));
  std::vector<uint8_t> out;
  if (!cv::imencode(ext, mat, out)) return {};
  return std::string(out.begin(), out.end());
}

std::map<std::string, std::string> safetensors_seeds() {
  std::string f32(2 * 3 * 4, '\1'), i64(8, '\2'), u8(5, '\3');
  return {
      {"three.safetensors",
       serialize_safetensors({{"w", DType::F32, {2, 3}, f32},
                              {"step", DType::I64, {}, i64},
                              {"mask", DType::U8, {5}, u8},
                              {"empty", DType::BF16, {0, 4}, {}}},
                             {{"format", "pt"}})},
      {"none.safetensors", serialize_safetensors({}, {})},
  };
}

std::map<std::string, std::string> shard_seeds(const fs::path& scratch) {
  const std::string png = data::encode_png(gradient(6, 4, 3));
  const std::string jpg = data::encode_jpeg(gradient(5, 5, 3), 80);
  std::string good;
  {
    data::ShardWriter writer(scratch / "good.tar");
    writer.add_sample("000000000", "png", png, "two red squares", {{"url", "http://x/a.png"}});
    writer.add_sample("000000001", "jpg", jpg, "a blue circle");
    writer.add("000000002", "txt", "caption without an image");
    writer.commit();
    good = read_file(scratch / "good.tar");
  }
  const std::vector<Entry> odd{
      {"./", "", AE_IFDIR},
      {"k1.png", png},
      {"k1.txt", "first"},
      {"k1.cls", "3"},
      {"../escape.png", png},
      {"._k2.png", png},
      {"k3.png", "", AE_IFLNK, "/etc/passwd"},
      {"k4.jpg", jpg},
      {"k4.txt", "\xff\xfe not utf-8"},
      {"k5.png", png},
      {"k5.txt", "duplicate"},
      {"k5.txt", "duplicate"},
      {"k6.webp", "RIFF\0\0\0\0WEBP"},
      {"k6.txt", "bad meta"},
      {"k6.json", "{not json"},
      {"k1.png", png},
  };
  return {
      {"good.tar", good},
      {"good.tar.gz", raw_tar({{"a.png", png}, {"a.txt", "gz"}, {"b.jpg", jpg}, {"b.txt", "x"}},
                              true)},
      {"odd.tar", raw_tar(odd, false)},
      {"odd.tar.gz", raw_tar(odd, true)},
      {"truncated.tar", good.substr(0, good.size() / 2 + 100)},
  };
}

std::map<std::string, std::string> image_seeds() {
  std::map<std::string, std::string> seeds{
      {"rgb.png", data::encode_png(gradient(7, 5, 3))},
      {"grey.png", data::encode_png(gradient(4, 4, 1))},
      {"rgba.png", data::encode_png(gradient(3, 6, 4))},
      {"rgb.jpg", data::encode_jpeg(gradient(9, 7, 3), 90)},
  };
  seeds["truncated.jpg"] = seeds["rgb.jpg"].substr(0, seeds["rgb.jpg"].size() - 20);
  std::string webp = encode_with_opencv(gradient(8, 8, 3), ".webp");
  if (!webp.empty()) seeds["rgb.webp"] = webp;
  return seeds;
}

std::map<std::string, std::string> image_folder_seeds() {
  std::string lines;
  for (const char* file : fuzz::image_folder_files())
    lines += nlohmann::json{{"file", file}, {"caption", "a caption"}, {"id", 1}}.dump() + "\n";
  lines += R"({"file": "a.png", "caption": "listed twice"})" "\n\n";
  lines += R"({"file": "../outside.png", "caption": "escapes"})" "\n";
  lines += R"({"file": "missing.png", "caption": "no such file"})" "\n";
  lines += R"({"file": "b.jpg"})" "\n";
  lines += "not json\n";
  return {{"captions.jsonl", lines}};
}

std::map<std::string, std::string> manifest_seeds() {
  return {
      {"datacomp.csv", "key,file,org_caption,re_caption\n"
                       "k1,a.png,alt text,\"A long, \"\"quoted\"\" caption.\"\n"
                       "k2,sub/c.png,,\"two\nlines\"\n"
                       "k3,missing.png,x,y\n"
                       "k4,../outside.png,x,y\n"
                       "k1,b.jpg,duplicate,key\n"
                       "bad,\"quote\"x,y,z\n"
                       "short,row\n"},
      {"keys.jsonl", R"({"key": "a", "caption": "by key", "re_caption": "long"})" "\n"
                     R"({"file": "b.jpg", "caption": "by file"})" "\n\n"
                     R"({"file": "link.png", "re_caption": "escapes"})" "\n"},
  };
}

std::map<std::string, std::string> sidecar_folder_seeds() {
  const std::string png = data::encode_png(gradient(3, 3, 3));
  return {
      {"folder.bin",
       fuzz::sidecar_folder_seed({{"a.txt", "a red square\n\nsecond caption\r\n"},
                                  {"sub/b.png", png},
                                  {"sub/b.caption", "from .caption"},
                                  {"sub/c.png", png},
                                  {"orphan.txt", "no image"},
                                  {"bad.png", "not a png"},
                                  {"bad.txt", "\xff\xfe"},
                                  {"out.txt", "the image escapes"},
                                  {".hidden/x.png", png}})},
  };
}

std::map<std::string, std::string> jsonl_seeds() {
  return {
      {"sidecar.jsonl",
       R"({"key": "000000000", "caption": "two red squares", "kind": "long"})" "\n"
       R"({"key": "000000000", "caption": "red squares", "kind": "short"})" "\n\n"
       R"({"key": "000000001", "caption": "a blue circle", "kind": "long", "model": "x"})" "\n"},
      {"bad-kind.jsonl", R"({"key": "k", "caption": "c", "kind": "medium"})" "\n"},
  };
}

std::map<std::string, std::string> prompt_seeds() {
  std::map<std::string, std::string> seeds;
  for (world::Suite suite : world::all_suites()) {
    auto prompts = world::make_suite(suite, world::WorldConfig{}, 2, 7);
    for (size_t i = 0; i < prompts.size(); ++i)
      seeds[std::string(world::suite_name(suite)) + "-" + std::to_string(i) + ".json"] =
          world::to_json(prompts[i]).dump();
  }
  return seeds;
}

std::map<std::string, std::string> config_seeds() {
  std::map<std::string, std::string> seeds;
  for (const std::string& preset : Config::preset_names()) {
    std::string overrides = std::string(1, '\0') + "world.canvas=64\ndata.strict=true\n" +
                            "t2i.captions=human\nrun.name=\"x\"";
    seeds[preset + ".toml"] = Config::load(preset).to_toml() + overrides;
  }
  seeds["small.toml"] = "[world]\ncanvas = 32\n[t2i]\nlr = 2e-3\n";
  return seeds;
}

std::map<std::string, std::string> caption_seeds() {
  return {
      {"plain.txt", "three green squares to the left of a red circle"},
      {"long.txt", "a photo of two blue stars and a yellow heart at the top, and four red squares"},
      {"utf8.txt", "caf\xc3\xa9 \xe2\x98\x95 \xf0\x9f\x98\x80 na\xc3\xafve"},
      {"empty.txt", ""},
  };
}

void write_all(const fs::path& dir, const std::map<std::string, std::string>& seeds) {
  fs::create_directories(dir);
  for (const auto& [name, bytes] : seeds) write_file_atomic(dir / name, bytes);
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::cerr << "usage: recap_fuzz_seeds DIR\n";
    return 2;
  }
  const fs::path out = argv[1];
  try {
    fs::create_directories(out / ".scratch");
    write_all(out / "safetensors", safetensors_seeds());
    write_all(out / "shard", shard_seeds(out / ".scratch"));
    write_all(out / "image", image_seeds());
    write_all(out / "image_folder", image_folder_seeds());
    write_all(out / "manifest", manifest_seeds());
    write_all(out / "sidecar_folder", sidecar_folder_seeds());
    write_all(out / "jsonl", jsonl_seeds());
    write_all(out / "prompt", prompt_seeds());
    write_all(out / "config", config_seeds());
    write_all(out / "caption", caption_seeds());
    fs::remove_all(out / ".scratch");
  } catch (const Error& e) {
    std::cerr << "error: " << e.what() << "\n";
    return 2;
  }
  return 0;
}
