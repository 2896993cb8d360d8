// kiln_matmul_peak: what a single oneDNN f32 matmul reaches on this machine, in GFLOP/s.
//
// The reference for "how close does a whole Kiln model get to the matmul peak": each shape is built
// the way Kiln's `linear` builds it (ops/linear.cpp): src plain {M,K}, weights {K,N} either stored
// N x K (`ba`, strides {1,K}: Kiln's and PyTorch's layout) or K x N (`ab`), dst plain {M,N}, a
// user-managed scratchpad, the primitive created once. Each shape is run W times untimed, then R
// times timed one by one; the median of the R timings gives the figure (2*M*N*K / median).
//
// With --kiln, Kiln's own GEMM (ops/gemm.hpp: weights packed once into 16-column panels) runs the same
// product too, alternating call by call with oneDNN's so both see the same machine, and the line adds
// its figure and the ratio of the medians. --variant picks Kiln's kernel variant (avx512, avx2; default: what
// the CPU under KILN_MAX_ISA runs), --variant all times every variant this CPU has, all alternating call by
// call with oneDNN's, one figure and ratio each. --cold evicts the caches (touches 64 MB) before every timed
// call, as a model whose weights do not fit the caches sees them.
//
//   kiln_matmul_peak                                 # the default shapes
//   kiln_matmul_peak --threads 2 128,512,2048,ba     # one shape
//   kiln_matmul_peak --json 1x512x512                # machine-readable
//   kiln_matmul_peak --kiln --cold --bias 128,512,2048 128,2048,512   # Kiln's GEMM vs oneDNN
//   kiln_matmul_peak --kiln --variant all --bias 128,512,2048         # Kiln's AVX-512 and AVX2 kernels vs oneDNN

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <exception>
#include <memory>
#include <new>
#include <optional>
#include <random>
#include <string>
#include <unordered_map>
#include <vector>

#include "oneapi/dnnl/dnnl.hpp"
#include "ops/gemm.hpp"

