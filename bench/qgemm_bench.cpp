// kiln_qgemm_bench: Kiln's f32 GEMM (gemm::multiply) against its quantized-weight kernels
// (qgemm::multiply: s8 and bf16, each in the variant this CPU runs and in the AVX2 variant forced), on the
// same product C[M,N] = A[M,K]·Wᵀ + bias, warm caches (the weights stay in L2/L3 between calls).
//
// The variants take turns: each round times every variant for about --ms milliseconds of calls back to
// back, and a variant's figure is the median over --rounds rounds of its time per call, so a machine
// shared with other work slows all of them alike. Threads: omp_set_num_threads(T) and threads = 0 in the
// call, so each kernel applies its own small-work threshold, as in a model (--explicit: threads = T in the
// call, to measure what that threshold should be).
//
//   kiln_qgemm_bench                                  # the default shapes, 1 and 2 threads
//   kiln_qgemm_bench --threads 1 --rounds 31 1x256x8000 2048x512x2048
//
// Prints one line per shape and thread count: median ms per call of each variant, and its ratio to f32 (and,
// on an AVX-512 CPU, the forced AVX2 variants' ratios to the f32 AVX2 kernel).

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "ops/gemm.hpp"
#include "ops/isa.hpp"
#include "ops/qgemm.hpp"

namespace {

using kiln::isa::Level;
namespace gemm = kiln::gemm;
namespace qgemm = kiln::qgemm;

struct Shape {
  std::int64_t m, k, n;
};

struct Variant {
  std::string name;
  std::function<void()> call;
};

double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v.empty() ? 0 : v[v.size() / 2];
}

void* aligned(std::size_t bytes) { return std::aligned_alloc(64, (bytes + 63) / 64 * 64); }

}  // namespace

