// What running a model needs on a device besides its weights, as the planner
// counts it: the KV cache and widened copies a module brings to the device
// that executes it, scratch for activations on every executing device, and
// staging room where offloaded weights are brought in. Pure data; the model
// family computes it (models/memory_needs.h), the planner and the runtime's
// pre-load check read it.
#pragma once

#include <string>
#include <unordered_map>
#include <vector>

namespace strata::plan {

struct MemoryNeeds {
  // Bytes a module needs on the device that executes it, keyed by module name
  // ("model.layers.3"): its KV cache for the requested context and batch.
  // Modules not listed add nothing.
  std::unordered_map<std::string, double> runtime_bytes;
  // How much more memory a module's weights take as the runtime holds them
  // than as stored (1-D parameters widened to f32, 64-byte alignment),
  // charged wherever they are held in memory: their own device, the host for
  // weights offloaded to RAM, and the staging slot they are copied into.
  std::unordered_map<std::string, double> held_extra_bytes;
  // Activation scratch, charged once to every device that executes a module.
  double activation_bytes = 0;
  // The session's buffers on the host (logits, ids, a stop for activations
  // between accelerators), charged to cpu whatever executes.
  double host_bytes = 0;
  // Modules that run on the cpu when mapped to cpu or disk, instead of on
  // the main accelerator (lookups: an untied embedding).
  std::vector<std::string> local_when_offloaded;
  // Offloaded modules executing on an accelerator are copied into staging
  // slots there, taking turns; each slot is the size of its largest module,
  // so the slots take at most the largest `staging_slots` modules.
  int staging_slots = 1;
  // Modules on disk are read ahead into host staging slots (in RAM, on cpu),
  // each the size of the largest disk module plus disk_read_slack bytes per
  // tensor (reads are aligned to disk blocks): this many slots.
  int disk_read_slots = 2;
  double disk_read_slack = 0;
  // Routed experts (mixture-of-experts models): each is a placement unit of
  // its own, even inside a no-split decoder layer, and executes where its
  // layer does. Experts kept on disk are read into a cache in RAM when routed
  // (host_expert_cache of them, each with disk_read_slack per tensor and,
  // when the compute dtype differs from the stored one, a converted copy);
  // experts an accelerator computes but does not hold are copied into a cache
  // there (device_expert_cache of them).
  struct Expert {
    std::string module;  // "model.layers.3.mlp.experts.17"
    std::string layer;   // "model.layers.3"
  };
  // An accelerator computing no expert it does not hold (they all run on the
  // CPU where they lie: --offload-compute local) has no cache: 0.
  std::vector<Expert> experts;
  int host_expert_cache = 0;
  int device_expert_cache = 0;
  // Host memory for an expert the CPU computes for a layer on an
  // accelerator: the layer's input and the expert's activations.
  double expert_host_activations = 0;
  bool experts_converted = false;
  // The largest expert as stored: a read from disk brings in these bytes,
  // whatever the compute dtype (the planner's sizes count the smaller).
  double expert_stored_bytes = 0;
};

}  // namespace strata::plan
