#include "runtime/weight_store.h"

#include <algorithm>
#include <map>
#include <set>
#include <tuple>

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
  std::filesystem::path source_path;  // disk tier: the file its bytes are read from, and where
  uint64_t source_offset = 0;
  std::optional<QuantizedSource> quant;  // a matrix held quantized
};

// Whether the checkpoint's own bytes can be used: the dtype computed with,
// and, when the CPU computes on them, aligned for element reads (a read lands
// in its staging slot with the alignment of its file offset; copies on to a
// device need none).
bool readable_in_place(const Item& item, const Checkpoint& checkpoint, bool copied) {
  const auto address = reinterpret_cast<uintptr_t>(checkpoint.data(*item.info).data());
  return item.dtype == item.info->dtype && (copied || address % dtype_size(item.dtype) == 0);
}

// Quantized layouts run where the device's ops have kernels for them: the
// CPU, sim devices (which share its ops) and CUDA GPUs (cuda_quant.h).
void check_quantized_placement(const Checkpoint& checkpoint, const QuantLayout& layout, const WeightSpec& weight,
                               const BlockPlacement& p) {
  const Ops* ops = p.exec->native_ops();
  if (ops && !ops->supports(OpKind::matmul, layout))
    throw Error(layout.name + " weights have no kernels on " + p.exec->name(), checkpoint.dir().string(), weight.name,
                "map the blocks holding them to cpu");
}

}  // namespace

void check_stored_weight(const Checkpoint& checkpoint, const WeightSpec& weight, const TensorInfo& info) {
  if (info.shape != weight.stored_shape())
    throw Error("shape " + shape_string(info.shape) + " does not match config.json (expected " +
                    shape_string(weight.stored_shape()) + ")",
                checkpoint.dir().string(), weight.name, "config.json and weights disagree");
  if (info.dtype != DType::F32 && info.dtype != DType::BF16 && info.dtype != DType::F16)
    throw Error("weights stored as " + std::string(dtype_name(info.dtype)) + " are not supported",
                checkpoint.dir().string(), weight.name, "strata reads F32, BF16 and F16 weights");
}

const TensorInfo& WeightStore::expect(const WeightSpec& weight) const {
  const TensorInfo& info = checkpoint_.get(weight.name);
  check_stored_weight(checkpoint_, weight, info);
  return info;
}

// What the constructor decides before it takes memory, and the addresses it
// then takes, shared by its steps.
struct WeightStore::Layout {
  std::vector<Item> items;  // each tensor once (a tied one is shared)
  std::unordered_map<std::string, size_t> item_of;
  std::map<Device*, size_t> region_bytes;  // resident weights and the host tier, per device
  std::map<Device*, uint8_t*> region;
  std::map<Device*, std::vector<uint8_t*>> slot;  // accelerators' staging slots
  // The disk stream: its blocks in execution order, each one's host read
  // slot, its file runs, and where each of its tensors' first page lands.
  struct Run {
    std::filesystem::path path;
    uint64_t offset = 0, end = 0;
    size_t position = 0;  // page-aligned, in the slot
  };
  std::vector<size_t> disk_blocks, read_slot_of;
  std::vector<std::vector<Run>> runs;
  std::vector<std::vector<size_t>> positions;  // per block, per tensor
  size_t read_slot_bytes = 0, read_slots = 0;
  uint8_t* read_staging = nullptr;

  const Item& item(const WeightSpec& w) const { return items[item_of.at(w.name)]; }
};

WeightStore::WeightStore(Checkpoint checkpoint, const std::vector<BlockSpec>& blocks,
                         const std::vector<BlockPlacement>& placement, Device& host,
                         const WeightStoreOptions& options)
    : checkpoint_(std::move(checkpoint)),
      staged_(blocks.size()),
      stream_index_(blocks.size(), kNotStreamed),
      read_waited_(blocks.size(), false),
      in_use_(blocks.size(), false),
      warning_(options.warning),
      unchecked_disk_(blocks.size()) {
  Layout layout;
  choose_tiers(layout, blocks, placement, host, options);
  for (const auto& [device, bytes] : layout.region_bytes) {
    buffers_.emplace_back(*device, bytes, "weights");
    layout.region[device] = buffers_.back().data();
  }
  lay_out_staging_slots(layout, blocks, placement, options.staging_slots);
  lay_out_disk_reads(layout, blocks, placement, options.disk_read_slots);
  if (layout.read_slots > 0) {
    host_staging_bytes_ = layout.read_slots * layout.read_slot_bytes;
    buffers_.emplace_back(host, host_staging_bytes_, "staging for weights read from disk");
    layout.read_staging = buffers_.back().data();
  }
  fill_regions(layout, host, options);
  std::vector<std::vector<Prefetcher::Read>> reads = make_views(layout, blocks);
  plan_prefetch(blocks);
  pin_for_copies(placement, host);
  try {
    if (!reads.empty())
      prefetcher_ = std::make_unique<Prefetcher>(std::move(reads), layout.read_slot_of, layout.read_slots);
  } catch (...) {
    // The destructor does not run for a half-built object.
    for (const auto& [device, data] : pinned_) device->unpin_host(data);
    throw;
  }
}