int main(int argc, char** argv) {
  std::vector<Shape> shapes;
  std::vector<int> threads = {1, 2};
  int rounds = 21;
  double ms = 20;
  bool explicit_threads = false;  // --explicit: pass T in the call (no small-work threshold)
  for (int i = 1; i < argc; ++i) {
    const std::string arg = argv[i];
    if (arg == "--threads" && i + 1 < argc) {
      threads.clear();
      for (char* t = std::strtok(argv[++i], ","); t; t = std::strtok(nullptr, ",")) threads.push_back(std::atoi(t));
    } else if (arg == "--rounds" && i + 1 < argc) {
      rounds = std::atoi(argv[++i]);
    } else if (arg == "--ms" && i + 1 < argc) {
      ms = std::atof(argv[++i]);
    } else if (arg == "--explicit") {
      explicit_threads = true;
    } else if (arg == "--help" || arg == "-h") {
      std::puts("usage: kiln_qgemm_bench [--threads 1,2] [--rounds 21] [--ms 20] [--explicit] [MxKxN ...]");
      return 0;
    } else {
      Shape s{};
      if (std::sscanf(arg.c_str(), "%ldx%ldx%ld", &s.m, &s.k, &s.n) != 3) {
        std::fprintf(stderr, "kiln_qgemm_bench: bad shape '%s' (expected MxKxN)\n", arg.c_str());
        return 2;
      }
      shapes.push_back(s);
    }
  }
  if (shapes.empty())
    shapes = {{1, 256, 256},   {1, 256, 1024},  {1, 1024, 256},   {1, 256, 8000},
              {16, 256, 1024}, {16, 1024, 256}, {2048, 512, 512}, {2048, 512, 2048}};
  if (!gemm::available()) {
    std::fputs("kiln_qgemm_bench: Kiln's kernels need AVX2 and FMA\n", stderr);
    return 1;
  }
  std::printf("f32: %s; s8: %s; bf16: %s; ISA: %s\n", gemm::variant(), qgemm::variant(qgemm::Format::s8),
              qgemm::variant(qgemm::Format::bf16), kiln::isa::describe().c_str());
  std::mt19937 rng(1);
  std::uniform_real_distribution<float> dist(-1.f, 1.f);
  for (const Shape& s : shapes) {
    std::vector<float> a(static_cast<std::size_t>(s.m * s.k)), w(static_cast<std::size_t>(s.n * s.k)),
        bias(static_cast<std::size_t>(s.n)), c(static_cast<std::size_t>(s.m * s.n));
    for (float& x : a) x = dist(rng);
    for (float& x : w) x = 0.1f * dist(rng);
    for (float& x : bias) x = dist(rng);
    auto* f32 = static_cast<float*>(aligned(gemm::packed_floats(s.n, s.k) * sizeof(float)));
    gemm::pack_weights(w.data(), s.n, s.k, f32);
    void* s8 = aligned(qgemm::packed_bytes(qgemm::Format::s8, s.n, s.k));
    void* bf16 = aligned(qgemm::packed_bytes(qgemm::Format::bf16, s.n, s.k));
    qgemm::pack(qgemm::Format::s8, w.data(), s.n, s.k, s8);
    qgemm::pack(qgemm::Format::bf16, w.data(), s.n, s.k, bf16);
    gemm::Epilogue ep;
    ep.bias = bias.data();
    int call_threads = 0;  // what the calls pass: 0 (each kernel's own threshold) or T (--explicit)
    auto q = [&](qgemm::Format f, void* p, std::optional<Level> level) {
      return [&, f, p, level] {
        if (level) gemm::override_variant(*level);
        qgemm::multiply(f, a.data(), s.k, p, c.data(), s.n, s.m, s.n, s.k, ep, call_threads);
        if (level) gemm::override_variant(std::nullopt);
      };
    };
    std::vector<Variant> variants = {
        {"f32", [&] { gemm::multiply(a.data(), s.k, f32, c.data(), s.n, s.m, s.n, s.k, ep, call_threads); }},
        {"s8", q(qgemm::Format::s8, s8, std::nullopt)},
        {"bf16", q(qgemm::Format::bf16, bf16, std::nullopt)},
    };
    if (kiln::isa::has(Level::avx512)) {
      variants.push_back({"s8 avx2", q(qgemm::Format::s8, s8, Level::avx2)});
      variants.push_back({"bf16 avx2", q(qgemm::Format::bf16, bf16, Level::avx2)});
      variants.push_back({"f32 avx2", [&] {
                            gemm::override_variant(Level::avx2);
                            gemm::multiply(a.data(), s.k, f32, c.data(), s.n, s.m, s.n, s.k, ep, call_threads);
                            gemm::override_variant(std::nullopt);
                          }});
    }
    for (int t : threads) {
      omp_set_num_threads(t);
      call_threads = explicit_threads ? t : 0;
      std::vector<std::vector<double>> times(variants.size());
      std::vector<int> reps(variants.size(), 1);
      for (std::size_t v = 0; v < variants.size(); ++v) {  // warm up, and pick calls per round
        for (int i = 0; i < 3; ++i) variants[v].call();
        const auto t0 = std::chrono::steady_clock::now();
        variants[v].call();
        const double one = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
        reps[v] = std::clamp(static_cast<int>(ms / std::max(one, 1e-4)), 1, 100000);
      }
      for (int r = 0; r < rounds; ++r)
        for (std::size_t v = 0; v < variants.size(); ++v) {
          const auto t0 = std::chrono::steady_clock::now();
          for (int i = 0; i < reps[v]; ++i) variants[v].call();
          times[v].push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count() /
                             reps[v]);
        }
      const double base = median(times[0]);
      std::printf("%ldx%ldx%ld threads %d:", s.m, s.k, s.n, t);
      for (std::size_t v = 0; v < variants.size(); ++v)
        std::printf("  %s %.4f ms (%.2fx)", variants[v].name.c_str(), median(times[v]), median(times[v]) / base);
      if (variants.size() == 6)  // the AVX2 variants against the f32 AVX2 kernel
        std::printf("  | AVX2: s8 %.2fx, bf16 %.2fx of f32 avx2", median(times[3]) / median(times[5]),
                    median(times[4]) / median(times[5]));
      std::printf("\n");
      std::fflush(stdout);
    }
    std::free(f32);
    std::free(s8);
    std::free(bf16);
  }
  return 0;
}
