#include "runtime/offload_folder.h"

#include <sys/stat.h>

#include <algorithm>
#include <fstream>
#include <nlohmann/json.hpp>

#include "core/files.h"
#include "format/mapped_file.h"
#include "runtime/convert.h"
#include "strata/error.h"

namespace strata {
namespace {

using Json = nlohmann::json;

constexpr const char* kIndex = "strata-offload.json";
constexpr const char* kData = "offload.safetensors";

// How a quantized matrix was made, so that a change of layout, quantizer or
// source rebuilds it. Bump kQuantizer when quantize.cpp's choices change.
constexpr int kQuantizer = 1;
std::string quant_description(const QuantizedSource& q) {
  if (q.scheme) return "repacked " + q.layout->name;
  return "quantized " + q.layout->name + " from " + std::string(dtype_name(q.plain->dtype)) +
         (q.transposed ? " transposed" : "") + " by quantizer " + std::to_string(kQuantizer);
}

// What the folder must hold, in a form two runs can compare.
Json describe(const Checkpoint& checkpoint, const std::vector<OffloadFolder::Wanted>& wanted) {
  Json sources = Json::array();
  for (const auto& f : checkpoint.files()) {
    struct stat st {};
    if (::stat(f->path().c_str(), &st) != 0) throw Error("cannot stat checkpoint file", f->path().string());
    sources.push_back({{"path", std::filesystem::absolute(f->path()).string()},
                       {"size", static_cast<uint64_t>(st.st_size)},
                       {"mtime_ns", static_cast<int64_t>(st.st_mtim.tv_sec) * 1'000'000'000 + st.st_mtim.tv_nsec}});
  }
  Json tensors = Json::object();
  for (const auto& w : wanted)
    tensors[w.name] = w.quant ? quant_description(*w.quant)
                              : std::string(dtype_name(w.dtype)) + (w.transposed ? " transposed" : "");
  return {{"format", 1}, {"sources", sources}, {"tensors", tensors}};
}

}  // namespace

OffloadFolder::OffloadFolder(const std::filesystem::path& dir, const Checkpoint& checkpoint,
                             std::vector<Wanted> wanted, ThreadPool* pool,
                             const std::function<void(uint64_t, uint64_t)>& progress)
    : dir_(dir) {
  // Quantized blocks (multiples of kPlaneAlign bytes) first, then 4-byte
  // types: every size is then a multiple of the next one's alignment, so each
  // tensor of the file stays aligned for its element type (the header is
  // padded to 8).
  const auto alignment = [](const Wanted& w) { return w.quant ? kPlaneAlign : dtype_size(w.dtype); };
  std::stable_sort(wanted.begin(), wanted.end(),
                   [&](const Wanted& a, const Wanted& b) { return alignment(a) > alignment(b); });
  const Json want = describe(checkpoint, wanted);
  std::error_code ec;
  if (std::filesystem::exists(dir / kIndex, ec)) {
    try {
      if (Json::parse(read_file(dir / kIndex, "the offload index")) == want) {
        open_file();
        reused_ = true;
        for (const auto& w : wanted) info(w.name);  // every tensor there, or rebuild
        return;
      }
    } catch (const std::exception&) {
      // A damaged or foreign folder: rebuilt below.
    }
    file_.reset();
    by_name_.clear();
    reused_ = false;
  }
  build(checkpoint, wanted, pool, progress);
  std::ofstream(dir / kIndex) << want.dump(1) << "\n";
  if (!std::filesystem::exists(dir / kIndex)) throw Error("cannot write the offload index", (dir / kIndex).string());
}

void OffloadFolder::build(const Checkpoint& checkpoint, const std::vector<Wanted>& wanted, ThreadPool* pool,
                          const std::function<void(uint64_t, uint64_t)>& progress) {
  std::error_code ec;
  std::filesystem::create_directories(dir_, ec);
  if (ec) throw Error("cannot create the offload folder: " + ec.message(), dir_.string(), "", "pass --offload-folder DIR");
  std::filesystem::remove(dir_ / kIndex, ec);
  std::vector<SafetensorsWriter::Declared> declared;
  for (const auto& w : wanted) {
    if (w.quant) {
      declared.push_back({w.name, DType::U8, {static_cast<int64_t>(quant_bytes(*w.quant->layout, w.quant->rows, w.quant->cols))}});
      continue;
    }
    std::vector<int64_t> shape = checkpoint.get(w.name).shape;
    if (w.transposed) std::swap(shape[0], shape[1]);
    declared.push_back({w.name, w.dtype, shape});
  }
  const auto partial = dir_ / (std::string(kData) + ".partial");
  {
    SafetensorsWriter writer(partial, declared);
    // One piece at a time, so the host never holds a whole converted tensor.
    constexpr size_t kPiece = size_t{1} << 20;
    // Progress counts the source bytes: what the build reads.
    const auto source_bytes = [&](const Wanted& w) {
      return w.quant && w.quant->scheme ? w.quant->stored.stored_bytes : checkpoint.get(w.name).nbytes;
    };
    uint64_t total = 0, done = 0;
    for (const auto& w : wanted) total += source_bytes(w);
    if (progress) progress(0, total);
    std::vector<uint8_t> held;
    for (const auto& w : wanted) {
      if (w.quant) {
        // One matrix at a time: quantized, it is a fraction of a float one.
        held.resize(quant_bytes(*w.quant->layout, w.quant->rows, w.quant->cols));
        make_quantized(checkpoint, *w.quant, held.data(), pool, [&](uint64_t read) {
          if (progress) progress(done + read, total);
        });
        done += source_bytes(w);
        writer.append(held);
        if (w.quant->plain) release_mapped_pages(checkpoint.data(*w.quant->plain));
        continue;
      }
      const TensorInfo& info = checkpoint.get(w.name);
      const auto src = checkpoint.data(info);
      convert_in_pieces({info.dtype, src.data(), info.shape, w.transposed}, w.dtype, kPiece, pool,
                        [&](size_t, std::span<const uint8_t> piece) { writer.append(piece); });
      release_mapped_pages(src);
      done += source_bytes(w);
      if (progress) progress(done, total);
    }
    writer.finish();
  }
  std::filesystem::rename(partial, dir_ / kData, ec);
  if (ec) throw Error("cannot write the offload folder: " + ec.message(), (dir_ / kData).string());
  open_file();
}

void OffloadFolder::open_file() {
  file_ = std::make_unique<SafetensorsFile>(dir_ / kData);
  by_name_.clear();
  for (size_t i = 0; i < file_->tensors().size(); ++i) by_name_.emplace(file_->tensors()[i].name, i);
}

const TensorInfo& OffloadFolder::info(const std::string& name) const {
  if (const auto it = by_name_.find(name); it != by_name_.end()) return file_->tensors()[it->second];
  throw Error("the offload folder does not hold this tensor", dir_.string(), name, "delete the folder to rebuild it");
}

}  // namespace strata
