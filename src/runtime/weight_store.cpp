#include "runtime/weight_store.h"

#include <algorithm>
#include <map>
#include <set>

#include "format/mapped_file.h"
#include "models/memory_needs.h"
#include "runtime/convert.h"
#include "strata/error.h"

namespace strata {
namespace {

enum class Tier { resident, host, disk };

// One tensor and where it goes, decided before any memory is taken.
struct Item {
  const WeightSpec* spec = nullptr;
  const TensorInfo* info = nullptr;
  DType dtype = DType::F32;  // as held
  size_t bytes = 0;          // as held, unpadded
  Tier tier = Tier::resident;
  Device* home = nullptr;  // resident: the executing device; host tier: the host
  size_t offset = 0;       // in home's region
  bool in_checkpoint = false;  // disk tier read from the checkpoint itself (else the offload folder)
};

// Whether the checkpoint's own bytes can be used: the dtype computed with,
// and, when the CPU computes on them, aligned for element reads (a read lands
// in its staging slot with the alignment of its file offset; copies on to a
// device need none).
bool readable_in_place(const Item& item, const Checkpoint& checkpoint, bool copied) {
  const auto address = reinterpret_cast<uintptr_t>(checkpoint.data(*item.info).data());
  return item.dtype == item.info->dtype && (copied || address % dtype_size(item.dtype) == 0);
}

// Elements converted per piece when a converted tensor goes to a device: the
// host holds one piece at a time, never a whole tensor.
constexpr size_t kConvertPiece = size_t{1} << 20;

}  // namespace

const TensorInfo& WeightStore::expect(const WeightSpec& weight) const {
  const TensorInfo& info = checkpoint_.get(weight.name);
  if (info.shape != weight.shape)
    throw Error("shape " + shape_string(info.shape) + " does not match config.json (expected " +
                    shape_string(weight.shape) + ")",
                checkpoint_.dir().string(), weight.name, "config.json and weights disagree");
  if (info.dtype != DType::F32 && info.dtype != DType::BF16 && info.dtype != DType::F16)
    throw Error("weights stored as " + std::string(dtype_name(info.dtype)) + " are not supported",
                checkpoint_.dir().string(), weight.name, "strata reads F32, BF16 and F16 weights");
  return info;
}

WeightStore::WeightStore(Checkpoint checkpoint, const std::vector<BlockSpec>& blocks,
                         const std::vector<BlockPlacement>& placement, Device& host,
                         const WeightStoreOptions& options)
    : checkpoint_(std::move(checkpoint)),
      staged_(blocks.size()),
      stream_index_(blocks.size(), kNotStreamed),
      read_waited_(blocks.size(), false),
      in_use_(blocks.size(), false) {
  // 1. Decide each tensor's tier and its place in its device's region.
  std::vector<Item> items;
  std::unordered_map<std::string, size_t> item_of;
  std::map<Device*, size_t> region_bytes;
  std::vector<OffloadFolder::Wanted> to_convert;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const BlockPlacement& p = placement[b];
    for (const WeightSpec& w : blocks[b].weights) {
      if (item_of.count(w.name)) continue;  // tied: held once (placement checked they agree)
      Item item;
      item.spec = &w;
      item.info = &expect(w);
      item.dtype = w.is_vector() ? DType::F32 : options.compute_dtype.value_or(item.info->dtype);
      item.bytes = static_cast<size_t>(item.info->numel()) * dtype_size(item.dtype);
      if (p.tier.kind == plan::Device::disk) {
        item.tier = Tier::disk;
        item.in_checkpoint = readable_in_place(item, checkpoint_, p.streamed());
        if (!item.in_checkpoint) to_convert.push_back({w.name, item.dtype});
      } else {
        item.tier = p.streamed() ? Tier::host : Tier::resident;
        item.home = p.streamed() ? &host : p.exec;
        item.offset = region_bytes[item.home];
        region_bytes[item.home] += held_bytes(w, item.info->dtype, options.compute_dtype);
      }
      item_of.emplace(w.name, items.size());
      items.push_back(item);
    }
  }