namespace {

struct Shape {
  std::int64_t m = 0, k = 0, n = 0;
  bool weights_ba = true;  // weights stored N x K (true) or K x N (false)
};

struct Options {
  std::vector<Shape> shapes;
  int threads = 0;       // 0: leave OpenMP's default (OMP_NUM_THREADS or all cores)
  int repeat = 0;        // 0: automatic
  int warmup = 5;
  double budget_s = 0.5;  // automatic repeat: about this many seconds of timed runs per shape
  bool bias = false;
  bool json = false;
  bool kiln = false;  // also time Kiln's GEMM (ba weights only)
  bool cold = false;  // evict the caches before each timed call
  std::vector<kiln::isa::Level> variants;  // Kiln's kernel variants to time (--variant)
};

struct KilnResult {
  kiln::isa::Level level;
  std::string name;
  double median_ms = 0, min_ms = 0, gflops = 0;
};

struct Result {
  Shape shape;
  int threads = 0;
  int runs = 0;
  double median_ms = 0, min_ms = 0, gflops = 0;
  std::string impl;
  std::vector<KilnResult> kiln;  // with --kiln, one per variant
};

constexpr int kMinAutoRepeat = 11;
constexpr int kMaxAutoRepeat = 2000;

const char* kUsage =
    "usage: kiln_matmul_peak [options] [SHAPE...]\n"
    "\n"
    "Measures oneDNN f32 matmul throughput (GFLOP/s = 2*M*N*K / median time) the way Kiln's linear\n"
    "op builds its matmul: src plain {M,K}, weights {K,N}, dst plain {M,N}, user scratchpad, the\n"
    "primitive created once, W untimed warm-up runs, then R timed runs (median).\n"
    "\n"
    "SHAPE is M,K,N[,LAYOUT] (or MxKxN[xLAYOUT]); LAYOUT is the weights' storage:\n"
    "  ba  N x K, strides {1,K}: Kiln's and PyTorch's layout (default)\n"
    "  ab  K x N, row-major\n"
    "Default shapes: 128,512,2048,ba  128,512,2048,ab  2048,2048,2048,ba  1,512,512,ba\n"
    "\n"
    "options:\n"
    "  -t, --threads T   OpenMP threads (omp_set_num_threads); default: OMP_NUM_THREADS or all cores\n"
    "  -r, --repeat R    timed runs per shape (default: automatic, about --budget seconds, 11..2000)\n"
    "  -w, --warmup W    untimed runs before timing (default 5)\n"
    "      --budget S    seconds of timed runs per shape when --repeat is automatic (default 0.5)\n"
    "      --bias        add a {1,N} bias, as Kiln's linear does (FLOPs still counted as 2*M*N*K)\n"
    "      --json        print one JSON object instead of the text lines\n"
    "      --kiln        also run Kiln's own GEMM (weights packed once; AVX2+FMA CPUs, ba weights),\n"
    "                    alternating call by call with oneDNN's, and print both and the ratio\n"
    "      --variant V   with --kiln: Kiln's kernel variant, avx512 or avx2 (at most what the CPU under\n"
    "                    KILN_MAX_ISA has), or all: every variant this CPU has, each alternating with\n"
    "                    oneDNN's (default: the one Kiln runs here)\n"
    "      --cold        evict the caches (touch 64 MB) before every timed call\n"
    "  -h, --help        this text\n"
    "\n"
    "Output, one line per shape:\n"
    "  matmul M=128 K=512 N=2048 weights=ba threads=2: 142.0 GFLOP/s (median 1.890 ms)\n"
    "and with --kiln:\n"
    "  ... 121.3 GFLOP/s (median 2.214 ms); kiln:gemm_avx2 133.0 GFLOP/s (median 2.018 ms), kiln/onednn 0.91\n";

[[noreturn]] void usage_error(const std::string& msg) {
  std::fprintf(stderr, "kiln_matmul_peak: %s\n(see kiln_matmul_peak --help)\n", msg.c_str());
  std::exit(2);
}

long long parse_int(const std::string& text, const std::string& what, long long lo) {
  std::size_t used = 0;
  long long v = 0;
  try {
    v = std::stoll(text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used == 0 || used != text.size()) usage_error(what + " expects an integer, got '" + text + "'");
  if (v < lo) usage_error(what + " must be >= " + std::to_string(lo) + ", got " + text);
  return v;
}

Shape parse_shape(const std::string& text) {
  std::vector<std::string> parts(1);
  for (char c : text) {
    if (c == ',' || c == 'x' || c == 'X') parts.emplace_back();
    else parts.back() += c;
  }
  // "ba"/"ab" contain no 'x', so splitting on 'x' keeps the layout intact.
  if (parts.size() != 3 && parts.size() != 4)
    usage_error("shape '" + text + "' is not M,K,N or M,K,N,LAYOUT (e.g. 128,512,2048,ba)");
  Shape s;
  s.m = parse_int(parts[0], "M in shape '" + text + "'", 1);
  s.k = parse_int(parts[1], "K in shape '" + text + "'", 1);
  s.n = parse_int(parts[2], "N in shape '" + text + "'", 1);
  if (parts.size() == 4) {
    if (parts[3] == "ba") s.weights_ba = true;
    else if (parts[3] == "ab") s.weights_ba = false;
    else usage_error("weights layout in shape '" + text + "' must be ba or ab, got '" + parts[3] + "'");
  }
  return s;
}

Options parse_args(int argc, char** argv) {
  Options o;
  auto value = [&](int& i, const std::string& name) -> std::string {
    if (i + 1 >= argc) usage_error(name + " needs a value");
    return argv[++i];
  };
  for (int i = 1; i < argc; ++i) {
    std::string a = argv[i];
    std::string inline_value;
    bool has_inline = false;
    if (a.rfind("--", 0) == 0) {
      auto eq = a.find('=');
      if (eq != std::string::npos) {
        inline_value = a.substr(eq + 1);
        a = a.substr(0, eq);
        has_inline = true;
      }
    }
    auto val = [&](const std::string& name) { return has_inline ? inline_value : value(i, name); };
    if (a == "-h" || a == "--help") {
      std::fputs(kUsage, stdout);
      std::exit(0);
    } else if (a == "-t" || a == "--threads") {
      o.threads = static_cast<int>(parse_int(val("--threads"), "--threads", 1));
    } else if (a == "-r" || a == "--repeat") {
      o.repeat = static_cast<int>(parse_int(val("--repeat"), "--repeat", 1));
    } else if (a == "-w" || a == "--warmup") {
      o.warmup = static_cast<int>(parse_int(val("--warmup"), "--warmup", 0));
    } else if (a == "--budget") {
      std::string v = val("--budget");
      char* end = nullptr;
      o.budget_s = std::strtod(v.c_str(), &end);
      if (v.empty() || *end != '\0' || !(o.budget_s > 0)) usage_error("--budget expects seconds > 0, got '" + v + "'");
    } else if (a == "--bias" && !has_inline) {
      o.bias = true;
    } else if (a == "--json" && !has_inline) {
      o.json = true;
    } else if (a == "--kiln" && !has_inline) {
      o.kiln = true;
    } else if (a == "--cold" && !has_inline) {
      o.cold = true;
    } else if (a == "--variant") {
      const std::string v = val("--variant");
      if (v == "all") {
        o.variants = {kiln::isa::Level::avx2, kiln::isa::Level::avx512};
      } else {
        auto level = kiln::isa::parse(v);
        if (!level || *level == kiln::isa::Level::sse41) usage_error("--variant expects avx512, avx2 or all, got '" + v + "'");
        o.variants = {*level};
      }
    } else if (!a.empty() && a[0] == '-') {
      usage_error("unknown option '" + std::string(argv[i]) + "'");
    } else {
      o.shapes.push_back(parse_shape(a));
    }
  }
  if (o.kiln && !kiln::gemm::available()) usage_error("--kiln: this CPU lacks AVX2 or FMA, which Kiln's GEMM needs");
  if (!o.kiln && !o.variants.empty()) usage_error("--variant needs --kiln");
  if (o.variants.empty()) o.variants = {kiln::gemm::variant_level()};
  // Variants above what the CPU (under KILN_MAX_ISA) has: refused, except in `all`, which keeps those it has.
  const bool all = o.variants.size() > 1;
  std::erase_if(o.variants, [&](kiln::isa::Level l) {
    if (static_cast<int>(l) <= static_cast<int>(kiln::isa::effective())) return false;
    if (!all) usage_error(std::string("--variant ") + kiln::isa::name(l) + ": not available here (" + kiln::isa::describe() + ")");
    return true;
  });
  if (o.shapes.empty()) {
    o.shapes = {{128, 512, 2048, true}, {128, 512, 2048, false}, {2048, 2048, 2048, true}, {1, 512, 512, true}};
  }
  return o;
}

using Clock = std::chrono::steady_clock;

double elapsed_ms(Clock::time_point t0, Clock::time_point t1) {
  return std::chrono::duration<double, std::milli>(t1 - t0).count();
}

void fill(const dnnl::memory& mem, std::size_t count, std::mt19937& rng) {
  std::uniform_real_distribution<float> dist(-1.0f, 1.0f);
  auto* p = static_cast<float*>(mem.get_data_handle());
  for (std::size_t i = 0; i < count; ++i) p[i] = dist(rng);
}

Result measure(const Shape& s, const Options& o, const dnnl::engine& engine, dnnl::stream& stream) {
  using dt = dnnl::memory::data_type;
  const dnnl::memory::desc src_md({s.m, s.k}, dt::f32, dnnl::memory::dims{s.k, 1});
  const dnnl::memory::desc wei_md({s.k, s.n}, dt::f32,
                                  s.weights_ba ? dnnl::memory::dims{1, s.k} : dnnl::memory::dims{s.n, 1});
  const dnnl::memory::desc bias_md({1, s.n}, dt::f32, dnnl::memory::dims{s.n, 1});
  const dnnl::memory::desc dst_md({s.m, s.n}, dt::f32, dnnl::memory::dims{s.n, 1});

  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  auto desc = o.bias ? dnnl::matmul::desc(src_md, wei_md, bias_md, dst_md) : dnnl::matmul::desc(src_md, wei_md, dst_md);
  dnnl::matmul::primitive_desc pd(desc, attr, engine);
  dnnl::matmul prim(pd);

  dnnl::memory src(src_md, engine), wei(wei_md, engine), bias(bias_md, engine), dst(dst_md, engine);
  dnnl::memory scratch(pd.scratchpad_desc(), engine);
  std::mt19937 rng(12345);
  fill(src, static_cast<std::size_t>(s.m * s.k), rng);
  fill(wei, static_cast<std::size_t>(s.k * s.n), rng);
  fill(bias, static_cast<std::size_t>(s.n), rng);

  std::unordered_map<int, dnnl::memory> args = {
      {DNNL_ARG_SRC, src}, {DNNL_ARG_WEIGHTS, wei}, {DNNL_ARG_DST, dst}, {DNNL_ARG_SCRATCHPAD, scratch}};
  if (o.bias) args.emplace(DNNL_ARG_BIAS, bias);

  static std::vector<float> evict(16u << 20);  // 64 MB, more than the last-level cache
  auto cool = [&] {
    if (!o.cold) return;
    for (std::size_t i = 0; i < evict.size(); i += 16) evict[i] += 1.0f;
  };
  auto run_once = [&] {
    cool();
    auto t0 = Clock::now();
    prim.execute(stream, args);
    stream.wait();
    return elapsed_ms(t0, Clock::now());
  };

  // Kiln's GEMM on the same operands: the weights (N x K) packed once, bias in the epilogue.
  const bool kiln = o.kiln && s.weights_ba;
  std::unique_ptr<float, void (*)(void*)> packed(nullptr, std::free);
  if (kiln) {
    const std::size_t bytes = kiln::gemm::packed_floats(s.n, s.k) * sizeof(float);
    packed.reset(static_cast<float*>(std::aligned_alloc(64, (bytes + 63) / 64 * 64)));
    if (!packed) throw std::bad_alloc();
    kiln::gemm::pack_weights(static_cast<const float*>(wei.get_data_handle()), s.n, s.k, packed.get());
  }
  std::vector<float> kiln_dst(static_cast<std::size_t>(s.m * s.n));
  kiln::gemm::Epilogue ep;
  if (o.bias) ep.bias = static_cast<const float*>(bias.get_data_handle());
  auto run_kiln = [&](kiln::isa::Level level) {
    kiln::gemm::override_variant(level);
    cool();
    auto t0 = Clock::now();
    kiln::gemm::multiply(static_cast<const float*>(src.get_data_handle()), s.k, packed.get(), kiln_dst.data(), s.n, s.m,
                         s.n, s.k, ep);
    const double ms = elapsed_ms(t0, Clock::now());
    kiln::gemm::override_variant(std::nullopt);
    return ms;
  };

  double last_ms = 0;
  for (int i = 0; i < std::max(o.warmup, 1); ++i) {  // at least one: sizes the auto repeat
    last_ms = run_once();
    if (kiln)
      for (auto level : o.variants) run_kiln(level);
  }
  int repeat = o.repeat;
  if (repeat == 0) {
    double want = o.budget_s * 1e3 / std::max(last_ms, 1e-4);
    repeat = static_cast<int>(std::clamp(want, double(kMinAutoRepeat), double(kMaxAutoRepeat)));
  }
  std::vector<double> times(static_cast<std::size_t>(repeat));
  std::vector<std::vector<double>> kiln_times(o.variants.size());
  for (auto& t : times) {
    t = run_once();
    if (kiln)
      for (std::size_t v = 0; v < o.variants.size(); ++v) kiln_times[v].push_back(run_kiln(o.variants[v]));
  }
  std::sort(times.begin(), times.end());

  Result r;
  r.shape = s;
  r.threads = omp_get_max_threads();
  r.runs = repeat;
  r.median_ms = times[times.size() / 2];
  r.min_ms = times.front();
  r.gflops = 2.0 * double(s.m) * double(s.n) * double(s.k) / (r.median_ms * 1e-3) / 1e9;
  r.impl = pd.impl_info_str();
  if (kiln) {
    for (std::size_t v = 0; v < o.variants.size(); ++v) {
      auto& t = kiln_times[v];
      std::sort(t.begin(), t.end());
      KilnResult k;
      k.level = o.variants[v];
      k.name = std::string("kiln:gemm_") + kiln::isa::name(k.level);
      k.median_ms = t[t.size() / 2];
      k.min_ms = t.front();
      k.gflops = 2.0 * double(s.m) * double(s.n) * double(s.k) / (k.median_ms * 1e-3) / 1e9;
      r.kiln.push_back(k);
    }
  }
  return r;
}

std::string json_escape(const std::string& s) {
  std::string out;
  for (char c : s) {
    if (c == '"' || c == '\\') {
      out += '\\';
      out += c;
    } else if (static_cast<unsigned char>(c) < 0x20) {
      char buf[8];
      std::snprintf(buf, sizeof buf, "\\u%04x", static_cast<unsigned>(static_cast<unsigned char>(c)));
      out += buf;
    } else {
      out += c;
    }
  }
  return out;
}

void print_json(const std::vector<Result>& results, const Options& o) {
  const dnnl_version_t* v = dnnl_version();
  std::printf("{\n  \"onednn_version\": \"%d.%d.%d\",\n  \"bias\": %s,\n  \"cold\": %s,\n  \"warmup\": %d,\n  \"results\": [",
              v->major, v->minor, v->patch, o.bias ? "true" : "false", o.cold ? "true" : "false", o.warmup);
  for (std::size_t i = 0; i < results.size(); ++i) {
    const Result& r = results[i];
    std::printf("%s\n    {\"m\": %lld, \"k\": %lld, \"n\": %lld, \"weights\": \"%s\", \"threads\": %d, "
                "\"runs\": %d, \"median_ms\": %.6f, \"min_ms\": %.6f, \"gflops\": %.3f, \"impl\": \"%s\"",
                i ? "," : "", static_cast<long long>(r.shape.m), static_cast<long long>(r.shape.k),
                static_cast<long long>(r.shape.n), r.shape.weights_ba ? "ba" : "ab", r.threads, r.runs,
                r.median_ms, r.min_ms, r.gflops, json_escape(r.impl).c_str());
    // The first variant keeps the original keys; every variant is listed under "kiln".
    if (!r.kiln.empty()) {
      std::printf(", \"kiln_median_ms\": %.6f, \"kiln_min_ms\": %.6f, \"kiln_gflops\": %.3f, \"kiln\": [",
                  r.kiln[0].median_ms, r.kiln[0].min_ms, r.kiln[0].gflops);
      for (std::size_t v = 0; v < r.kiln.size(); ++v)
        std::printf("%s{\"variant\": \"%s\", \"median_ms\": %.6f, \"min_ms\": %.6f, \"gflops\": %.3f}", v ? ", " : "",
                    r.kiln[v].name.c_str(), r.kiln[v].median_ms, r.kiln[v].min_ms, r.kiln[v].gflops);
      std::printf("]");
    }
    std::printf("}");
  }
  std::printf("\n  ]\n}\n");
}

}  // namespace

int main(int argc, char** argv) {
  Options o = parse_args(argc, argv);
  if (o.threads > 0) omp_set_num_threads(o.threads);
  try {
    dnnl::engine engine(dnnl::engine::kind::cpu, 0);
    dnnl::stream stream(engine);
    std::vector<Result> results;
    for (const Shape& s : o.shapes) {
      Result r = measure(s, o, engine, stream);
      if (!o.json) {
        std::printf("matmul M=%lld K=%lld N=%lld weights=%s threads=%d: %.1f GFLOP/s (median %.3f ms)",
                    static_cast<long long>(s.m), static_cast<long long>(s.k), static_cast<long long>(s.n),
                    s.weights_ba ? "ba" : "ab", r.threads, r.gflops, r.median_ms);
        for (const KilnResult& k : r.kiln)
          std::printf("; %s %.1f GFLOP/s (median %.3f ms), kiln/onednn %.2f", k.name.c_str(), k.gflops, k.median_ms,
                      k.median_ms / r.median_ms);
        std::printf("\n");
        std::fflush(stdout);
      }
      results.push_back(std::move(r));
    }
    if (o.json) print_json(results, o);
  } catch (const dnnl::error& e) {
    std::fprintf(stderr, "kiln_matmul_peak: oneDNN error: %s (status %d)\n", e.what(), static_cast<int>(e.status));
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "kiln_matmul_peak: %s\n", e.what());
    return 1;
  }
  return 0;
}
