// Kiln's GEMM (ops/gemm.hpp) across thread counts: when multiply() splits a product over the OpenMP team
// (gemm::worth_splitting: enough FLOPs, or enough weights, as a decoding step's few-row products have), and
// that the split never changes a bit of the result, for every kernel variant this CPU runs under the ISA
// cap, on column splits (the panels, in pairs for AVX-512, with odd panel counts and a partial last panel)
// and row splits (fewer panels than threads).

#include <omp.h>

#include <cstdlib>
#include <cstring>
#include <random>
#include <string>
#include <vector>

#include "ops/gemm.hpp"
#include "ops/isa.hpp"
#include "tests/test_util.hpp"

namespace {

using kiln::isa::Level;

struct VariantChoice {
  explicit VariantChoice(Level level) { kiln::gemm::override_variant(level); }
  ~VariantChoice() { kiln::gemm::override_variant(std::nullopt); }
  VariantChoice(const VariantChoice&) = delete;
  VariantChoice& operator=(const VariantChoice&) = delete;
};

struct Packed {
  Packed(const std::vector<float>& w, std::int64_t n, std::int64_t k)
      : data(static_cast<float*>(std::aligned_alloc(64, (kiln::gemm::packed_floats(n, k) * sizeof(float) + 63) / 64 * 64))) {
    kiln::gemm::pack_weights(w.data(), n, k, data);
  }
  ~Packed() { std::free(data); }
  Packed(const Packed&) = delete;
  Packed& operator=(const Packed&) = delete;
  float* data;
};

}  // namespace

TEST_CASE("gemm: few-row products split over the threads when their weights are large, small ones stay on one") {
  using kiln::gemm::worth_splitting;
  // A decoding step's linears at batch 1 are a fraction of a MFLOP but stream 256 KB to 8 MB of weights.
  CHECK(worth_splitting(1, 256, 256));   // 0.13 MFLOP, 256 KB
  CHECK(worth_splitting(1, 1024, 256));  // 0.5 MFLOP, 1 MB
  CHECK(worth_splitting(1, 8000, 256));  // the generator
  CHECK(worth_splitting(1, 768, 256));   // q, k, v of the new position
  // Small weights and few FLOPs: a parallel region costs more than it saves.
  CHECK_FALSE(worth_splitting(1, 192, 64));   // the d64 date Transformer's step
  CHECK_FALSE(worth_splitting(32, 128, 128));  // 1 MFLOP, 64 KB
  CHECK_FALSE(worth_splitting(4, 256, 128));   // 128 KB
  // Enough FLOPs splits whatever the weights.
  CHECK(worth_splitting(128, 64, 128));  // 2.1 MFLOP, 32 KB
  CHECK(worth_splitting(16, 256, 256));
}

TEST_CASE("gemm: one thread, two threads and the automatic choice give bit-identical products") {
  if (!kiln::gemm::available()) return;
  std::mt19937 rng(16);
  std::uniform_real_distribution<float> d(-1.f, 1.f);
  struct Shape {
    std::int64_t rows, n, k;
  };
  // Column splits (n from 1 to 500 panels, odd counts, a partial last panel), row splits (n <= 16: one panel),
  // depths across the 512 K block.
  const Shape shapes[] = {{1, 8000, 256}, {1, 768, 256},  {1, 256, 1024}, {3, 250, 256},  {1, 272, 600},
                          {16, 256, 256}, {5, 48, 1030},  {40, 16, 64},   {13, 7, 300},   {1, 33, 256}};
  const int team = omp_get_max_threads();
  omp_set_num_threads(2);
  for (Level level : {Level::avx2, Level::avx512}) {
    if (!kiln::isa::has(level)) continue;
    VariantChoice choice(level);
    for (const Shape& s : shapes) {
      INFO(kiln::gemm::variant() << ": rows " << s.rows << " n " << s.n << " k " << s.k);
      std::vector<float> a(static_cast<std::size_t>(s.rows * s.k)), w(static_cast<std::size_t>(s.n * s.k));
      std::vector<float> bias(static_cast<std::size_t>(s.n)), res(static_cast<std::size_t>(s.rows * s.n));
      for (auto* v : {&a, &w, &bias, &res})
        for (float& x : *v) x = d(rng);
      Packed packed(w, s.n, s.k);
      kiln::gemm::Epilogue ep;
      ep.bias = bias.data();
      ep.activation = kiln::gemm::Activation::Relu;
      ep.residual = res.data();
      ep.ldr = s.n;
      std::vector<std::vector<float>> out;
      for (int threads : {1, 2, 0}) {
        std::vector<float> c(static_cast<std::size_t>(s.rows * s.n), -7.f);
        kiln::gemm::multiply(a.data(), s.k, packed.data, c.data(), s.n, s.rows, s.n, s.k, ep, threads);
        out.push_back(std::move(c));
      }
      CHECK(std::memcmp(out[0].data(), out[1].data(), out[0].size() * sizeof(float)) == 0);
      CHECK(std::memcmp(out[0].data(), out[2].data(), out[0].size() * sizeof(float)) == 0);
      // Not a product of zeros: the check above would pass on anything constant.
      CHECK(out[0][0] != -7.f);
    }
  }
  omp_set_num_threads(team);
}
