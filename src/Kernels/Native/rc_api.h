// The C ABI of the Recurrent native library. Every export has the rc_ prefix,
// takes blittable arguments and returns an rc_status; on failure the message is
// kept per thread and read with rc_last_error. No C++ exception crosses it.
#pragma once
#include <stdint.h>

#define RC_EXPORT extern "C" __attribute__((visibility("default")))

enum rc_status : int32_t {
  RC_OK = 0,
  RC_INVALID_ARGUMENT = 1,
  RC_OUT_OF_MEMORY = 2,
  RC_INTERNAL = 3,
};

// Bit flags of rc_cpu_features.
enum rc_cpu_feature : uint32_t {
  RC_CPU_AVX2_FMA = 1u << 0,
  RC_CPU_AVX512F = 1u << 1,
};

// Instruction-set levels the kernels may be restricted to (tests force the
// narrower paths on a wide machine through rc_set_isa).
enum rc_isa : int32_t {
  RC_ISA_AUTO = 0,
  RC_ISA_PORTABLE = 1,
  RC_ISA_AVX2 = 2,
  RC_ISA_AVX512 = 3,
};

RC_EXPORT int32_t rc_version(void);
RC_EXPORT uint32_t rc_cpu_features(void);
RC_EXPORT const char* rc_last_error(void);
RC_EXPORT rc_status rc_set_isa(int32_t isa);
RC_EXPORT int32_t rc_active_isa(void);

// C[M,N] = alpha * op(A) * op(B) + beta * C, row-major (see gemm.h).
RC_EXPORT rc_status rc_sgemm(int32_t trans_a, int32_t trans_b, int64_t m, int64_t n, int64_t k, float alpha,
                             const float* a, int64_t lda, const float* b, int64_t ldb, float beta, float* c, int64_t ldc);

// op(B)[K,N] packed once for repeated products with the same right-hand side (see gemm.h).
// Free with rc_packed_b_free; a packed matrix may be shared by threads for reading.
typedef struct rc_packed_b rc_packed_b;
RC_EXPORT rc_status rc_pack_b(int32_t trans_b, int64_t k, int64_t n, const float* b, int64_t ldb, rc_packed_b** packed);
RC_EXPORT void rc_packed_b_free(rc_packed_b* packed);
// C[M,N] = alpha * op(A)[M,K] * B + beta * C with B from rc_pack_b.
RC_EXPORT rc_status rc_sgemm_packed(int32_t trans_a, int64_t m, float alpha, const float* a, int64_t lda,
                                    const rc_packed_b* packed, float beta, float* c, int64_t ldc);

// Threads the native kernels use (the calling thread included); 0 restores the default,
// the CPUs this process may run on.
RC_EXPORT rc_status rc_set_num_threads(int32_t count);
RC_EXPORT int32_t rc_get_num_threads(void);
