// A model directory's tensors: one safetensors file, or the shards named by
// model.safetensors.index.json (the layout transformers' save_pretrained
// writes). Every shard is validated on open; no tensor data is read.
#include <algorithm>

#include "format/safetensors.h"
#include "format/safetensors_internal.h"
#include "strata/error.h"

namespace strata {
namespace {

namespace fs = std::filesystem;
using nlohmann::json;

constexpr const char* kIndexName = "model.safetensors.index.json";
constexpr const char* kSingleName = "model.safetensors";
constexpr const char* kBadIndex = "corrupt model.safetensors.index.json?";

// The parsed weight_map: tensor name → shard file name, in name order.
using WeightMap = std::map<std::string, std::string>;

// Shard names come from a downloaded file, so they must stay inside the model
// directory: plain names only, no separators, no parent references.
bool is_plain_file_name(const std::string& name) {
  return !name.empty() && name != "." && name.find('/') == std::string::npos &&
         name.find('\\') == std::string::npos && name.find('\0') == std::string::npos &&
         name.find("..") == std::string::npos;
}

WeightMap read_weight_map(const fs::path& index_path) {
  const std::string file = index_path.string();
  const MappedFile mapped(index_path);
  const std::string_view text(reinterpret_cast<const char*>(mapped.bytes().data()), mapped.size());
  if (text.size() > detail::kMaxHeaderBytes)
    throw Error("index is implausibly large (" + std::to_string(text.size()) + " bytes)", file, {},
                kBadIndex);
  const json index = detail::parse_json_strict(text, {file, "index", kBadIndex});
  if (!index.is_object()) throw Error("index is not a JSON object", file, {}, kBadIndex);
  const auto it = index.find("weight_map");
  if (it == index.end() || !it->is_object())
    throw Error("index has no \"weight_map\" object", file, {}, kBadIndex);

  WeightMap map;
  for (const auto& [tensor, shard] : it->items()) {
    if (!shard.is_string())
      throw Error("weight_map value is not a file name", file, detail::printable(tensor, 200),
                  kBadIndex);
    const auto& name = shard.get_ref<const std::string&>();
    if (!is_plain_file_name(name))
      throw Error("weight_map names shard \"" + detail::printable(name) +
                      "\", which is not a plain file name in the model directory",
                  file, detail::printable(tensor, 200),
                  "path traversal refused; corrupt or malicious index?");
    map.emplace(tensor, name);
  }
  if (map.empty()) throw Error("weight_map is empty", file, {}, kBadIndex);
  return map;
}

// The weight files of a directory that has no index: model.safetensors, else
// the only *.safetensors file there.
fs::path find_single_file(const fs::path& dir) {
  if (fs::is_regular_file(dir / kSingleName)) return dir / kSingleName;
  std::vector<std::string> found;
  for (const fs::directory_entry& entry : fs::directory_iterator(dir))
    if (entry.is_regular_file() && entry.path().extension() == ".safetensors")
      found.push_back(entry.path().filename().string());
  std::sort(found.begin(), found.end());
  if (found.size() == 1) return dir / found.front();
  if (found.empty()) {
    // The directory is in the message already; naming it as the file too would repeat it.
    throw Error("no safetensors weights in " + dir.string(), {}, {},
                "expected model.safetensors or model.safetensors.index.json; incomplete download?");
  }
  std::string list;
  for (const std::string& name : found) list += (list.empty() ? "" : ", ") + name;
  throw Error("several .safetensors files (" + list + ") and no model.safetensors.index.json",
              dir.string(), {}, "which one holds the weights? add the index or rename to model.safetensors");
}

using Files = std::vector<std::unique_ptr<SafetensorsFile>>;

// Opens each distinct shard once, in name order, so file indices are stable.
// Returns the files and, for each shard name, its index in them.
Files open_shards(const fs::path& dir, const WeightMap& weight_map,
                  std::map<std::string, size_t>& shard_index) {
  for (const auto& [tensor, shard] : weight_map) {
    if (shard_index.count(shard)) continue;
    const fs::path path = dir / shard;
    // Checked before opening any shard, so a missing one is reported as such
    // rather than as whatever a present shard might be wrong about.
    if (!fs::is_regular_file(path))
      throw Error("shard listed in " + std::string(kIndexName) + " is missing", path.string(),
                  detail::printable(tensor, 200), "incomplete download?");
    shard_index.emplace(shard, 0);
  }
  Files files;
  for (auto& [shard, index] : shard_index) {
    index = files.size();
    files.push_back(std::make_unique<SafetensorsFile>(dir / shard));
  }
  return files;
}

// All tensors of all files, sorted by name, each tagged with its file.
std::vector<TensorInfo> collect_tensors(const Files& files, const fs::path& dir) {
  std::vector<TensorInfo> tensors;
  for (size_t f = 0; f < files.size(); ++f)
    for (TensorInfo info : files[f]->tensors()) {
      info.file_index = f;
      tensors.push_back(std::move(info));
    }
  std::sort(tensors.begin(), tensors.end(),
            [](const TensorInfo& a, const TensorInfo& b) { return a.name < b.name; });
  // A name in two shards is ambiguous: which copy is the weight?
  for (size_t i = 1; i < tensors.size(); ++i)
    if (tensors[i].name == tensors[i - 1].name)
      throw Error("tensor is stored in two shards: " +
                      files[tensors[i - 1].file_index]->path().filename().string() + " and " +
                      files[tensors[i].file_index]->path().filename().string(),
                  dir.string(), detail::printable(tensors[i].name, 200), "mixed-up shards?");
  return tensors;
}

// Every indexed tensor must be in the shard the index names. Tensors a shard
// holds beyond the index are kept: transformers loads whole shards too.
void check_weight_map(const WeightMap& weight_map, const std::map<std::string, size_t>& shard_index,
                      const Checkpoint& ckpt) {
  for (const auto& [tensor, shard] : weight_map) {
    const size_t want = shard_index.at(shard);
    const TensorInfo* info = ckpt.find(tensor);
    if (info && info->file_index == want) continue;
    const std::string hint =
        info ? "the index is stale: it is in " +
                   ckpt.files()[info->file_index]->path().filename().string()
             : "incomplete download or mixed-up shards?";
    throw Error("tensor listed in " + std::string(kIndexName) + " is not in this shard",
                ckpt.files()[want]->path().string(), detail::printable(tensor, 200), hint);
  }
}

}  // namespace

Checkpoint Checkpoint::open(const fs::path& dir) {
  std::error_code ec;
  if (!fs::is_directory(dir, ec))
    throw Error(fs::exists(dir, ec) ? "not a directory" : "no such directory", dir.string(), {},
                "pass the model directory (with config.json)");

  Checkpoint ckpt;
  ckpt.dir_ = dir;
  const fs::path index_path = dir / kIndexName;
  WeightMap weight_map;
  std::map<std::string, size_t> shard_index;
  try {
    if (fs::exists(index_path)) {
      weight_map = read_weight_map(index_path);
      ckpt.files_ = open_shards(dir, weight_map, shard_index);
    } else {
      ckpt.files_.push_back(std::make_unique<SafetensorsFile>(find_single_file(dir)));
    }
  } catch (const fs::filesystem_error& e) {
    // Listing or probing the directory failed (permissions, I/O): same error type as the rest.
    throw Error(e.code().message(), e.path1().empty() ? dir.string() : e.path1().string(), {},
                "permissions?");
  }
  ckpt.tensors_ = collect_tensors(ckpt.files_, dir);
  for (size_t i = 0; i < ckpt.tensors_.size(); ++i) ckpt.by_name_.emplace(ckpt.tensors_[i].name, i);
  check_weight_map(weight_map, shard_index, ckpt);
  return ckpt;
}

const TensorInfo* Checkpoint::find(const std::string& name) const {
  const auto it = by_name_.find(name);
  return it == by_name_.end() ? nullptr : &tensors_[it->second];
}

const TensorInfo& Checkpoint::get(const std::string& name) const {
  if (const TensorInfo* info = find(name)) return *info;
  throw Error("no such tensor in the checkpoint", dir_.string(), name,
              "missing tensor; is this the right architecture?");
}

std::span<const uint8_t> Checkpoint::data(const TensorInfo& info) const {
  if (info.file_index >= files_.size())
    throw Error("tensor names file " + std::to_string(info.file_index) + " of " +
                    std::to_string(files_.size()),
                dir_.string(), info.name, "TensorInfo from another checkpoint?");
  return files_[info.file_index]->data(info);
}

}  // namespace strata
