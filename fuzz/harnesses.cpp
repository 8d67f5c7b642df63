#include "harnesses.h"

#include <sys/mman.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <map>
#include <stdexcept>
#include <string>

#include <nlohmann/json.hpp>

#include "core/atomic_file.h"
#include "core/config.h"
#include "core/error.h"
#include "core/jsonl.h"
#include "core/safetensors.h"
#include "data/image.h"
#include "data/image_folder.h"
#include "data/image_header.h"
#include "data/manifest.h"
#include "data/rejects.h"
#include "data/sidecar_folder.h"
#include "data/source.h"
#include "data/text_checks.h"
#include "stages/arm_captions.h"
#include "world/parser.h"
#include "world/prompts.h"

namespace recap::fuzz {

namespace fs = std::filesystem;

namespace {

// A failed property: thrown as a type no harness catches, so it is a finding.
void expect(bool ok, const std::string& what) {
  if (!ok) throw std::logic_error("fuzz check failed: " + what);
}

// Runs `parse`; recap::Error is the parser refusing the input, which is fine.
template <typename F>
void refusing_is_fine(F&& parse) {
  try {
    parse();
  } catch (const Error&) {
  }
}

// The input as a file the readers can open by path, in memory (no disk traffic per run).
class MemoryFile {
 public:
  explicit MemoryFile(std::string_view data) : fd_(memfd_create("recap-fuzz", 0)) {
    if (fd_ < 0) throw std::runtime_error("memfd_create failed");
    for (std::size_t done = 0; done < data.size();) {
      ssize_t n = ::write(fd_, data.data() + done, data.size() - done);
      if (n <= 0) throw std::runtime_error("write to memfd failed");
      done += static_cast<std::size_t>(n);
    }
  }
  ~MemoryFile() { ::close(fd_); }
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;
  // Opening it reads from the start, whatever this descriptor's offset.
  fs::path path() const { return "/proc/self/fd/" + std::to_string(fd_); }

 private:
  int fd_;
};

// Small limits keep one run fast and its memory far below libFuzzer's rss limit; the code
// paths are the ones the defaults take.
data::ReadLimits fuzz_read_limits() {
  data::ReadLimits limits;
  limits.max_entry_bytes = 1 << 20;
  limits.max_shard_bytes = 16 << 20;
  limits.caption.max_bytes = 1024;
  limits.caption.max_chars = 256;
  return limits;
}

std::string tiny_png() {
  data::Image image{3, 2, 3, std::vector<uint8_t>(3 * 2 * 3, 128)};
  return data::encode_png(image);
}

// The folder the image_folder harness lists; made once per process, removed at exit.
class ImageFolder {
 public:
  ImageFolder() : root_(fs::temp_directory_path() / ("recap-fuzz-" + std::to_string(getpid()))) {
    fs::remove_all(root_);
    fs::create_directories(root_ / "folder" / "sub");
    fs::create_directories(root_ / "folder" / "d");
    const std::string png = tiny_png();
    write_file_atomic(root_ / "folder" / "a.png", png);
    write_file_atomic(root_ / "folder" / "b.jpg", data::encode_jpeg({2, 2, 3, std::vector<uint8_t>(12, 7)}));
    write_file_atomic(root_ / "folder" / "sub" / "c.png", png);
    write_file_atomic(root_ / "outside.png", png);
    fs::create_symlink("../outside.png", root_ / "folder" / "link.png");
  }
  ~ImageFolder() {
    std::error_code ec;
    fs::remove_all(root_, ec);
  }
  fs::path folder() const { return root_ / "folder"; }

