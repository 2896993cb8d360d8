// kiln_lstm_seq2seq: greedy decoding time of the LSTM encoder-decoder with attention
// (examples/date_translation/lstm.yaml) through the runtime's generation loop (kiln::Generator), the Kiln
// side of bench/bench_lstm_seq2seq.py.
//
//   kiln_lstm_seq2seq MODEL.yaml SOURCES.npy --tokens 32 --repeat 20 --threads 1
//
// SOURCES.npy is int64 [batch, src_len] (padded with 0 = <pad>; rows are cut at their first <pad>, and the
// generator pads and masks them again). Each repeat generates exactly --tokens tokens per source greedily
// (stop_at_end = false: the end token does not stop the loop). Prints the median over repeats of the
// encoder time and of the mean decoder step time (Generator::step_ms), and the first source's tokens.

#include <omp.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <numeric>
#include <string>
#include <vector>

#include <tbb/global_control.h>

#include "kiln/generate.hpp"
#include "runtime/npy.hpp"

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: kiln_lstm_seq2seq MODEL.yaml SOURCES.npy [--tokens N] [--repeat N] [--threads N]\n");
    return 2;
  }
  std::string model_path = argv[1], sources_path = argv[2];
  int tokens = 32, repeat = 20, threads = 1;
  for (int i = 3; i + 1 < argc; i += 2) {
    std::string a = argv[i];
    int v = std::atoi(argv[i + 1]);
    if (a == "--tokens") tokens = v;
    else if (a == "--repeat") repeat = v;
    else if (a == "--threads") threads = v;
  }
  omp_set_num_threads(threads);
  tbb::global_control tbb_threads(tbb::global_control::max_allowed_parallelism, static_cast<std::size_t>(threads));
  try {
    kiln::Generator gen(kiln::Seq2SeqModel::load(model_path));
    kiln::Tensor src = kiln::read_npy(sources_path);
    std::vector<std::vector<std::int64_t>> sources;
    for (std::int64_t b = 0; b < src.shape()[0]; ++b) {
      const std::int64_t* row = src.data_as<std::int64_t>() + b * src.shape()[1];
      std::int64_t len = 0;
      while (len < src.shape()[1] && row[len] != 0) ++len;
      sources.emplace_back(row, row + len);
    }
    kiln::GenerateOptions options;
    options.strategy = "greedy";
    options.max_length = tokens;
    options.stop_at_end = false;
    std::vector<double> enc_ms, tok_ms;
    std::vector<std::int64_t> first_row;
    for (int r = 0; r < repeat + 1; ++r) {  // the first run is a warm-up (plans compiled)
      auto hyps = gen.generate(sources, options);
      const auto& steps = gen.step_ms();
      if (r > 0) {
        enc_ms.push_back(gen.encoder_ms());
        tok_ms.push_back(std::accumulate(steps.begin(), steps.end(), 0.0) / static_cast<double>(steps.size()));
      }
      first_row = hyps.at(0).at(0).tokens;
    }
    std::sort(enc_ms.begin(), enc_ms.end());
    std::sort(tok_ms.begin(), tok_ms.end());
    std::printf("encoder_ms %.4f per_token_ms %.4f batch %zu tokens %d repeat %d threads %d\n", enc_ms[enc_ms.size() / 2],
                tok_ms[tok_ms.size() / 2], sources.size(), tokens, repeat, threads);
    std::printf("first_row");
    for (auto id : first_row) std::printf(" %lld", static_cast<long long>(id));
    std::printf("\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