  // 2. Convert what the disk tier cannot read as stored.
  if (!to_convert.empty()) {
    if (options.offload_folder.empty())
      throw Error(std::to_string(to_convert.size()) + " tensors on the disk tier need converting (e.g. " +
                      to_convert.front().name + " to " + std::string(dtype_name(to_convert.front().dtype)) + ")",
                  checkpoint_.dir().string(), "", "pass --offload-folder DIR to hold the converted copies");
    offload_ = OffloadFolder(options.offload_folder, checkpoint_, to_convert, options.pool);
  }
  // Where each disk tensor's bytes are read from: the checkpoint itself, or the folder.
  auto disk_source = [&](const Item& item) -> std::pair<std::filesystem::path, uint64_t> {
    if (item.in_checkpoint) return {checkpoint_.files()[item.info->file_index]->path(), item.info->file_offset};
    return {offload_.file(), offload_.info(item.spec->name).file_offset};
  };

  // 3. Take the memory: one region per device, then the staging slots.
  std::map<Device*, uint8_t*> region;
  for (const auto& [device, bytes] : region_bytes) {
    buffers_.emplace_back(*device, bytes, "weights");
    region[device] = buffers_.back().data();
  }
  // Blocks streamed to an accelerator take turns in its staging slots: the
  // j-th such block on a device uses slot j % slots, so one slot fills while
  // the block in the other computes; a block sharing a tensor with an earlier
  // one (a tied head) takes that block's slot, so the tensor has one address.
  // Every slot of a device is the size of its largest streamed block.
  std::map<Device*, size_t> slot_bytes, streamed_count, slots_used;
  std::unordered_map<std::string, size_t> staged_slot;  // tensor -> slot
  const size_t slots_per_device = std::max<size_t>(options.staging_slots, 1);
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (!placement[b].streamed()) continue;
    Device* device = placement[b].exec;
    size_t bytes = 0, slot_index = streamed_count[device]++ % slots_per_device;
    for (const WeightSpec& w : blocks[b].weights) {
      bytes += align64(items[item_of.at(w.name)].bytes);
      if (auto it = staged_slot.find(w.name); it != staged_slot.end()) slot_index = it->second;
    }
    for (const WeightSpec& w : blocks[b].weights) staged_slot.emplace(w.name, slot_index);
    slot_bytes[device] = std::max(slot_bytes[device], bytes);
    slots_used[device] = std::max(slots_used[device], slot_index + 1);
    staged_[b].device = device;
    staged_[b].slot = slot_index;
  }
  std::map<Device*, uint8_t*> slot;
  for (const auto& [device, bytes] : slot_bytes) {
    const size_t slots = slots_used.at(device);
    buffers_.emplace_back(*device, slots * bytes, "the staging slots for offloaded weights");
    slot[device] = buffers_.back().data();
    slot_holds_[device].assign(slots, kNone);
  }

  // Disk-tier blocks, in execution order, read into host staging slots: block
  // s of the stream into slot s % slots, except that a block sharing a tensor
  // with an earlier one (a tied head) takes that block's slot, so the tensor
  // has one address. A block's tensors that lie back to back in one file are
  // read with one request (a layer is usually one run), so the disk sees few,
  // large reads; each tensor keeps the alignment of its file offset.
  struct Run {
    std::filesystem::path path;
    uint64_t offset = 0, end = 0;
    size_t position = 0;  // page-aligned, in the slot
  };
  std::vector<size_t> disk_blocks, slot_of;
  std::vector<std::vector<Run>> runs;  // per disk block
  std::unordered_map<std::string, std::pair<size_t, size_t>> disk_position;  // tensor -> (slot, position)
  std::vector<std::vector<size_t>> positions(blocks.size());
  size_t host_slot_bytes = 0;
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (placement[b].tier.kind != plan::Device::disk) continue;
    stream_index_[b] = disk_blocks.size();
    size_t slot_index = disk_blocks.size() % std::max<size_t>(options.disk_read_slots, 1);
    const auto& weights = blocks[b].weights;
    for (const WeightSpec& w : weights)
      if (auto it = disk_position.find(w.name); it != disk_position.end()) slot_index = it->second.first;
    std::vector<std::pair<std::filesystem::path, uint64_t>> source(weights.size());
    std::vector<size_t> order(weights.size());
    for (size_t t = 0; t < weights.size(); ++t) {
      source[t] = disk_source(items[item_of.at(weights[t].name)]);
      order[t] = t;
    }
    std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return source[x] < source[y]; });
    positions[b].resize(weights.size());
    std::vector<Run> block_runs;
    size_t at = 0;
    for (const size_t t : order) {
      const auto& [path, offset] = source[t];
      const uint64_t end = offset + items[item_of.at(weights[t].name)].bytes;
      if (!block_runs.empty() && block_runs.back().path == path && block_runs.back().end == offset) {
        Run& run = block_runs.back();
        run.end = end;
        at = run.position + DirectReader::span_bytes(run.offset, run.end - run.offset);
      } else {
        block_runs.push_back({path, offset, end, at});
        at += DirectReader::span_bytes(offset, end - offset);
      }
      const Run& run = block_runs.back();
      // Where the page holding this tensor's first byte lands.
      const size_t position = run.position + static_cast<size_t>((offset - DirectReader::lead(offset)) -
                                                                 (run.offset - DirectReader::lead(run.offset)));
      const auto [it, fresh] = disk_position.emplace(weights[t].name, std::make_pair(slot_index, position));
      if (!fresh && (it->second.first != slot_index || it->second.second != position))
        throw Error("internal: tied tensor " + weights[t].name + " would be read to two places");
      positions[b][t] = position;
    }
    host_slot_bytes = std::max(host_slot_bytes, at);
    disk_blocks.push_back(b);
    slot_of.push_back(slot_index);
    runs.push_back(std::move(block_runs));
  }
  const size_t host_slots = disk_blocks.empty() ? 0 : *std::max_element(slot_of.begin(), slot_of.end()) + 1;
  uint8_t* host_staging = nullptr;
  if (host_slots > 0) {
    buffers_.emplace_back(host, host_slots * host_slot_bytes, "staging for weights read from disk");
    host_staging = buffers_.back().data();
    host_staging_bytes_ = host_slots * host_slot_bytes;
  }

  // 4. Fill the regions, converting on the way.
  std::vector<uint8_t> converted;
  for (const Item& item : items) {
    if (item.tier == Tier::disk) continue;
    uint8_t* dst = region.at(item.home) + item.offset;
    const auto src = checkpoint_.data(*item.info);
    const auto n = static_cast<size_t>(item.info->numel());
    if (item.home == &host) {  // the CPU writes its own memory directly
      convert_elements(item.info->dtype, src.data(), item.dtype, dst, n, options.pool);
    } else if (item.dtype == item.info->dtype) {
      item.home->copy_in(dst, src.data(), item.bytes);
    } else {
      const size_t from_size = dtype_size(item.info->dtype), to_size = dtype_size(item.dtype);
      converted.resize(std::min(n, kConvertPiece) * to_size);
      for (size_t at = 0; at < n; at += kConvertPiece) {
        const size_t count = std::min(kConvertPiece, n - at);
        convert_elements(item.info->dtype, src.data() + at * from_size, item.dtype, converted.data(), count,
                         options.pool);
        item.home->copy_in(dst + at * to_size, converted.data(), count * to_size);
      }
    }
    // The file pages were read once; keep them out of this process's memory.
    release_mapped_pages(src);
    if (item.home == &host && item.tier == Tier::resident && !item.spec->is_vector())
      resident_host_ranges_.emplace_back(dst, item.bytes);
  }

  // 5. Views, the disk reads, and the copies each block's hooks perform.
  std::vector<std::vector<Prefetcher::Read>> reads(disk_blocks.size());
  for (size_t s = 0; s < disk_blocks.size(); ++s)
    for (const Run& run : runs[s]) {
      auto& reader = readers_[run.path];
      if (!reader) reader = std::make_unique<DirectReader>(run.path);
      reads[s].push_back({reader.get(), run.offset, run.end - run.offset,
                          host_staging + slot_of[s] * host_slot_bytes + run.position});
      disk_ranges_.push_back({run.path, run.offset, run.end - run.offset});
    }
  for (size_t b = 0; b < blocks.size(); ++b) {
    size_t slot_offset = 0;
    for (size_t t = 0; t < blocks[b].weights.size(); ++t) {
      const WeightSpec& w = blocks[b].weights[t];
      const Item& item = items[item_of.at(w.name)];
      const uint8_t* source = nullptr;
      if (item.tier == Tier::disk) {
        const size_t s = stream_index_[b];
        const uint8_t* page = host_staging + slot_of[s] * host_slot_bytes + positions[b][t];
        source = page + DirectReader::lead(disk_source(item).second);
        disk_bytes_ += item.bytes;
      } else {
        source = region.at(item.home) + item.offset;
      }
      void* view = const_cast<uint8_t*>(source);
      if (StagedBlock& st = staged_[b]; st.device) {
        view = slot.at(st.device) + st.slot * slot_bytes.at(st.device) + slot_offset;
        st.copies.push_back({view, source, item.bytes});
        slot_offset += align64(item.bytes);
      }
      const auto [it, fresh] = held_.emplace(w.name, Held{view, item.dtype, w.shape});
      if (!fresh && it->second.data != view)
        throw Error("internal: tied tensor " + w.name + " would be streamed to two places");
    }
  }
  plan_prefetch(blocks.size());
  pin_for_copies(placement, host);
  try {
    if (!disk_blocks.empty()) prefetcher_ = std::make_unique<Prefetcher>(std::move(reads), slot_of, host_slots);
  } catch (...) {
    // The destructor does not run for a half-built object.
    for (const auto& [device, data] : pinned_) device->unpin_host(data);
    throw;
  }
}

