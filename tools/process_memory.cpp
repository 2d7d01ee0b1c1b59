#include "process_memory.h"

#include <chrono>
#include <fstream>
#include <string>

namespace strata::cli {

ProcessMemory read_process_memory() {
  ProcessMemory m;
  std::ifstream in("/proc/self/status");
  auto kib = [](const std::string& line) { return std::stoull(line.substr(line.find(':') + 1)) * 1024; };
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("RssAnon:", 0) == 0) m.rss_anon = kib(line);
    if (line.rfind("RssFile:", 0) == 0) m.rss_file = kib(line);
    if (line.rfind("VmHWM:", 0) == 0) m.vm_hwm = kib(line);
  }
  return m;
}

PeakAnonSampler::PeakAnonSampler(int period_ms)
    : thread_([this, period_ms] {
        while (!stop_.load()) {
          const uint64_t now = read_process_memory().rss_anon;
          if (now > peak_.load()) peak_.store(now);
          std::this_thread::sleep_for(std::chrono::milliseconds(period_ms));
        }
      }) {}

PeakAnonSampler::~PeakAnonSampler() {
  stop_.store(true);
  thread_.join();
}

uint64_t PeakAnonSampler::peak() const {
  const uint64_t now = read_process_memory().rss_anon;
  return now > peak_.load() ? now : peak_.load();
}

}  // namespace strata::cli