// Each tensor's tier, dtype as held, and place in its device's region; the
// disk tensors that must be converted go to the offload folder first, and
// every disk tensor learns where its bytes are read from.
void WeightStore::choose_tiers(Layout& layout, const std::vector<BlockSpec>& blocks,
                               const std::vector<BlockPlacement>& placement, Device& host,
                               const WeightStoreOptions& options) {
  std::vector<OffloadFolder::Wanted> to_convert;
  for (size_t b = 0; b < blocks.size(); ++b) {
    const BlockPlacement& p = placement[b];
    for (const WeightSpec& w : blocks[b].weights) {
      if (layout.item_of.count(w.name)) continue;  // tied: held once (placement checked they agree)
      Item item;
      item.spec = &w;
      if (options.quantized) item.quant = options.quantized->source_of(checkpoint_, w);
      if (item.quant) {
        check_quantized_placement(checkpoint_, *item.quant->layout, w, p);
        item.info = item.quant->scheme ? item.quant->stored.codes : &expect(w);
        item.dtype = DType::U8;
        item.bytes = quant_bytes(*item.quant->layout, w.shape[0], w.shape[1]);
      } else {
        item.info = &expect(w);
        item.dtype = w.is_vector() ? DType::F32 : options.compute_dtype.value_or(item.info->dtype);
        item.bytes = static_cast<size_t>(item.info->numel()) * dtype_size(item.dtype);
      }
      if (p.tier.kind == plan::Device::disk) {
        item.tier = Tier::disk;
        item.in_checkpoint = !item.quant && !w.transposed && readable_in_place(item, checkpoint_, p.streamed());
        if (!item.in_checkpoint) to_convert.push_back({w.name, item.dtype, w.transposed, item.quant});
      } else {
        // Quantized once into the offload folder, loaded from there on every run.
        if (item.quant && !item.quant->scheme) to_convert.push_back({w.name, item.dtype, w.transposed, item.quant});
        item.tier = p.streamed() ? Tier::host : Tier::resident;
        item.home = p.streamed() ? &host : p.exec;
        item.offset = layout.region_bytes[item.home];
        layout.region_bytes[item.home] += align64(item.bytes);
      }
      layout.item_of.emplace(w.name, layout.items.size());
      layout.items.push_back(item);
    }
  }
  for (const WeightSpec* w : options.folder_matrices)
    to_convert.push_back({w->name, DType::U8, false, options.quantized->source_of(checkpoint_, *w)});
  if (!to_convert.empty()) {
    if (options.offload_folder.empty()) {
      const auto& first = to_convert.front();
      const std::string to = first.quant ? first.quant->layout->name : std::string(dtype_name(first.dtype));
      throw Error(std::to_string(to_convert.size()) + " tensors need converting (e.g. " + first.name + " to " + to + ")",
                  checkpoint_.dir().string(), "", "pass --offload-folder DIR to hold the converted copies");
    }
    offload_ = OffloadFolder(options.offload_folder, checkpoint_, to_convert, options.pool, options.convert_progress);
  }
  for (Item& item : layout.items) {
    if (item.tier != Tier::disk) continue;
    if (item.in_checkpoint) {
      item.source_path = checkpoint_.files()[item.info->file_index]->path();
      item.source_offset = item.info->file_offset;
    } else {
      item.source_path = offload_.file();
      item.source_offset = offload_.info(item.spec->name).file_offset;
    }
  }
}