WeightStore::~WeightStore() {
  // Queued fills may still read the host tier or the read slots (a step that
  // failed midway): they finish before the memory is unpinned and released.
  for (const auto& [device, holds] : slot_holds_)
    for (size_t k = 0; k < holds.size(); ++k) {
      try {
        device->finish_fill(k);
      } catch (const Error&) {
        // A device that failed has nothing left in flight; a destructor must not throw.
      }
    }
  for (const auto& [device, data] : pinned_) device->unpin_host(data);
}

// Which block's fill each hook starts (the next streamed block, so its copy
// runs while the blocks before it compute), and how many bytes a pass copies:
// a slot that holds one content (one block, or a tied head and the embedding
// whose copies are the same) is filled once and then kept.
void WeightStore::plan_prefetch(size_t count) {
  const auto same_copies = [](const StagedBlock& a, const StagedBlock& b) {
    return a.device == b.device && a.slot == b.slot &&
           std::equal(a.copies.begin(), a.copies.end(), b.copies.begin(), b.copies.end(),
                      [](const Device::HostCopy& x, const Device::HostCopy& y) {
                        return x.dst == y.dst && x.src == y.src && x.bytes == y.bytes;
                      });
  };
  std::map<std::pair<Device*, size_t>, size_t> contents;  // (device, slot) -> distinct contents
  for (size_t b = 0; b < count; ++b) {
    StagedBlock& st = staged_[b];
    if (!st.device) continue;
    st.content = b;
    for (size_t a = 0; a < b && st.content == b; ++a)
      if (staged_[a].device && same_copies(staged_[a], st)) st.content = a;
    if (st.content == b) ++contents[{st.device, st.slot}];
  }
  for (size_t b = 0; b < count; ++b) {
    const StagedBlock& st = staged_[b];
    if (st.device && st.content == b && contents[{st.device, st.slot}] > 1)
      for (const Device::HostCopy& c : st.copies) copied_bytes_ += c.bytes;
  }

  // From host RAM the next streamed block may be the first of the next pass;
  // from disk it must come before any other disk block, because the
  // prefetcher hands out reads in order, and within the pass.
  next_staged_.assign(count, kNone);
  for (size_t b = 0; b < count; ++b)
    for (size_t step = 1; step <= count; ++step) {
      const size_t n = (b + step) % count;
      const bool from_disk = stream_index_[n] != kNotStreamed;
      if (staged_[n].device && (!from_disk || n > b)) next_staged_[b] = n;
      if (staged_[n].device || from_disk) break;
    }
}