 private:
  fs::path root_;
};

// One folder per process, shared by the harnesses that read files beside it.
const ImageFolder& shared_folder() {
  static const ImageFolder folder;
  return folder;
}

}  // namespace

const std::vector<const char*>& image_folder_files() {
  static const std::vector<const char*> files{"a.png", "b.jpg", "sub/c.png", "d", "link.png"};
  return files;
}

void safetensors(std::string_view data) {
  std::optional<Safetensors> parsed;
  refusing_is_fine([&] { parsed = Safetensors::parse(std::string(data), "fuzz"); });
  if (!parsed) return;
  std::vector<TensorView> views;
  for (const TensorInfo& t : parsed->tensors()) {
    std::string_view bytes = parsed->data(t);
    expect(bytes.size() == t.nbytes(), t.name + ": data() size differs from its range");
    expect(t.nbytes() == static_cast<uint64_t>(t.numel()) * dtype_size(t.dtype),
           t.name + ": byte range does not match shape and dtype");
    views.push_back({t.name, t.dtype, t.shape, bytes});
  }
  // What the reader accepts, the writer either refuses (it may be stricter) or writes back to
  // a file that reads as the same tensors.
  std::string written;
  refusing_is_fine([&] { written = serialize_safetensors(views, parsed->metadata()); });
  if (written.empty()) return;
  Safetensors again = Safetensors::parse(written, "fuzz round trip");
  expect(again.metadata() == parsed->metadata(), "metadata changed in a round trip");
  expect(again.tensors().size() == parsed->tensors().size(), "tensor count changed");
  for (const TensorInfo& t : parsed->tensors()) {
    const TensorInfo* u = again.find(t.name);
    expect(u && u->dtype == t.dtype && u->shape == t.shape && again.data(*u) == parsed->data(t),
           t.name + ": changed in a round trip");
  }
}

void shard(std::string_view data) {
  MemoryFile file(data);
  const data::ReadLimits limits = fuzz_read_limits();
  refusing_is_fine([&] {
    auto source = data::open_source(file.path(), limits, data::OnBroken::kReject);
    bool broken = false;
    while (auto item = source->next()) {
      expect(!broken, "an item after the broken_shard reject");
      if (auto* sample = std::get_if<data::Sample>(&*item)) {
        expect(!data::check_caption(sample->caption, limits.caption),
               "a sample whose caption fails check_caption");
        expect(sample->image_bytes.size() <= limits.max_entry_bytes, "an image over the limit");
      } else {
        broken = std::get<data::Reject>(*item).reason == data::reason::kBrokenShard;
      }
    }
  });
}

void image(std::string_view data) {
  auto header = data::read_image_header(data);
  if (header) expect(data::sniff_format(data) == header->format, "header and sniffed format differ");
  if (auto format = data::sniff_format(data)) data::has_complete_body(data, *format);
  data::DecodeLimits limits;
  limits.max_pixels = 1 << 20;
  refusing_is_fine([&] {
    data::DecodeResult decoded = data::decode_image(data, limits);
    if (!decoded.image) {
      expect(!decoded.reason.empty(), "a failed decode without a reason");
      return;
    }
    const data::Image& im = *decoded.image;
    expect(im.channels == 3 && im.width > 0 && im.height > 0 &&
               im.pixels.size() == static_cast<std::size_t>(im.width) * im.height * 3,
           "a malformed decoded image");
    // The bomb guard reads the header; the decoder must not produce more than it declared.
    expect(static_cast<uint64_t>(im.width) * im.height <= limits.max_pixels,
           "decoded " + std::to_string(im.width) + "x" + std::to_string(im.height) +
               " past the pixel limit");
    data::fit_square(im, 8);
  });
}

void image_folder(std::string_view data) {
  const ImageFolder& folder = shared_folder();
  {
    std::ofstream list(folder.folder() / "captions.jsonl", std::ios::binary | std::ios::trunc);
    list.write(data.data(), static_cast<std::streamsize>(data.size()));
    if (!list) throw std::runtime_error("cannot write captions.jsonl");
  }
  const data::ReadLimits limits = fuzz_read_limits();
  refusing_is_fine([&] {
    data::ImageFolderSource source(folder.folder(), limits);
    while (auto item = source.next())
      if (auto* sample = std::get_if<data::Sample>(&*item))
        expect(!data::check_caption(sample->caption, limits.caption),
               "a sample whose caption fails check_caption");
  });
}

namespace {

// Every sample a source hands out keeps its captions within the limits; rejects are fine.
void drain(data::SampleSource& source, const data::ReadLimits& limits) {
  while (auto item = source.next())
    if (auto* sample = std::get_if<data::Sample>(&*item)) {
      expect(!data::check_caption(sample->caption, limits.caption),
             "a sample whose caption fails check_caption");
      expect(sample->image_bytes.size() <= limits.max_entry_bytes, "an image over the limit");
    }
}

void write_bytes(const fs::path& path, std::string_view data) {
  std::ofstream out(path, std::ios::binary | std::ios::trunc);
  out.write(data.data(), static_cast<std::streamsize>(data.size()));
  if (!out) throw std::runtime_error("cannot write " + path.string());
}

// A fuzzed file name made safe to create under the harness's folder: [A-Za-z0-9._-/] only, no
// empty, "." or ".." component, at most 3 levels; empty when nothing is left.
std::string safe_name(std::string_view raw) {
  std::string name;
  for (char c : raw.substr(0, 64))
    if (std::isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-' || c == '/')
      name.push_back(c);
  std::string out;
  int depth = 0;
  for (std::size_t start = 0; start < name.size();) {
    std::size_t end = std::min(name.find('/', start), name.size());
    std::string part = name.substr(start, end - start);
    start = end + 1;
    if (part.empty() || part == "." || part == ".." || ++depth > 3) continue;
    out += (out.empty() ? "" : "/") + part;
  }
  return out;
}

}  // namespace

std::string sidecar_folder_seed(const std::vector<std::pair<std::string, std::string>>& files) {
  std::string data;
  for (const auto& [name, bytes] : files) data += (data.empty() ? "" : std::string(1, '\0')) + name + "\n" + bytes;
  return data;
}

void manifest(std::string_view data) {
  const ImageFolder& folder = shared_folder();
  data::ReadLimits limits = fuzz_read_limits();
  for (const char* name : {"manifest.csv", "manifest.jsonl"}) {
    write_bytes(folder.folder() / name, data);
    for (const char* field : {"caption", "re_caption"}) {
      limits.caption_field = field;
      refusing_is_fine([&] {
        data::ManifestSource source(folder.folder() / name, limits);
        drain(source, limits);
      });
    }
  }
}

void sidecar_folder(std::string_view data) {
  const ImageFolder& folder = shared_folder();
  const fs::path root = folder.folder() / "sidecars";
  fs::remove_all(root);
  fs::create_directories(root);
  write_file_atomic(root / "a.png", tiny_png());
  fs::create_symlink("../../outside.png", root / "out.png");
  int files = 0;
  for (std::size_t start = 0; start <= data.size() && files < 16; ++files) {
    std::size_t end = std::min(data.find('\0', start), data.size());
    std::string_view record = data.substr(start, end - start);
    start = end + 1;
    std::size_t newline = std::min(record.find('\n'), record.size());
    const std::string name = safe_name(record.substr(0, newline));
    if (name.empty()) continue;
    std::error_code ec;
    fs::create_directories((root / name).parent_path(), ec);
    if (ec || fs::is_directory(root / name, ec)) continue;  // a name taken by a folder
    write_bytes(root / name, record.substr(std::min(newline + 1, record.size())));
  }
  const data::ReadLimits limits = fuzz_read_limits();
  refusing_is_fine([&] {
    data::SidecarFolderSource source(root, limits);
    drain(source, limits);
  });
}

void jsonl(std::string_view data) {
  MemoryFile file(data);
  refusing_is_fine([&] { read_jsonl(file.path()); });
  refusing_is_fine([&] { stages::load_recaptions({file.path()}); });
}

void prompt(std::string_view data) {
  nlohmann::json json = nlohmann::json::parse(data, nullptr, /*allow_exceptions=*/false);
  if (json.is_discarded()) return;
  refusing_is_fine([&] {
    world::Prompt p = world::prompt_from_json(json);
    // What reads must write back to the same prompt (prompt files are made by to_json).
    world::Prompt again = world::prompt_from_json(world::to_json(p));
    expect(again.suite == p.suite && again.text == p.text &&
               world::to_json(again) == world::to_json(p),
           "a prompt changed in a round trip");
  });
}

void config(std::string_view data) {
  std::size_t nul = data.find('\0');
  std::string_view toml = data.substr(0, nul);
  std::vector<std::string> overrides;
  if (nul != std::string_view::npos) {
    std::string_view rest = data.substr(nul + 1);
    while (!rest.empty()) {
      std::size_t end = std::min(rest.find('\n'), rest.size());
      overrides.emplace_back(rest.substr(0, end));
      rest.remove_prefix(std::min(end + 1, rest.size()));
    }
  }
  std::optional<Config> loaded;
  refusing_is_fine([&] { loaded = Config::from_toml(toml, "fuzz", overrides); });
  if (!loaded) return;
  // The effective config is saved with every run (to_toml) and read back on resume.
  try {
    Config again = Config::from_toml(loaded->to_toml(), "fuzz round trip");
    expect(again.to_json() == loaded->to_json(), "config values changed in a round trip");
  } catch (const Error& e) {
    expect(false, std::string("the effective config does not load again: ") + e.what());
  }
}

void caption(std::string_view data) {
  data::CaptionLimits limits;
  bool valid = data::is_valid_utf8(data);
  auto problem = data::check_caption(data, limits);
  if (!valid) expect(problem.has_value(), "invalid UTF-8 passed check_caption");
  if (problem) return;
  expect(data::utf8_length(data) <= data.size(), "more code points than bytes");
  static const world::CaptionParser parser{world::WorldConfig{}};
  refusing_is_fine([&] { parser.parse(data); });
}

}  // namespace recap::fuzz
