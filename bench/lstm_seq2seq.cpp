// kiln_lstm_seq2seq: greedy decoding time of the LSTM encoder-decoder with attention
// (examples/date_translation/lstm_encoder.yaml + lstm_decoder.yaml), the Kiln side of
// bench/bench_lstm_seq2seq.py.
//
//   kiln_lstm_seq2seq DIR SOURCES.npy --tokens 32 --repeat 20 --threads 1
//
// SOURCES.npy is int64 [batch, src_len] (padded with 0 = <pad>; the mask is built from it). Each repeat
// runs the encoder once and then exactly --tokens decoder steps (greedy argmax, no early stop), the
// state fed back through preallocated ping-pong buffers (no allocation per step). Prints the median
// encoder time and the median time per generated token over the repeats, and the first row's tokens.

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <vector>

#include <tbb/global_control.h>

#include "kiln/kiln.hpp"
#include "runtime/npy.hpp"

namespace {

double ms_since(std::chrono::steady_clock::time_point t0) {
  return std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: kiln_lstm_seq2seq DIR SOURCES.npy [--tokens N] [--repeat N] [--threads N]\n");
    return 2;
  }
  std::string dir = argv[1], sources_path = argv[2];
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
    kiln::Session encoder(kiln::Model::load(dir + "/lstm_encoder.yaml"));
    kiln::Session decoder(kiln::Model::load(dir + "/lstm_decoder.yaml"));
    kiln::Tensor src = kiln::read_npy(sources_path);
    const std::int64_t batch = src.shape()[0], len = src.shape()[1], hidden = 128;
    std::vector<float> mask_values(static_cast<std::size_t>(batch * len));
    for (std::int64_t i = 0; i < batch * len; ++i) mask_values[i] = src.data_as<std::int64_t>()[i] == 0 ? -1e9f : 0.f;
    kiln::Tensor mask = kiln::Tensor::from_f32({batch, 1, len}, mask_values);

    std::map<std::string, kiln::Tensor> enc_in{{"src", src}};
    std::map<std::string, kiln::Tensor> enc_out{
        {"memory", kiln::Tensor::empty(kiln::DType::f32, {batch, len, hidden})},
        {"memory_t", kiln::Tensor::empty(kiln::DType::f32, {batch, hidden, len})},
        {"h0", kiln::Tensor::empty(kiln::DType::f32, {1, batch, hidden})},
        {"c0", kiln::Tensor::empty(kiln::DType::f32, {1, batch, hidden})}};
    kiln::Tensor token = kiln::Tensor::empty(kiln::DType::i64, {batch, 1});
    kiln::Tensor state[2][2] = {{enc_out.at("h0"), enc_out.at("c0")},
                                {kiln::Tensor::empty(kiln::DType::f32, {1, batch, hidden}),
                                 kiln::Tensor::empty(kiln::DType::f32, {1, batch, hidden})}};
    std::int64_t vocab = 0;
    // Two input/output maps, built once: step t reads state[t % 2] and writes state[(t + 1) % 2].
    std::map<std::string, kiln::Tensor> dec_in[2], dec_out[2];
    for (int p = 0; p < 2; ++p) {
      dec_in[p] = {{"token", token}, {"h", state[p][0]}, {"c", state[p][1]}, {"memory", enc_out.at("memory")},
                   {"memory_t", enc_out.at("memory_t")}, {"mask", mask}};
    }
    {
      encoder.run(enc_in, enc_out);
      auto probe = decoder.run(dec_in[0]);
      vocab = probe.at("logits").shape().back();
    }
    kiln::Tensor logits = kiln::Tensor::empty(kiln::DType::f32, {batch, 1, vocab});
    for (int p = 0; p < 2; ++p)
      dec_out[p] = {{"logits", logits}, {"h_next", state[1 - p][0]}, {"c_next", state[1 - p][1]}};

    std::vector<double> enc_ms, tok_ms;
    std::vector<std::int64_t> first_row;
    for (int r = 0; r < repeat + 1; ++r) {  // the first run is a warm-up
      auto t0 = std::chrono::steady_clock::now();
      encoder.run(enc_in, enc_out);
      double e = ms_since(t0);
      // The encoder wrote h0/c0 into state[0].
      auto t1 = std::chrono::steady_clock::now();
      for (std::int64_t b = 0; b < batch; ++b) token.data_as<std::int64_t>()[b] = 1;  // <s>
      first_row.clear();
      for (int t = 0; t < tokens; ++t) {
        decoder.run(dec_in[t % 2], dec_out[t % 2]);
        const float* l = logits.data_as<float>();
        for (std::int64_t b = 0; b < batch; ++b) {
          const float* row = l + b * vocab;
          token.data_as<std::int64_t>()[b] = std::max_element(row, row + vocab) - row;
        }
        first_row.push_back(token.data_as<std::int64_t>()[0]);
      }
      double d = ms_since(t1);
      if (r > 0) {
        enc_ms.push_back(e);
        tok_ms.push_back(d / tokens);
      }
    }
    std::sort(enc_ms.begin(), enc_ms.end());
    std::sort(tok_ms.begin(), tok_ms.end());
    std::printf("encoder_ms %.4f per_token_ms %.4f batch %lld tokens %d repeat %d threads %d\n", enc_ms[enc_ms.size() / 2],
                tok_ms[tok_ms.size() / 2], static_cast<long long>(batch), tokens, repeat, threads);
    std::printf("first_row");
    for (auto id : first_row) std::printf(" %lld", static_cast<long long>(id));
    std::printf("\n");
  } catch (const std::exception& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