// Blocks streamed to an accelerator take turns in its staging slots: the
// j-th such block on a device uses slot j % slots, so one slot fills while
// the block in the other computes. Two exceptions:
// - a block sharing a tensor with an earlier one (a tied head) takes that
//   block's slot, so the tensor has one address;
// - a small block (a final norm: at most 1/kSmallStagedBlock of the device's
//   largest streamed block) takes the slot of the streamed block before it
//   instead of a turn, so the large block after it (the head) fills
//   while that block computes, not only while the small one does.
// A slot is the size of its largest block, so the slots together take at
// most the largest `slots` streamed blocks (what the plan bills).
void WeightStore::lay_out_staging_slots(Layout& layout, const std::vector<BlockSpec>& blocks,
                                        const std::vector<BlockPlacement>& placement, size_t slots_per_device) {
  slots_per_device = std::max<size_t>(slots_per_device, 1);
  std::map<Device*, size_t> streamed_count;
  std::map<Device*, size_t> last_slot;                  // of the device's latest streamed block
  std::map<Device*, std::vector<size_t>> slot_bytes;   // per device, per slot
  std::unordered_map<std::string, size_t> staged_slot;  // tensor -> slot
  std::vector<size_t> block_bytes(blocks.size(), 0);
  std::map<Device*, size_t> largest;
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (!placement[b].streamed()) continue;
    for (const WeightSpec& w : blocks[b].weights) block_bytes[b] += align64(layout.item(w).bytes);
    largest[placement[b].exec] = std::max(largest[placement[b].exec], block_bytes[b]);
  }
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (!placement[b].streamed()) continue;
    Device* device = placement[b].exec;
    const size_t bytes = block_bytes[b];
    const auto last = last_slot.find(device);
    const bool small = bytes * kSmallStagedBlock <= largest[device] && last != last_slot.end();
    size_t slot_index = small ? last->second : streamed_count[device]++ % slots_per_device;
    for (const WeightSpec& w : blocks[b].weights)
      if (auto it = staged_slot.find(w.name); it != staged_slot.end()) slot_index = it->second;
    last_slot[device] = slot_index;
    for (const WeightSpec& w : blocks[b].weights) staged_slot.emplace(w.name, slot_index);
    std::vector<size_t>& sizes = slot_bytes[device];
    if (sizes.size() <= slot_index) sizes.resize(slot_index + 1, 0);
    sizes[slot_index] = std::max(sizes[slot_index], bytes);
    staged_[b].device = device;
    staged_[b].slot = slot_index;
  }
  for (const auto& [device, sizes] : slot_bytes) {
    size_t total = 0;
    for (const size_t bytes : sizes) total += bytes;
    buffers_.emplace_back(*device, total, "the staging slots for offloaded weights");
    uint8_t* at = buffers_.back().data();
    for (const size_t bytes : sizes) {
      layout.slot[device].push_back(at);
      at += bytes;
    }
    slot_holds_[device].assign(sizes.size(), kNone);
  }
}

// Disk-tier blocks, in execution order, read into host staging slots: block
// s of the stream into slot s % slots, except that a block sharing a tensor
// with an earlier one (a tied head) takes that block's slot, so the tensor
// has one address. A block's tensors that lie back to back in one file are
// read with one request (a layer is usually one run), so the disk sees few,
// large reads; each tensor keeps the alignment of its file offset.
void WeightStore::lay_out_disk_reads(Layout& layout, const std::vector<BlockSpec>& blocks,
                                     const std::vector<BlockPlacement>& placement, size_t read_slots) {
  read_slots = std::max<size_t>(read_slots, 1);
  std::unordered_map<std::string, std::pair<size_t, size_t>> disk_position;  // tensor -> (slot, position)
  layout.positions.resize(blocks.size());
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (placement[b].tier.kind != plan::Device::disk) continue;
    stream_index_[b] = layout.disk_blocks.size();
    size_t slot_index = layout.disk_blocks.size() % read_slots;
    const auto& weights = blocks[b].weights;
    for (const WeightSpec& w : weights)
      if (auto it = disk_position.find(w.name); it != disk_position.end()) slot_index = it->second.first;
    std::vector<size_t> order(weights.size());
    for (size_t t = 0; t < weights.size(); ++t) order[t] = t;
    const auto source = [&](size_t t) {
      const Item& item = layout.item(weights[t]);
      return std::tie(item.source_path, item.source_offset);
    };
    std::sort(order.begin(), order.end(), [&](size_t x, size_t y) { return source(x) < source(y); });
    layout.positions[b].resize(weights.size());
    std::vector<Layout::Run> block_runs;
    size_t at = 0;
    for (const size_t t : order) {
      const Item& item = layout.item(weights[t]);
      const uint64_t offset = item.source_offset, end = offset + item.bytes;
      if (!block_runs.empty() && block_runs.back().path == item.source_path && block_runs.back().end == offset) {
        Layout::Run& run = block_runs.back();
        run.end = end;
        at = run.position + DirectReader::span_bytes(run.offset, run.end - run.offset);
      } else {
        block_runs.push_back({item.source_path, offset, end, at});
        at += DirectReader::span_bytes(offset, end - offset);
      }
      const Layout::Run& run = block_runs.back();
      // Where the page holding this tensor's first byte lands.
      const size_t position = run.position + static_cast<size_t>((offset - DirectReader::lead(offset)) -
                                                                 (run.offset - DirectReader::lead(run.offset)));
      const auto [it, fresh] = disk_position.emplace(weights[t].name, std::make_pair(slot_index, position));
      if (!fresh && (it->second.first != slot_index || it->second.second != position))
        throw Error("internal: tied tensor " + weights[t].name + " would be read to two places");
      layout.positions[b][t] = position;
    }
    layout.read_slot_bytes = std::max(layout.read_slot_bytes, at);
    layout.disk_blocks.push_back(b);
    layout.read_slot_of.push_back(slot_index);
    layout.runs.push_back(std::move(block_runs));
  }
  if (!layout.disk_blocks.empty())
    layout.read_slots = *std::max_element(layout.read_slot_of.begin(), layout.read_slot_of.end()) + 1;
}

