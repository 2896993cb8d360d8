// kiln_generate_bench: times Kiln's greedy decoding loop (kiln::Generator) for bench_generate.py.
//   kiln_generate_bench MODEL.yaml --batch B --tokens N [--repeat R] [--threads T] [--quantize none|int8|bf16]
//                       [--profile STEP]
// Generates exactly N tokens per source (the end token is ignored) for B copies of a fixed set of date
// strings, R times after one warm-up, and prints one JSON object: the median over repeats of the decoder
// loop's time (sum of the per-step times) and of each step's time, the encoder's median time, the
// encoder's and the decoder's weight bytes (Model::weight_bytes) and the process's peak resident set size
// (VmHWM, at the end: model, plans, caches and the runtime's own memory).
// --profile STEP prints Session::profile's per-node table of one decoder step instead (R runs).

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include <tbb/global_control.h>

#include "kiln/kiln.hpp"

namespace {
double median(std::vector<double> v) {
  std::sort(v.begin(), v.end());
  return v[v.size() / 2];
}

// The peak resident set size of this process in bytes: VmHWM of /proc/self/status (getrusage's ru_maxrss
// would not do: Linux carries it over exec from the parent, e.g. a Python script that has loaded PyTorch).
long long peak_rss_bytes() {
  std::ifstream status("/proc/self/status");
  std::string line;
  while (std::getline(status, line))
    if (line.rfind("VmHWM:", 0) == 0) return std::atoll(line.c_str() + 6) * 1024;
  return -1;
}

// Sets the weight quantization of `options` to `name` ("none", "int8", "bf16"); returns an error message, or
// "" when set. LoadOptions::quantize (an optional<Quantize>, parsed by kiln::parse_quantize) arrives with the
// quantization work of issue 16; a build of the library without it runs "none" only and refuses the others.
template <class Options>
std::string set_quantize(Options& options, const std::string& name) {
  if constexpr (requires { options.quantize.emplace(); }) {
    auto q = options.quantize.emplace();  // a copy of the value emplace() makes
    if (!parse_quantize(name, &q)) return "quantize: unknown format '" + name + "' (expected none, int8 or bf16)";
    options.quantize = q;
    return "";
  } else {
    if (name == "none") return "";
    return "quantize: not supported by this build (LoadOptions has no quantize option): '" + name + "'";
  }
}

// --profile STEP: Session::profile of one decoder step (the per-node table of `kilnc profile`) at position
// STEP of a cache of `tokens` positions, on batch rows reading their own cache rows, a source of 16
// positions with no padding, and deterministic values for everything else.
int profile(const kiln::Seq2SeqModel& model, int batch, int tokens, int step, int runs) {
  kiln::Model decoder = model.decoder();
  std::map<std::string, kiln::Tensor> inputs;
  for (const kiln::IoInfo& io : decoder.inputs()) {
    std::vector<std::int64_t> shape;
    for (const std::string& d : io.dims)
      shape.push_back(d == "batch" ? batch : d == "src" ? 16 : d == "len" ? tokens : std::atoll(d.c_str()));
    if (io.name == "step") {
      inputs[io.name] = kiln::Tensor::from_i64(shape, {step});
    } else if (io.dtype == kiln::DType::i64) {  // the token, and cache_rows: row b reads cache row b
      std::vector<std::int64_t> v(static_cast<std::size_t>(std::max<std::int64_t>(1, shape[0] * (shape.size() > 1 ? shape[1] : 1))));
      for (std::size_t i = 0; i < v.size(); ++i) v[i] = io.name == "cache_rows" ? static_cast<std::int64_t>(i) / shape[1] : 3;
      inputs[io.name] = kiln::Tensor::from_i64(shape, v);
    } else {
      std::size_t n = 1;
      for (std::int64_t d : shape) n *= static_cast<std::size_t>(d);
      std::vector<float> v(n);
      for (std::size_t i = 0; i < n; ++i) v[i] = io.name.find("mask") != std::string::npos ? 0.0f : 0.01f * static_cast<float>(i % 97);
      inputs[io.name] = kiln::Tensor::from_f32(shape, v);
    }
  }
  kiln::Session session(decoder);
  std::printf("%s", session.profile(inputs, runs).c_str());
  return 0;
}
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr,
                 "usage: kiln_generate_bench MODEL.yaml --batch B --tokens N [--repeat R] [--threads T] "
                 "[--quantize none|int8|bf16] [--profile STEP]\n");
    return 2;
  }
  std::string path = argv[1];
  int batch = 1, tokens = 32, repeat = 20, threads = 0;
  int profile_step = -1;
  std::string quantize = "none";
  kiln::LoadOptions load_options;
  for (int i = 2; i < argc; i += 2) {
    std::string k = argv[i];
    if (i + 1 >= argc) {
      std::fprintf(stderr, "error: option '%s' needs a value\n", k.c_str());
      return 2;
    }
    int v = std::atoi(argv[i + 1]);
    if (k == "--quantize") {
      quantize = argv[i + 1];
      if (std::string error = set_quantize(load_options, quantize); !error.empty()) {
        std::fprintf(stderr, "error: %s\n", error.c_str());
        return 2;
      }
    } else if (k == "--batch") batch = v;
    else if (k == "--tokens") tokens = v;
    else if (k == "--repeat") repeat = v;
    else if (k == "--threads") threads = v;
    else if (k == "--profile") profile_step = v;
    else {
      std::fprintf(stderr, "error: unknown option '%s'\n", k.c_str());
      return 2;
    }
  }
  std::unique_ptr<tbb::global_control> tbb_threads;
  if (threads > 0) {
    omp_set_num_threads(threads);
    tbb_threads = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, threads);
  }
  try {
    kiln::Seq2SeqModel model = kiln::Seq2SeqModel::load(path, load_options);
    const char* texts[] = {"Thursday, November 26, 2026", "nov 26 2026", "26/11/26", "1999.12.31", "3rd of March, 1951",
                           "Sat 1 Jan 2000", "07-08-2049", "OCTOBER 5, 1987"};
    std::vector<std::vector<std::int64_t>> sources;
    for (int b = 0; b < batch; ++b) sources.push_back(model.encode(texts[b % 8]));
    if (profile_step >= 0) return profile(model, batch, tokens, profile_step, repeat);
    kiln::Generator gen(model);
    kiln::GenerateOptions o;
    o.max_length = tokens;
    o.stop_at_end = false;
    gen.generate(sources, o);  // warm-up: plans compiled, buffers sized
    std::vector<double> loop, encoder;
    std::vector<std::vector<double>> steps(static_cast<std::size_t>(tokens));
    for (int r = 0; r < repeat; ++r) {
      gen.generate(sources, o);
      double total = 0;
      for (int t = 0; t < tokens; ++t) {
        total += gen.step_ms()[static_cast<std::size_t>(t)];
        steps[static_cast<std::size_t>(t)].push_back(gen.step_ms()[static_cast<std::size_t>(t)]);
      }
      loop.push_back(total);
      encoder.push_back(gen.encoder_ms());
    }
    std::printf(
        "{\"batch\": %d, \"tokens\": %d, \"repeat\": %d, \"threads\": %d, \"quantize\": \"%s\", "
        "\"encoder_weight_bytes\": %zu, \"decoder_weight_bytes\": %zu, \"peak_rss_bytes\": %lld, \"loop_ms\": %.6f, "
        "\"encoder_ms\": %.6f, \"step_ms\": [",
        batch, tokens, repeat, omp_get_max_threads(), quantize.c_str(), model.encoder().weight_bytes(),
        model.decoder().weight_bytes(), peak_rss_bytes(), median(loop), median(encoder));
    for (int t = 0; t < tokens; ++t) std::printf("%s%.6f", t ? ", " : "", median(steps[static_cast<std::size_t>(t)]));
    std::printf("]}\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
