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
//
// --onednn adds oneDNN 2.6's matmul on the same product, each taking its turn in the same rounds:
//   dnnl f32   f32 weights (reordered once to the layout oneDNN picks), bias
//   dnnl s8s8  s8 weights per output channel; A quantized per call to s8 with one scale sa for the whole
//              matrix (oneDNN 2.6 has no per-row source scale), dequantized by constant per-column output
//              scales and a binary-mul post-op by the run-time sa, then the bias (a binary-add post-op);
//              the quantization of A is inside the timed call
//   dnnl u8s8  the same with A as u8 around a run-time zero point of 128 (the form AVX2 CPUs run)
// and prints the implementation oneDNN chose for each. ONEDNN_MAX_CPU_ISA=AVX2 shows what an AVX2-only CPU
// gets from oneDNN (run with KILN_MAX_ISA=avx2 for Kiln's side of the same CPU).

#include <omp.h>

#include <dnnl.hpp>

#include <algorithm>
#include <cmath>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <functional>
#include <memory>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
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

/// oneDNN's matmul C[M,N] = A[M,K]·Wᵀ + bias in f32, s8·s8 or u8·s8 (see the header). Everything but the
/// per-call quantization of A is made once.
class OnednnMatmul {
 public:
  enum class Kind { f32, s8s8, u8s8 };
  OnednnMatmul(Kind kind, const Shape& s, const std::vector<float>& w, const std::vector<float>& bias)
      : kind_(kind), m_(s.m), k_(s.k), n_(s.n), stream_(engine_) {
    using dt = dnnl::memory::data_type;
    using tag = dnnl::memory::format_tag;
    const dt src = kind == Kind::f32 ? dt::f32 : kind == Kind::s8s8 ? dt::s8 : dt::u8;
    const dt wei = kind == Kind::f32 ? dt::f32 : dt::s8;
    const dnnl::memory::desc a_md({m_, k_}, src, tag::ab), w_any({k_, n_}, wei, tag::any),
        b_md({1, n_}, dt::f32, tag::ab), c_md({m_, n_}, dt::f32, tag::ab);
    // W [N,K] row-major is B [K,N] in the "ba" order; per-column symmetric s8 for the int8 kinds.
    wscale_.assign(static_cast<std::size_t>(n_), 1.f);
    std::vector<std::int8_t> w8(w.size());
    for (std::int64_t j = 0; j < n_; ++j) {
      float mx = 0;
      for (std::int64_t i = 0; i < k_; ++i) mx = std::max(mx, std::fabs(w[static_cast<std::size_t>(j * k_ + i)]));
      wscale_[static_cast<std::size_t>(j)] = mx > 0 ? mx / 127.f : 1.f;
      for (std::int64_t i = 0; i < k_; ++i) {
        const auto at = static_cast<std::size_t>(j * k_ + i);
        w8[at] = static_cast<std::int8_t>(std::nearbyint(w[at] / wscale_[static_cast<std::size_t>(j)]));
      }
    }
    // int8: the per-column weight scales are constant output scales; the per-call activation scale sa is a
    // binary-mul post-op reading a run-time scalar, and the bias a binary-add after it (oneDNN 2.6 adds its
    // bias before post-ops; run-time output scales take it off its brgemm kernels onto gemm:jit).
    dnnl::primitive_attr attr;
    if (kind != Kind::f32) {
      attr.set_output_scales(1 << 1, wscale_);
      dnnl::post_ops ops;
      ops.append_binary(dnnl::algorithm::binary_mul, dnnl::memory::desc({1, 1}, dt::f32, tag::ab));
      ops.append_binary(dnnl::algorithm::binary_add, b_md);
      attr.set_post_ops(ops);
    }
    if (kind == Kind::u8s8) attr.set_zero_points(DNNL_ARG_SRC, 0, {DNNL_RUNTIME_S32_VAL});
    const dnnl::matmul::primitive_desc pd(
        kind == Kind::f32 ? dnnl::matmul::desc(a_md, w_any, b_md, c_md) : dnnl::matmul::desc(a_md, w_any, c_md), attr,
        engine_);
    impl_ = pd.impl_info_str();
    prim_ = dnnl::matmul(pd);
    dnnl::memory plain({{k_, n_}, wei, tag::ba}, engine_,
                       kind == Kind::f32 ? static_cast<void*>(const_cast<float*>(w.data())) : w8.data());
    weights_ = dnnl::memory(pd.weights_desc(), engine_);
    dnnl::reorder(plain, weights_).execute(stream_, plain, weights_);
    stream_.wait();
    bias_ = dnnl::memory(b_md, engine_);
    std::memcpy(bias_.get_data_handle(), bias.data(), bias.size() * sizeof(float));
    src_ = dnnl::memory(a_md, engine_);
    dst_ = dnnl::memory(c_md, engine_);
    scale_ = dnnl::memory({{1, 1}, dt::f32, tag::ab}, engine_);
    zero_ = dnnl::memory({{1}, dt::s32, tag::a}, engine_);
    *static_cast<std::int32_t*>(zero_.get_data_handle()) = 128;
    args_ = {{DNNL_ARG_SRC, src_}, {DNNL_ARG_WEIGHTS, weights_}, {DNNL_ARG_DST, dst_}};
    if (kind == Kind::f32) {
      args_[DNNL_ARG_BIAS] = bias_;
    } else {
      args_[DNNL_ARG_ATTR_MULTIPLE_POST_OP(0) | DNNL_ARG_SRC_1] = scale_;
      args_[DNNL_ARG_ATTR_MULTIPLE_POST_OP(1) | DNNL_ARG_SRC_1] = bias_;
    }
    if (kind == Kind::u8s8) args_[DNNL_ARG_ATTR_ZERO_POINTS | DNNL_ARG_SRC] = zero_;
  }
  const std::string& impl() const { return impl_; }
  void operator()(const std::vector<float>& a) {
    if (kind_ == Kind::f32) {
      std::memcpy(src_.get_data_handle(), a.data(), a.size() * sizeof(float));
    } else {
      float mx = 0;
      for (float x : a) mx = std::max(mx, std::fabs(x));
      const float sa = mx > 0 ? mx / 127.f : 1.f, inv = 1.f / sa;
      if (kind_ == Kind::s8s8) {
        auto* q = static_cast<std::int8_t*>(src_.get_data_handle());
        for (std::size_t i = 0; i < a.size(); ++i) q[i] = static_cast<std::int8_t>(std::nearbyint(a[i] * inv));
      } else {
        auto* q = static_cast<std::uint8_t*>(src_.get_data_handle());
        for (std::size_t i = 0; i < a.size(); ++i)
          q[i] = static_cast<std::uint8_t>(std::nearbyint(a[i] * inv) + 128.f);
      }
      *static_cast<float*>(scale_.get_data_handle()) = sa;
    }
    prim_.execute(stream_, args_);
    stream_.wait();
  }