// Copies the resident weights and the host tier from the checkpoint into
// their regions, converting on the way.
void WeightStore::fill_regions(const Layout& layout, Device& host, const WeightStoreOptions& options) {
  ThreadPool* pool = options.pool;
  uint64_t total = 0, placed = 0;
  for (const Item& item : layout.items)
    if (item.tier != Tier::disk) total += item.bytes;
  if (options.progress) options.progress(0, total);
  for (const Item& item : layout.items) {
    if (item.tier == Tier::disk) continue;
    uint8_t* dst = layout.region.at(item.home) + item.offset;
    if (item.quant) {
      fill_quantized(item.quant->scheme ? nullptr : &offload_, checkpoint_, *item.quant, item.bytes, dst, *item.home, host,
                     pool);
      if (item.home == &host && item.tier == Tier::resident) resident_host_ranges_.emplace_back(dst, item.bytes);
      placed += item.bytes;
      if (options.progress) options.progress(placed, total);
      continue;
    }
    const auto src = checkpoint_.data(*item.info);
    write_to_device({item.info->dtype, src.data(), item.info->shape, item.spec->transposed}, item.dtype, item.bytes, dst,
                    *item.home, host, pool);
    check_finite(item.spec->name, item.info->dtype, src.data(), static_cast<size_t>(item.info->numel()));
    // The file pages were read once; keep them out of this process's memory.
    release_mapped_pages(src);
    if (item.home == &host && item.tier == Tier::resident && !item.spec->is_vector())
      resident_host_ranges_.emplace_back(dst, item.bytes);
    placed += item.bytes;
    if (options.progress) options.progress(placed, total);
  }
}

