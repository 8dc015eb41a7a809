#include <atomic>
#include <string>
#include "rc_common.h"

namespace {
thread_local std::string g_last_error;
std::atomic<int32_t> g_isa_limit{RC_ISA_AUTO};

uint32_t detect_features() {
  __builtin_cpu_init();
  uint32_t features = 0;
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma")) features |= RC_CPU_AVX2_FMA;
  if (__builtin_cpu_supports("avx512f") && (features & RC_CPU_AVX2_FMA)) features |= RC_CPU_AVX512F;
  return features;
}
}  // namespace

namespace rc {
void set_last_error(const std::string& message) { g_last_error = message; }

rc_isa current_isa() {
  static const uint32_t features = detect_features();
  rc_isa best = (features & RC_CPU_AVX512F) ? RC_ISA_AVX512
              : (features & RC_CPU_AVX2_FMA) ? RC_ISA_AVX2
                                              : RC_ISA_PORTABLE;
  int32_t limit = g_isa_limit.load(std::memory_order_relaxed);
  return (limit == RC_ISA_AUTO || limit > best) ? best : static_cast<rc_isa>(limit);
}
}  // namespace rc

RC_EXPORT int32_t rc_version(void) { return 1; }

RC_EXPORT uint32_t rc_cpu_features(void) { return detect_features(); }

RC_EXPORT const char* rc_last_error(void) { return g_last_error.c_str(); }

RC_EXPORT rc_status rc_set_isa(int32_t isa) {
  return rc::guard([&] {
    if (isa < RC_ISA_AUTO || isa > RC_ISA_AVX512)
      throw std::invalid_argument("isa: expected 0 (auto), 1 (portable), 2 (avx2) or 3 (avx512), got " + std::to_string(isa));
    g_isa_limit.store(isa, std::memory_order_relaxed);
  });
}

RC_EXPORT int32_t rc_active_isa(void) { return rc::current_isa(); }