 private:
  Kind kind_;
  std::int64_t m_, k_, n_;
  dnnl::engine engine_{dnnl::engine::kind::cpu, 0};
  dnnl::stream stream_;
  dnnl::matmul prim_;
  dnnl::memory weights_, bias_, src_, dst_, scale_, zero_;
  std::vector<float> wscale_;
  std::unordered_map<int, dnnl::memory> args_;
  std::string impl_;
};

}  // namespace

int main(int argc, char** argv) {
  std::vector<Shape> shapes;
  std::vector<int> threads = {1, 2};
  int rounds = 21;
  double ms = 20;
  bool explicit_threads = false;  // --explicit: pass T in the call (no small-work threshold)
  bool onednn = false;            // --onednn: oneDNN's f32, s8s8 and u8s8 matmul too
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
    } else if (arg == "--onednn") {
      onednn = true;
    } else if (arg == "--help" || arg == "-h") {
      std::puts("usage: kiln_qgemm_bench [--threads 1,2] [--rounds 21] [--ms 20] [--explicit] [--onednn] [MxKxN ...]");
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
    const std::size_t kiln_variants = variants.size();
    std::vector<std::unique_ptr<OnednnMatmul>> dnnl_matmuls;
    if (onednn) {
      using K = OnednnMatmul::Kind;
      for (auto [kind, name] : {std::pair{K::f32, "dnnl f32"}, {K::s8s8, "dnnl s8s8"}, {K::u8s8, "dnnl u8s8"}}) {
        try {
          dnnl_matmuls.push_back(std::make_unique<OnednnMatmul>(kind, s, w, bias));
        } catch (const dnnl::error& e) {
          std::printf("%ldx%ldx%ld: %s: oneDNN has no implementation (%s)\n", s.m, s.k, s.n, name, e.what());
          continue;
        }
        OnednnMatmul* mm = dnnl_matmuls.back().get();
        std::printf("%ldx%ldx%ld: %s runs %s\n", s.m, s.k, s.n, name, mm->impl().c_str());
        variants.push_back({name, [mm, &a] { (*mm)(a); }});
      }
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
      if (kiln_variants == 6)  // the AVX2 variants against the f32 AVX2 kernel
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