// Host memory that an accelerator copies from every pass (the host tier and
// the disk read slots) is page-locked once, so those copies run at the bus's
// speed and asynchronously (CUDA copies pageable memory through a bounce
// buffer). The first accelerator that streams does it for all of them.
void WeightStore::pin_for_copies(const std::vector<BlockPlacement>& placement, Device& host) {
  Device* copier = nullptr;
  for (const BlockPlacement& p : placement)
    if (p.streamed() && !copier) copier = p.exec;
  if (!copier) return;
  for (const DeviceBuffer& buffer : buffers_) {
    if (buffer.device() != &host || buffer.bytes() == 0) continue;
    if (copier->pin_host(buffer.data(), buffer.bytes())) pinned_.emplace_back(copier, buffer.data());
  }
}

std::vector<std::filesystem::path> WeightStore::disk_files() const {
  std::vector<std::filesystem::path> out;
  for (const auto& [path, reader] : readers_) out.push_back(path);
  return out;
}

uint64_t WeightStore::total_bytes() const {
  uint64_t total = 0;
  for (const auto& t : checkpoint_.tensors()) total += t.nbytes;
  return total;
}

const WeightStore::Held& WeightStore::held(const std::string& name, const std::vector<int64_t>& shape) const {
  const auto it = held_.find(name);
  if (it == held_.end() || it->second.shape != shape)
    throw Error("internal: the model asked for a weight its blocks did not declare", checkpoint_.dir().string(), name);
  return it->second;
}

