// The offload folder: weights of the disk tier that cannot be read straight
// from the checkpoint (another dtype than the one computed with, an offset
// the element type cannot be read at, a quantized layout that is repacked)
// are converted once into DIR, in
// safetensors format with an index, and read from there as the checkpoint's
// own files are: by the prefetcher, with direct reads into host staging.
//
// DIR/strata-offload.json records what the file holds and which checkpoint
// files (size, modification time) it was made from; a later run whose needs
// and sources match reuses it, anything else rebuilds it. The index is
// written last, so an interrupted build is never taken for a finished one.
// Thread-safety: immutable after construction.
#pragma once

#include <filesystem>
#include <functional>
#include <memory>
#include <optional>
#include <span>
#include <string>
#include <unordered_map>
#include <vector>

#include "core/thread_pool.h"
#include "format/safetensors.h"
#include "runtime/convert.h"

namespace strata {

class OffloadFolder {
 public:
  struct Wanted {
    std::string name;  // a tensor of the checkpoint
    DType dtype;       // the dtype to hold it in
    bool transposed = false;  // hold the transpose of a matrix (GPT-2's Conv1D weights)
    // A matrix held quantized (name is its weight's name), as one U8 tensor
    // of its held bytes; dtype and transposed are then ignored.
    std::optional<QuantizedSource> quant;
  };

  // Nothing to hold: no folder is touched.
  OffloadFolder() = default;
  // Makes sure dir holds `wanted`, converting from the checkpoint if needed.
  // Throws strata::Error when the folder cannot be written.
  // progress, if given, is told the source bytes converted so far of the total.
  OffloadFolder(const std::filesystem::path& dir, const Checkpoint& checkpoint, std::vector<Wanted> wanted,
                ThreadPool* pool, const std::function<void(uint64_t done, uint64_t total)>& progress = {});

  // Where a wanted tensor's converted bytes lie in the folder's file, and the bytes.
  const TensorInfo& info(const std::string& name) const;
  std::span<const uint8_t> data(const std::string& name) const { return file_->data(info(name)); }
  const std::filesystem::path& file() const { return file_->path(); }
  // Whether this run reused the folder's previous contents.
  bool reused() const { return reused_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  void build(const Checkpoint& checkpoint, const std::vector<Wanted>& wanted, ThreadPool* pool,
             const std::function<void(uint64_t, uint64_t)>& progress);
  void open_file();  // file_ and by_name_ from DIR's data file

  std::filesystem::path dir_;
  std::unique_ptr<SafetensorsFile> file_;
  std::unordered_map<std::string, size_t> by_name_;  // index in file_->tensors() (a MoE has thousands)
  bool reused_ = false;
};

}  // namespace strata
