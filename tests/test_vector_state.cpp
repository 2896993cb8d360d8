// Kiln's vector kernels return with the upper halves of the vector registers clean (vzeroupper done).
// A kernel that returns with them dirty makes every later SSE instruction of the thread pay: on AMD Zen 5
// under KILN_MAX_ISA=avx2 the layer norms after an int8 GEMM took 4x longer and the cross-attention loop
// 2.8x (docs/gemm.md, "Quantized weights"). The compiler adds vzeroupper at the return of a function
// compiled for AVX, but not in one that takes vector arguments: a block that ended with a tail call to such a
// helper (qgemm's store8) returned dirty.
//
// The state is read with XGETBV(ECX=1) (XINUSE): bit 2 is set while the upper 128 bits of a ymm register may
// be non-zero, bit 6 the same for the upper 256 bits of zmm0..15. The test first checks that it can see the
// state change (an inline vpcmpeqd on ymm0 sets it, vzeroupper clears it), so it cannot pass by reading a
// constant; CPUs without XGETBV(1) skip it with a message.

#include <cpuid.h>

#include <cstdint>
#include <cstdlib>
#include <map>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "kiln/kiln.hpp"
#include "ops/gemm.hpp"
#include "ops/isa.hpp"
#include "ops/qgemm.hpp"
#include "runtime/npy.hpp"
#include "test_util.hpp"
#include "tests/gemm_test_util.hpp"

namespace {

using kiln::isa::Level;

constexpr std::uint64_t kDirtyUpper = (1u << 2) | (1u << 6);  // XINUSE: AVX (ymm upper), ZMM_Hi256

bool xinuse_readable() {
  unsigned a = 0, b = 0, c = 0, d = 0;
  if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & bit_OSXSAVE) || !(c & bit_AVX)) return false;
  if (!__get_cpuid_count(0xd, 1, &a, &b, &c, &d)) return false;
  return (a & (1u << 2)) != 0;  // XGETBV with ECX = 1
}

std::uint64_t xinuse() {
  std::uint32_t lo = 0, hi = 0;
  asm volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(1));
  return (static_cast<std::uint64_t>(hi) << 32) | lo;
}

void dirty_ymm0() { asm volatile("vpcmpeqd %%ymm0, %%ymm0, %%ymm0" ::: "xmm0"); }
void clean_upper() { asm volatile("vzeroupper" ::: "memory"); }

/// Whether this test can observe the state: XGETBV(1) exists and follows a dirtied and a cleaned ymm0.
bool can_observe() {
  if (!xinuse_readable()) {
    MESSAGE("this CPU has no XGETBV(1): the upper-state checks are skipped");
    return false;
  }
  dirty_ymm0();
  const bool dirty = (xinuse() & kDirtyUpper) != 0;
  clean_upper();
  const bool clean = (xinuse() & kDirtyUpper) == 0;
  REQUIRE(dirty);  // the detector sees a dirty ymm0...
  REQUIRE(clean);  // ...and vzeroupper clearing it
  return true;
}

using kiln::test::VariantChoice;

struct Aligned {
  explicit Aligned(std::size_t bytes) : data(std::aligned_alloc(64, (bytes + 63) / 64 * 64)) {}
  ~Aligned() { std::free(data); }
  Aligned(const Aligned&) = delete;
  Aligned& operator=(const Aligned&) = delete;
  void* data;
};

}  // namespace