MatrixView WeightStore::matrix(const std::string& name, int64_t rows, int64_t cols) {
  const Held& h = held(name, {rows, cols});
  return MatrixView{h.dtype, h.data, rows, cols};
}

const float* WeightStore::vector_f32(const std::string& name, int64_t size) {
  return static_cast<const float*>(held(name, {size}).data);
}

void WeightStore::begin_pass() {
  for (size_t b = 0; b < staged_.size(); ++b) {
    const StagedBlock& st = staged_[b];
    // A pass cut short by an error left these: the prefetcher restarts its
    // stream by itself, but queued fills must not read a slot it refills.
    if (in_use_[b] && st.device) st.device->release_slot(st.slot);
    if (read_waited_[b] && st.device) st.device->finish_fill(st.slot);
    in_use_[b] = read_waited_[b] = false;
  }
}

void WeightStore::wait_read(size_t block) {
  const size_t s = stream_index_[block];
  if (s == kNotStreamed || read_waited_[block]) return;
  prefetcher_->wait(s);
  read_waited_[block] = true;
}

void WeightStore::stage(size_t block) {
  const StagedBlock& st = staged_[block];
  size_t& holds = slot_holds_.at(st.device)[st.slot];
  if (holds == st.content) return;  // still there from the last pass, or filled ahead
  wait_read(block);
  holds = kNone;
  st.device->fill_slot(st.slot, st.copies);
  holds = st.content;
}

void WeightStore::onload(size_t block) {
  // A disk block's read is waited every pass, in order, even when its slot
  // still holds it: the prefetcher's stream runs through all of them.
  wait_read(block);
  const StagedBlock& st = staged_[block];
  if (st.device) {
    stage(block);
    st.device->use_slot(st.slot);
    in_use_[block] = true;
  }
  // The next streamed block's fill starts now, before this block computes,
  // when its slot is another one (the block before this one freed it) and
  // its weights are in RAM; a disk block's is started by release(), after
  // the reads before it.
  const size_t next = next_staged_[block];
  if (next == kNone || stream_index_[next] != kNotStreamed) return;
  if (st.device && staged_[next].device == st.device && staged_[next].slot == st.slot) return;
  stage(next);
}

void WeightStore::release(size_t block) {
  const StagedBlock& st = staged_[block];
  if (st.device) {
    st.device->release_slot(st.slot);
    in_use_[block] = false;
  }
  if (read_waited_[block]) {
    // The host slot is the source of the fill: it is free once that is done.
    if (st.device) st.device->finish_fill(st.slot);
    prefetcher_->release(stream_index_[block]);
    read_waited_[block] = false;
  }
  if (next_staged_[block] != kNone) stage(next_staged_[block]);  // unless onload() did
}

}  // namespace strata
