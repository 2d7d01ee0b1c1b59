#include "runtime/expert_store.h"

#include <algorithm>
#include <tuple>

#include "core/clock.h"
#include "format/mapped_file.h"
#include "runtime/convert.h"
#include "strata/error.h"

namespace strata {
namespace {

size_t round_to_page(size_t bytes) { return (bytes + DirectReader::kAlign - 1) / DirectReader::kAlign * DirectReader::kAlign; }

}  // namespace

std::vector<const TensorInfo*> ExpertStore::check(const Checkpoint& checkpoint, const std::vector<ExpertSpec>& experts,
                                                  const QuantizedWeights* quantized) {
  std::vector<const TensorInfo*> infos;
  for (const ExpertSpec& e : experts)
    for (const WeightSpec* w : e.weights()) {
      if (quantized && quantized->layout_of(w->name) && !quantized->made_in_situ(w->name)) {
        infos.push_back(quantized->source_of(checkpoint, *w)->stored.codes);  // checks the stored tensors
        continue;
      }
      const TensorInfo* info = checkpoint.find(w->name);
      if (!info)
        throw Error("expert tensor missing from the checkpoint", checkpoint.dir().string(), w->name,
                    "config.json names more experts than the weights hold");
      check_stored_weight(checkpoint, *w, *info);
      infos.push_back(info);
    }
  return infos;
}

ExpertStore::ExpertStore(const Checkpoint& checkpoint, std::vector<ExpertSpec> experts,
                         const std::vector<ExpertPlacement>& placement, Device& host,
                         const ExpertStoreOptions& options)
    : specs_(std::move(experts)), pool_(options.pool), local_tokens_(options.local_tokens) {
  recent_.reserve(kRecentReads);
  if (specs_.empty()) return;
  // Every expert tensor is checked before any memory is taken.
  const std::vector<const TensorInfo*> infos = check(checkpoint, specs_, options.quantized);
  dtype_ = options.compute_dtype.value_or(infos.front()->dtype);
  const ExpertSpec& first = specs_.front();
  quant_ = options.quantized ? options.quantized->layout_of(first.gate.name) : nullptr;
  for (const ExpertSpec& e : specs_)
    if ((options.quantized ? options.quantized->layout_of(e.gate.name) : nullptr) != quant_)
      throw Error("the routed experts are not all held alike", checkpoint.dir().string(), e.module,
                  "strata holds every routed expert of a model quantized, or none");
  if (quant_ && !options.folder) throw Error("internal: quantized experts without the offload folder holding them");
  const WeightSpec* matrices[] = {&first.gate, &first.up, &first.down};
  for (int m = 0; m < kMatrices; ++m) {
    const WeightSpec& w = *matrices[m];
    matrix_bytes_[m] = quant_ ? quant_bytes(*quant_, w.shape[0], w.shape[1])
                              : static_cast<size_t>(w.shape[0] * w.shape[1]) * dtype_size(dtype_);
    offsets_[m] = m == 0 ? 0 : offsets_[m - 1] + align64(matrix_bytes_[m - 1]);
  }
  expert_bytes_ = offsets_[2] + align64(matrix_bytes_[2]);
  // Where a matrix's bytes are read from: the checkpoint, or the offload
  // folder holding it quantized.
  const auto source_info = [&](size_t expert, int matrix) {
    if (!quant_) return infos[expert * kMatrices + static_cast<size_t>(matrix)];
    return &options.folder->info(specs_[expert].weights()[static_cast<size_t>(matrix)]->name);
  };
  const auto source_file = [&](const TensorInfo& info) -> const std::filesystem::path& {
    return quant_ ? options.folder->file() : checkpoint.files()[info.file_index]->path();
  };

  // Tiers, and how many experts each device holds or caches.
  const int64_t layers = specs_.back().layer + 1;
  first_of_layer_.assign(static_cast<size_t>(layers), static_cast<size_t>(-1));
  layer_experts_.assign(static_cast<size_t>(layers), 0);
  std::map<Device*, size_t> resident_count, cached_count;
  size_t host_count = 0, disk_count = 0;
  experts_.resize(specs_.size());
  for (size_t i = 0; i < specs_.size(); ++i) {
    const ExpertSpec& e = specs_[i];
    if (e.expert == 0) first_of_layer_[static_cast<size_t>(e.layer)] = i;
    ++layer_experts_[static_cast<size_t>(e.layer)];
    Held& h = experts_[i];
    h.spec = &e;
    for (int m = 0; m < kMatrices; ++m) h.stored[m] = infos[i * kMatrices + static_cast<size_t>(m)];
    h.exec = placement[i].exec;
    const bool copied = h.exec->is_accelerator() && placement[i].tier.kind != plan::Device::gpu;
    if (placement[i].tier.kind == plan::Device::disk) {
      h.tier = Tier::disk;
      ++disk_count;
    } else {
      h.tier = copied ? Tier::host : Tier::resident;
      ++(copied ? host_count : resident_count[h.exec]);
    }
    if (copied) ++cached_count[h.exec];
  }

  // Disk experts: the runs their reads cover, where each matrix lands, and
  // whether it can be computed on there.
  for (size_t i = 0; i < specs_.size(); ++i) {
    Held& h = experts_[i];
    if (h.tier != Tier::disk) continue;
    struct Part {
      const TensorInfo* info;
      int matrix;
    };
    std::vector<Part> parts;
    for (int m = 0; m < kMatrices; ++m) parts.push_back({source_info(i, m), m});
    const auto source = [&](const Part& p) { return std::make_tuple(p.info->file_index, p.info->file_offset); };
    std::sort(parts.begin(), parts.end(), [&](const Part& a, const Part& b) { return source(a) < source(b); });
    size_t at = 0;
    for (const Part& p : parts) {
      const auto& path = source_file(*p.info);
      auto& reader = readers_[path];
      if (!reader) reader = std::make_unique<DirectReader>(path);
      const uint64_t offset = p.info->file_offset, end = offset + p.info->nbytes;
      if (!h.runs.empty() && h.runs.back().file == reader.get() && h.runs.back().offset + h.runs.back().size == offset) {
        Run& run = h.runs.back();
        run.size = end - run.offset;
        at = run.position + DirectReader::span_bytes(run.offset, run.size);
      } else {
        h.runs.push_back({reader.get(), offset, end - offset, at});
        at += DirectReader::span_bytes(offset, end - offset);
      }
      const Run& run = h.runs.back();
      h.landed[p.matrix] = run.position + DirectReader::lead(run.offset) + static_cast<size_t>(offset - run.offset);
      // The CPU reads elements in place only at their alignment; a copy to
      // an accelerator needs none. Quantized experts are read as held.
      const bool copied_only = h.exec->is_accelerator() && options.local_tokens < 0;
      const bool aligned = copied_only || h.landed[p.matrix] % dtype_size(dtype_) == 0;
      h.convert = !quant_ && (h.convert || p.info->dtype != dtype_ || !aligned);
    }
    read_area_ = std::max(read_area_, at);
  }
  // Pieces small enough that every reader works on the first expert.
  read_piece_ = std::clamp<uint64_t>((read_area_ / kReaders + DirectReader::kAlign - 1) / DirectReader::kAlign *
                                         DirectReader::kAlign,
                                     DirectReader::kAlign, kReadPiece);

  // Memory: resident experts on their device, the host tier, the caches.
  std::map<Device*, uint8_t*> next_resident;
  for (const auto& [device, count] : resident_count) {
    buffers_.emplace_back(*device, count * expert_bytes_, "resident experts");
    next_resident[device] = buffers_.back().data();
  }
  uint8_t* next_host = nullptr;
  if (host_count > 0) {
    buffers_.emplace_back(host, host_count * expert_bytes_, "experts in RAM for an accelerator");
    next_host = buffers_.back().data();
  }
  if (disk_count > 0) {
    bool any_convert = false;
    for (const Held& h : experts_) any_convert = any_convert || h.convert;
    host_slot_bytes_ = round_to_page(read_area_ + (any_convert ? expert_bytes_ : 0));
    const size_t slots = std::clamp<size_t>(options.host_cache_experts, 1, disk_count);
    buffers_.emplace_back(host, slots * host_slot_bytes_, "the expert cache in RAM");
    host_slots_ = buffers_.back().data();
    host_cache_ = ExpertCache(slots, specs_.size(), options.cache_policy);
  }
  for (Held& h : experts_) {
    if (h.tier == Tier::disk) cached_count[h.exec] += h.exec->is_accelerator() ? 1 : 0;
  }
  for (const auto& [device, count] : cached_count) {
    if (count == 0 || local_tokens_ == kAlwaysLocal) continue;  // never copied
    const size_t slots = std::clamp<size_t>(options.device_cache_experts, 1, count);
    buffers_.emplace_back(*device, slots * expert_bytes_, "the expert cache of " + device->name());
    device_caches_[device] = {ExpertCache(slots, specs_.size(), options.cache_policy), buffers_.back().data()};
  }

  // Resident and host experts are read once, now.
  uint64_t total = 0, placed = 0;
  for (const Held& h : experts_)
    if (h.tier != Tier::disk) total += expert_bytes_;
  if (options.progress && total > 0) options.progress(0, total);
  for (size_t i = 0; i < experts_.size(); ++i) {
    Held& h = experts_[i];
    if (h.tier == Tier::disk) continue;
    Device& home = h.tier == Tier::resident ? *h.exec : host;
    uint8_t*& next = h.tier == Tier::resident ? next_resident.at(h.exec) : next_host;
    h.data = next;
    next += expert_bytes_;
    for (int m = 0; m < kMatrices; ++m) {
      if (quant_) {
        const WeightSpec& w = *h.spec->weights()[static_cast<size_t>(m)];
        const QuantizedSource source = *options.quantized->source_of(checkpoint, w);
        fill_quantized(source.scheme ? nullptr : options.folder, checkpoint, source, matrix_bytes_[m],
                       h.data + offsets_[m], home, host, pool_);
        continue;
      }
      const TensorInfo& info = *infos[i * kMatrices + static_cast<size_t>(m)];
      const auto src = checkpoint.data(info);
      write_to_device({info.dtype, src.data(), info.shape, false}, dtype_, matrix_bytes_[m], h.data + offsets_[m],
                      home, host, pool_);
      release_mapped_pages(src);
    }
    placed += expert_bytes_;
    if (options.progress) options.progress(placed, total);
  }

  // An accelerator copies host experts and the host cache often: page-lock
  // them where that makes copies faster.
  Device* copier = device_caches_.empty() ? nullptr : device_caches_.begin()->first;
  if (copier)
    for (const DeviceBuffer& buffer : buffers_) {
      if (buffer.device() != &host || buffer.bytes() == 0) continue;
      std::string failure;
      if (copier->pin_host(buffer.data(), buffer.bytes(), failure)) pinned_.emplace_back(copier, buffer.data());
    }
  // Last, so that nothing after them can throw and leave them running.
  try {
    if (host_slots_)
      for (int r = 0; r < kReaders; ++r) reader_threads_.emplace_back([this] { reader_loop(); });
  } catch (...) {
    stop_readers();  // the destructor does not run for a half-built object
    for (const auto& [device, data] : pinned_) device->unpin_host(data);
    throw;
  }
}

void ExpertStore::stop_readers() {
  {
    std::lock_guard lock(mutex_);
    stop_ = true;
  }
  changed_.notify_all();
  for (std::thread& t : reader_threads_) t.join();
  reader_threads_.clear();
}

ExpertStore::~ExpertStore() {
  stop_readers();
  for (const auto& [device, data] : pinned_) device->unpin_host(data);
}

ExpertStore::Held& ExpertStore::held(int64_t layer, int32_t expert) {
  const size_t first = layer >= 0 && static_cast<size_t>(layer) < first_of_layer_.size()
                           ? first_of_layer_[static_cast<size_t>(layer)]
                           : static_cast<size_t>(-1);
  if (first == static_cast<size_t>(-1) || expert < 0 ||
      static_cast<size_t>(expert) >= layer_experts_[static_cast<size_t>(layer)])
    throw Error("internal: no expert " + std::to_string(expert) + " in layer " + std::to_string(layer));
  return experts_[first + static_cast<size_t>(expert)];
}

size_t ExpertStore::max_fetch(int64_t layer) const {
  size_t most = layer_experts_.at(static_cast<size_t>(layer));
  if (host_cache_.slots() > 0) most = std::min(most, host_cache_.slots());
  for (const auto& [device, cache] : device_caches_) most = std::min(most, cache.cache.slots());
  return most;
}

ExpertWeights ExpertStore::views_at(const Held& h, const uint8_t* base) const {
  const auto view = [&](const WeightSpec& w, size_t offset) {
    return MatrixView{quant_ ? DType::U8 : dtype_, base + offset, w.shape[0], w.shape[1], quant_};
  };
  return {view(h.spec->gate, offsets_[0]), view(h.spec->up, offsets_[1]), view(h.spec->down, offsets_[2])};
}

// Where an expert's bytes are in host memory: the held layout (host tier, or
// a read converted beside the read area), or where a read landed.
ExpertWeights ExpertStore::host_views(const Held& h, const uint8_t* base) const {
  if (h.tier != Tier::disk || h.convert) return views_at(h, h.tier == Tier::disk ? base + read_area_ : base);
  ExpertWeights v = views_at(h, base);
  v.gate.data = base + h.landed[0];
  v.up.data = base + h.landed[1];
  v.down.data = base + h.landed[2];
  return v;
}

void ExpertStore::fetch(int64_t layer, std::span<const int32_t> ids, std::span<const int32_t> tokens,
                        std::span<ExpertWeights> out) {
  host_cache_.begin_fetch();
  for (auto& [device, cache] : device_caches_) cache.cache.begin_fetch();
  {
    // The last fetch's reads that started are done before their jobs go
    // (all of them, unless a step failed midway); the others never start.
    std::unique_lock lock(mutex_);
    changed_.wait(lock, [&] { return pieces_in_flight_ == 0; });
    next_piece_ = pieces_.size();
  }
  // What a failed step left unfilled must not be found in the caches.
  for (const Pending& p : pending_) {
    if (p.read == kNoRead && !p.device) continue;
    const size_t index = static_cast<size_t>(p.held - experts_.data());
    if (p.read != kNoRead) host_cache_.forget(index);
    if (p.device) device_caches_.at(p.held->exec).cache.forget(index);
  }
  {
    std::lock_guard lock(mutex_);
    reads_.clear();
    pieces_.clear();
    next_piece_ = 0;
  }
  pending_.assign(ids.size(), Pending{});
  for (size_t i = 0; i < ids.size(); ++i) {
    Held& h = held(layer, ids[i]);
    const size_t index = static_cast<size_t>(&h - experts_.data());
    Pending& p = pending_[i];
    p.held = &h;
    ++counters_.routed;
    counters_.routed_bytes += expert_bytes_;
    if (h.tier == Tier::resident) {
      out[i] = views_at(h, h.data);
      continue;
    }
    // An accelerator's cache first: a hit needs nothing else. A miss is
    // copied there, or computed by the CPU where it lies in RAM when few
    // tokens route to it.
    const auto cache = device_caches_.find(h.exec);
    DeviceCache* dc = cache == device_caches_.end() ? nullptr : &cache->second;
    const bool on_host = h.exec->is_accelerator() && tokens[i] <= local_tokens_;
    if (dc) {
      ++counters_.device_lookups;
      if (const auto slot = dc->cache.find(index)) {
        ++counters_.device_hits;
        out[i] = views_at(h, dc->slots + *slot * expert_bytes_);
        continue;
      }
    }
    if (!on_host && h.exec->is_accelerator()) {
      if (!dc) throw Error("internal: expert copied to " + h.exec->name() + ", which has no expert cache");
      p.device = dc->slots + dc->cache.place(index) * expert_bytes_;
      out[i] = views_at(h, p.device);
    }
    if (on_host) ++counters_.computed_on_host;
    // Then its bytes in RAM: the host tier, or the cache of disk experts.
    if (h.tier == Tier::host) {
      p.host = h.data;
    } else {
      ++counters_.host_lookups;
      if (const auto slot = host_cache_.find(index)) {
        ++counters_.host_hits;
        p.host = host_slots_ + *slot * host_slot_bytes_;
      } else {
        p.host = host_slots_ + host_cache_.place(index) * host_slot_bytes_;
        p.read = reads_.size();
        add_read(h, p.host);
      }
    }
    if (p.device || p.read != kNoRead) {
      ++counters_.missed;
      counters_.missed_bytes += expert_bytes_;
    }
    if (!p.device) {
      out[i] = host_views(h, p.host);
      out[i].on_host = on_host;
    }
  }
  if (!reads_.empty()) {
    reads_started_ = std::chrono::steady_clock::now();
    changed_.notify_all();
  }
}

void ExpertStore::wait(size_t i) {
  Pending& p = pending_.at(i);
  if (p.read != kNoRead) {
    std::unique_lock lock(mutex_);
    ReadJob& job = reads_[p.read];
    changed_.wait(lock, [&] { return job.done; });
    if (job.error) std::rethrow_exception(job.error);
    uint64_t bytes = 0;
    for (const Run& run : p.held->runs) {
      bytes += run.size;
      if (recent_.size() < kRecentReads) recent_.push_back(run);
      else recent_[recent_next_] = run;
      recent_next_ = (recent_next_ + 1) % kRecentReads;
    }
    counters_.disk_bytes += bytes;
    // A fetch's reads overlap one another: count the time until its last
    // one was done (ids are waited in order, so it is waited last).
    if (p.read + 1 == reads_.size()) {
      auto last = job.finished;
      for (const ReadJob& j : reads_) last = std::max(last, j.finished);
      counters_.read_seconds += std::chrono::duration<double>(last - reads_started_).count();
    }
    p.read = kNoRead;
  }
  if (p.device) {
    const ExpertWeights src = host_views(*p.held, p.host);
    const MatrixView* parts[] = {&src.gate, &src.up, &src.down};
    for (int m = 0; m < kMatrices; ++m) {
      p.held->exec->copy_in(p.device + offsets_[m], parts[m]->data, matrix_bytes_[m]);
      counters_.copied_bytes += matrix_bytes_[m];
    }
    p.device = nullptr;
  }
}

// Splits an expert's runs into pieces of at most read_piece_ at page
// boundaries of the file: piece k of a run lands where the whole run's read
// would put those bytes.
void ExpertStore::add_read(Held& h, uint8_t* slot) {
  const size_t job = reads_.size();
  reads_.push_back(ReadJob{&h, slot, 0, false, nullptr, {}});
  for (const Run& run : h.runs) {
    const uint64_t begin = run.offset - DirectReader::lead(run.offset), end = run.offset + run.size;
    for (uint64_t at = begin; at < end; at += read_piece_) {
      const uint64_t from = std::max(at, run.offset), to = std::min(at + read_piece_, end);
      pieces_.push_back({job, run.file, from, to - from, slot + run.position + (at - begin)});
      ++reads_[job].pieces_left;
    }
  }
}

// Converts an expert that has landed in its host cache slot, when its
// stored bytes are not what is computed with.
void ExpertStore::convert_read(const Held& h, uint8_t* slot) const {
  if (!h.convert) return;
  for (int m = 0; m < kMatrices; ++m) {
    const TensorInfo& info = *h.stored[m];
    convert_tensor({info.dtype, slot + h.landed[m], info.shape, false}, dtype_, slot + read_area_ + offsets_[m],
                   nullptr);
  }
}

void ExpertStore::reader_loop() {
  std::unique_lock lock(mutex_);
  for (;;) {
    changed_.wait(lock, [&] { return stop_ || next_piece_ < pieces_.size(); });
    if (stop_) return;
    const ReadPiece piece = pieces_[next_piece_++];
    ++pieces_in_flight_;
    lock.unlock();
    std::exception_ptr error;
    try {
      piece.file->read(piece.offset, piece.size, piece.dst);
    } catch (...) {
      error = std::current_exception();
    }
    lock.lock();
    ReadJob& job = reads_[piece.job];
    if (error && !job.error) job.error = error;
    if (--job.pieces_left == 0) {
      // The expert's last piece: its reader converts it, outside the lock.
      const ReadJob whole = job;
      lock.unlock();
      if (!whole.error) {
        try {
          convert_read(*whole.held, whole.slot);
        } catch (...) {
          error = std::current_exception();
        }
      }
      lock.lock();
      ReadJob& done = reads_[piece.job];
      if (error && !done.error) done.error = error;
      done.done = true;
      done.finished = std::chrono::steady_clock::now();
    }
    --pieces_in_flight_;
    changed_.notify_all();
  }
}

ExpertStats ExpertStore::stats() const {
  ExpertStats s = counters_;
  s.expert_bytes = expert_bytes_;
  return s;
}

std::vector<WeightStore::DiskRange> ExpertStore::recent_reads() const {
  std::vector<WeightStore::DiskRange> out;
  for (size_t i = 0; i < recent_.size(); ++i) {
    const Run& run = recent_[(recent_next_ + i) % recent_.size()];
    out.push_back({run.file->path(), run.offset, run.size});
  }
  return out;
}

std::vector<std::filesystem::path> ExpertStore::disk_files() const {
  std::vector<std::filesystem::path> out;
  for (const auto& [path, reader] : readers_) out.push_back(path);
  return out;
}

}  // namespace strata