TEST_CASE("vector state: the GEMM kernels (f32, s8, bf16) return with clean upper registers, every epilogue") {
  if (!kiln::gemm::available() || !can_observe()) return;
  // Row counts cover every register-block height and a remainder; 20 columns end in a partial panel.
  const std::int64_t n = 20, k = 37;
  std::mt19937 rng(1);
  const std::vector<float> w = kiln::test::random_floats(rng, static_cast<std::size_t>(n * k), -1.f, 1.f);
  const std::vector<float> bias = kiln::test::random_floats(rng, static_cast<std::size_t>(n), -1.f, 1.f);
  for (Level l : kiln::test::gemm_levels()) {
    VariantChoice choice(l);
    Aligned packed(kiln::gemm::packed_floats(n, k) * sizeof(float));
    kiln::gemm::pack_weights(w.data(), n, k, static_cast<float*>(packed.data));
    for (std::int64_t rows : {1, 2, 3, 4, 5, 6, 7, 13})
      for (auto act : {kiln::gemm::Activation::None, kiln::gemm::Activation::Relu, kiln::gemm::Activation::Gelu}) {
        const std::vector<float> a = kiln::test::random_floats(rng, static_cast<std::size_t>(rows * k), -1.f, 1.f);
        const std::vector<float> res = kiln::test::random_floats(rng, static_cast<std::size_t>(rows * n), -1.f, 1.f);
        std::vector<float> c(static_cast<std::size_t>(rows * n));
        kiln::gemm::Epilogue ep;
        ep.bias = bias.data();
        ep.activation = act;
        ep.residual = res.data();
        ep.ldr = n;
        INFO(kiln::gemm::variant() << " rows " << rows << " activation " << static_cast<int>(act));
        kiln::gemm::multiply(a.data(), k, static_cast<const float*>(packed.data), c.data(), n, rows, n, k, ep, 1);
        CHECK((xinuse() & kDirtyUpper) == 0);
        for (auto f : {kiln::qgemm::Format::s8, kiln::qgemm::Format::bf16}) {
          if (!kiln::qgemm::available(f)) continue;
          Aligned q(kiln::qgemm::packed_bytes(f, n, k));
          kiln::qgemm::pack(f, w.data(), n, k, q.data);
          INFO(kiln::qgemm::variant(f));
          kiln::qgemm::multiply(f, a.data(), k, q.data, c.data(), n, rows, n, k, ep, 1);
          CHECK((xinuse() & kDirtyUpper) == 0);
        }
        kiln::gemm::softmax_rows(c.data(), c.data(), rows, n);
        CHECK((xinuse() & kDirtyUpper) == 0);
      }
  }
}

TEST_CASE("vector state: whole models (classifier in f32, int8 and bf16, a 2-layer bidirectional LSTM) return clean") {
  if (!can_observe()) return;
  kiln::SessionOptions one;
  one.intra_op_threads = 1;  // every kernel runs on this thread, the one whose state is read
  const std::string d64 = "tests/fixtures/classifier_d64_l2";
  const std::map<std::string, kiln::Tensor> tokens = {
      {"tokens", kiln::read_npy(kiln::test::source_path(d64 + "/tokens_b4_s33.npy"))}};
  for (auto q : {kiln::Quantize::none, kiln::Quantize::int8, kiln::Quantize::bf16}) {
    kiln::LoadOptions options;
    options.quantize = q;
    if (q == kiln::Quantize::int8 && !kiln::qgemm::available(kiln::qgemm::Format::s8)) continue;
    if (q == kiln::Quantize::bf16 && !kiln::qgemm::available(kiln::qgemm::Format::bf16)) continue;
    kiln::Session session(kiln::Model::load(kiln::test::source_path(d64 + "/model.yaml"), options), one);
    INFO("quantize " << static_cast<int>(q));
    clean_upper();
    const auto out = session.run(tokens);
    CHECK(out.count("probs") == 1);
    CHECK((xinuse() & kDirtyUpper) == 0);
  }
  const std::string lstm = "tests/fixtures/rnn/lstm_l2_bi_s5_state";
  std::map<std::string, kiln::Tensor> inputs;
  for (const char* name : {"x", "h0", "c0"})
    inputs[name] = kiln::read_npy(kiln::test::source_path(lstm + "/" + name + ".npy"));
  kiln::Session session(kiln::Model::load(kiln::test::source_path(lstm + "/model.yaml")), one);
  clean_upper();
  const auto out = session.run(inputs);
  CHECK(kiln::test::max_abs_diff(out.at("y"), kiln::read_npy(kiln::test::source_path(lstm + "/y.npy"))) < 1e-5);
  CHECK((xinuse() & kDirtyUpper) == 0);
}
