// Reading and writing safetensors checkpoints, single file or sharded.
//
// Reading trusts nothing on disk: every header is validated before any tensor
// is handed out (header length within the file, JSON well formed, dtypes
// known, data_offsets inside the data area and non-overlapping, bytes ==
// product(shape) x dtype size; for shards, every index entry points at a file
// that exists and holds that tensor). Failures throw strata::Error naming the
// file and the tensor, with a hint.
#pragma once

#include <cstdint>
#include <filesystem>
#include <map>
#include <memory>
#include <span>
#include <string>
#include <vector>

#include "format/mapped_file.h"
#include "strata/dtype.h"

namespace strata {

// Where one tensor lives. Offsets are absolute within its file.
struct TensorInfo {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  size_t file_index = 0;     // index into Checkpoint::files()
  uint64_t file_offset = 0;  // absolute byte offset of the data in that file
  uint64_t nbytes = 0;

  int64_t numel() const;
};

// "[2, 3, 4]": a shape as messages and tables print it.
std::string shape_string(std::span<const int64_t> shape);

// One validated safetensors file, memory-mapped.
// Thread-safety: immutable after construction; any number of threads may read it.
class SafetensorsFile {
 public:
  explicit SafetensorsFile(const std::filesystem::path& path);

  const std::filesystem::path& path() const { return file_.path(); }
  // Tensors in file order (ascending offset); file_index is 0 in each.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  // The "__metadata__" string map, if any.
  const std::map<std::string, std::string>& metadata() const { return metadata_; }
  std::span<const uint8_t> data(const TensorInfo& info) const;
  const MappedFile& mapped() const { return file_; }

 private:
  MappedFile file_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, std::string> metadata_;
};

// All tensors of a model directory: model.safetensors, or the shards named by
// model.safetensors.index.json. Tensor data is reached through the maps; no
// tensor data is read when opening.
// Thread-safety: immutable after open(); any number of threads may read it.
class Checkpoint {
 public:
  // dir holds model.safetensors.index.json or model.safetensors (or exactly one
  // *.safetensors file). Throws strata::Error when none is there.
  static Checkpoint open(const std::filesystem::path& dir);

  // nullptr when absent.
  const TensorInfo* find(const std::string& name) const;
  // Throws strata::Error naming the tensor and the checkpoint when absent.
  const TensorInfo& get(const std::string& name) const;
  std::span<const uint8_t> data(const TensorInfo& info) const;

  // All tensors, sorted by name.
  const std::vector<TensorInfo>& tensors() const { return tensors_; }
  const std::vector<std::unique_ptr<SafetensorsFile>>& files() const { return files_; }
  const std::filesystem::path& dir() const { return dir_; }

 private:
  std::filesystem::path dir_;
  std::vector<std::unique_ptr<SafetensorsFile>> files_;
  std::vector<TensorInfo> tensors_;
  std::map<std::string, size_t> by_name_;
};

// A tensor to write: data must hold exactly numel x dtype_size bytes.
struct TensorToWrite {
  std::string name;
  DType dtype = DType::F32;
  std::vector<int64_t> shape;
  std::span<const uint8_t> data;
};

// Writes one safetensors file (header padded to 8 bytes with spaces, as the
// reference implementation does). Throws strata::Error on I/O failure.
void write_safetensors(const std::filesystem::path& path, const std::vector<TensorToWrite>& tensors,
                       const std::map<std::string, std::string>& metadata = {});

// Streaming writer for large files: the header is written from the declared
// tensors first, then each tensor's bytes are appended in declaration order
// with append(), possibly in several pieces. finish() checks every byte came.
class SafetensorsWriter {
 public:
  struct Declared {
    std::string name;
    DType dtype = DType::F32;
    std::vector<int64_t> shape;
  };
  SafetensorsWriter(const std::filesystem::path& path, std::vector<Declared> tensors,
                    const std::map<std::string, std::string>& metadata = {});
  ~SafetensorsWriter();
  SafetensorsWriter(const SafetensorsWriter&) = delete;
  SafetensorsWriter& operator=(const SafetensorsWriter&) = delete;

  void append(std::span<const uint8_t> bytes);
  void finish();
  // Total file size the declared tensors produce.
  uint64_t file_size() const { return file_size_; }

 private:
  std::filesystem::path path_;
  int fd_ = -1;
  uint64_t expected_data_bytes_ = 0;
  uint64_t written_data_bytes_ = 0;
  uint64_t file_size_ = 0;
};

}  // namespace strata
