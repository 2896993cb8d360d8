// kiln_generate_bench: times Kiln's greedy decoding loop (kiln::Generator) for bench_generate.py.
//   kiln_generate_bench MODEL.yaml --batch B --tokens N [--repeat R] [--threads T]
// Generates exactly N tokens per source (the end token is ignored) for B copies of a fixed set of date
// strings, R times after one warm-up, and prints one JSON object: the median over repeats of the decoder
// loop's time (sum of the per-step times) and of each step's time, and the encoder's median time.

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
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
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: kiln_generate_bench MODEL.yaml --batch B --tokens N [--repeat R] [--threads T]\n");
    return 2;
  }
  std::string path = argv[1];
  int batch = 1, tokens = 32, repeat = 20, threads = 0;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string k = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (k == "--batch") batch = v;
    else if (k == "--tokens") tokens = v;
    else if (k == "--repeat") repeat = v;
    else if (k == "--threads") threads = v;
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
    kiln::Seq2SeqModel model = kiln::Seq2SeqModel::load(path);
    const char* texts[] = {"Thursday, November 26, 2026", "nov 26 2026", "26/11/26", "1999.12.31", "3rd of March, 1951",
                           "Sat 1 Jan 2000", "07-08-2049", "OCTOBER 5, 1987"};
    std::vector<std::vector<std::int64_t>> sources;
    for (int b = 0; b < batch; ++b) sources.push_back(model.encode(texts[b % 8]));
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
    std::printf("{\"batch\": %d, \"tokens\": %d, \"repeat\": %d, \"threads\": %d, \"loop_ms\": %.6f, \"encoder_ms\": %.6f, \"step_ms\": [",
                batch, tokens, repeat, omp_get_max_threads(), median(loop), median(encoder));
    for (int t = 0; t < tokens; ++t) std::printf("%s%.6f", t ? ", " : "", median(steps[static_cast<std::size_t>(t)]));
    std::printf("]}\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