// The views the model reads, the copies each block's hooks perform, and the
// disk reads of each block of the stream (returned for the prefetcher).
std::vector<std::vector<Prefetcher::Read>> WeightStore::make_views(const Layout& layout,
                                                                   const std::vector<BlockSpec>& blocks) {
  std::vector<std::vector<Prefetcher::Read>> reads(layout.disk_blocks.size());
  for (size_t s = 0; s < layout.disk_blocks.size(); ++s)
    for (const Layout::Run& run : layout.runs[s]) {
      auto& reader = readers_[run.path];
      if (!reader) reader = std::make_unique<DirectReader>(run.path);
      reads[s].push_back({reader.get(), run.offset, run.end - run.offset,
                          layout.read_staging + layout.read_slot_of[s] * layout.read_slot_bytes + run.position});
      disk_ranges_.push_back({run.path, run.offset, run.end - run.offset});
    }
  for (size_t b = 0; b < blocks.size(); ++b) {
    size_t slot_offset = 0;
    for (size_t t = 0; t < blocks[b].weights.size(); ++t) {
      const WeightSpec& w = blocks[b].weights[t];
      const Item& item = layout.item(w);
      const uint8_t* source = nullptr;
      if (item.tier == Tier::disk) {
        const size_t s = stream_index_[b];
        const uint8_t* page =
            layout.read_staging + layout.read_slot_of[s] * layout.read_slot_bytes + layout.positions[b][t];
        source = page + DirectReader::lead(item.source_offset);
        disk_bytes_ += item.bytes;
        if (!item.quant)
          unchecked_disk_[b].push_back({&w.name, item.dtype, source, static_cast<size_t>(item.info->numel())});
      } else {
        source = layout.region.at(item.home) + item.offset;
      }
      void* view = const_cast<uint8_t*>(source);
      if (StagedBlock& st = staged_[b]; st.device) {
        view = layout.slot.at(st.device)[st.slot] + slot_offset;
        st.copies.push_back({view, source, item.bytes});
        slot_offset += align64(item.bytes);
      }
      const QuantLayout* quant = item.quant ? item.quant->layout : nullptr;
      const auto [it, fresh] = held_.emplace(w.name, Held{view, item.dtype, w.shape, quant});
      if (!fresh && it->second.data != view)
        throw Error("internal: tied tensor " + w.name + " would be streamed to two places");
    }
  }
  return reads;
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
// a slot that holds one content (one block, or a tied head and the embedding,
// which stage the same tensor at the same place) is filled once and kept.
// Contents are compared by tensor, not by address: blocks read from disk
// pass through the same host read slot, so equal addresses can hold other
// weights.
void WeightStore::plan_prefetch(const std::vector<BlockSpec>& blocks) {
  const size_t count = blocks.size();
  const auto same_content = [&](size_t a, size_t b) {
    return staged_[a].device == staged_[b].device && staged_[a].slot == staged_[b].slot &&
           std::equal(blocks[a].weights.begin(), blocks[a].weights.end(), blocks[b].weights.begin(),
                      blocks[b].weights.end(),
                      [](const WeightSpec& x, const WeightSpec& y) { return x.name == y.name; });
  };
  std::map<std::pair<Device*, size_t>, size_t> contents;  // (device, slot) -> distinct contents
  for (size_t b = 0; b < count; ++b) {
    StagedBlock& st = staged_[b];
    if (!st.device) continue;
    st.content = b;
    for (size_t a = 0; a < b && st.content == b; ++a)
      if (staged_[a].device && same_content(a, b)) st.content = a;
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
  // onload starts the first fill that needs no slot in use: the next
  // streamed block's, or past the blocks that share this block's slot (a
  // small norm before the head). Fills from disk keep to the read order and
  // start from release().
  ahead_staged_.assign(count, kNone);
  for (size_t b = 0; b < count; ++b) {
    size_t n = next_staged_[b];
    for (size_t step = 0; step < count && n != kNone && n != b; ++step, n = next_staged_[n]) {
      if (stream_index_[n] != kNotStreamed) break;
      if (staged_[n].device != staged_[b].device || staged_[n].slot != staged_[b].slot) {
        ahead_staged_[b] = n;
        break;
      }
    }
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
    std::string failure;
    if (copier->pin_host(buffer.data(), buffer.bytes(), failure)) pinned_.emplace_back(copier, buffer.data());
    if (!failure.empty() && warning_) warning_(failure);
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
  return MatrixView{h.dtype, h.data, rows, cols, h.quant};
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

void WeightStore::check_finite(const std::string& name, DType dtype, const void* data, size_t n) {
  if (warned_ || !warning_ || all_finite(dtype, data, n)) return;
  warned_ = true;
  warning_("weight " + name + " holds NaN or Inf: outputs will be NaN (is the checkpoint damaged?)");
}

void WeightStore::onload(size_t block) {
  // A disk block's read is waited every pass, in order, even when its slot
  // still holds it: the prefetcher's stream runs through all of them.
  wait_read(block);
  // Disk weights are checked once, on their first read, never on later passes.
  for (const DiskTensor& t : unchecked_disk_[block]) check_finite(*t.name, t.dtype, t.data, t.count);
  unchecked_disk_[block].clear();
  const StagedBlock& st = staged_[block];
  if (st.device) {
    stage(block);
    st.device->use_slot(st.slot);
    in_use_[block] = true;
  }
  // A fill into another slot (freed by the blocks before this one) starts
  // now, before this block computes, when its weights are in RAM; a disk
  // block's is started by release(), after the reads before it.
  if (ahead_staged_[block] != kNone) stage(ahead_staged_[block]);
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
