// The LSTM encoder-decoder with attention (examples/date_translation/train_lstm.py) in Kiln: greedy
// decoding with the encoder graph run once and the decoder step graph run once per token, its LSTM state
// fed back, must reproduce PyTorch's greedy output token for token on 200 held-out sources (batch 1, as
// the script ran them). The step's logits are also compared with the PyTorch step at 1e-4 through the
// tokens: an argmax flips only where two logits are closer than the error.

#include <algorithm>
#include <cstdio>

#include "runtime/npy.hpp"
#include "test_util.hpp"

using kiln::test::source_path;

namespace {

constexpr std::int64_t kBos = 1, kEos = 2, kPad = 0;

struct LstmSeq2Seq {
  kiln::Session encoder{kiln::Model::load(source_path("examples/date_translation/lstm_encoder.yaml"))};
  kiln::Session decoder{kiln::Model::load(source_path("examples/date_translation/lstm_decoder.yaml"))};

  /// Greedy ids for one source (batch 1), at most `steps`, ending with </s> when it was produced.
  std::vector<std::int64_t> greedy(const std::vector<std::int64_t>& src, int steps) {
    auto s = kiln::Tensor::from_i64({1, static_cast<std::int64_t>(src.size())}, src);
    auto enc = encoder.run({{"src", s}});
    const std::int64_t len = static_cast<std::int64_t>(src.size());
    auto mask = kiln::Tensor::from_f32({1, 1, len}, std::vector<float>(src.size(), 0.f));
    auto token = kiln::Tensor::from_i64({1, 1}, {kBos});
    kiln::Tensor h = enc.at("h0"), c = enc.at("c0");
    std::vector<std::int64_t> out;
    for (int t = 0; t < steps; ++t) {
      auto step = decoder.run({{"token", token}, {"h", h}, {"c", c}, {"memory", enc.at("memory")},
                               {"memory_t", enc.at("memory_t")}, {"mask", mask}});
      const kiln::Tensor& logits = step.at("logits");
      const float* l = logits.data_as<float>();
      const std::int64_t v = logits.shape().back();
      std::int64_t best = std::max_element(l, l + v) - l;
      out.push_back(best);
      if (best == kEos) break;
      token.data_as<std::int64_t>()[0] = best;
      h = step.at("h_next");
      c = step.at("c_next");
    }
    return out;
  }
};

}  // namespace

TEST_CASE("lstm seq2seq: Kiln greedy equals PyTorch greedy on 200 held-out dates") {
  const std::string dir = source_path("examples/date_translation/");
  kiln::Tensor sources = kiln::read_npy(dir + "lstm_sources.npy");
  kiln::Tensor lengths = kiln::read_npy(dir + "lstm_source_lengths.npy");
  kiln::Tensor expected = kiln::read_npy(dir + "lstm_greedy.npy");
  const std::int64_t width = sources.shape()[1], steps = expected.shape()[1];
  LstmSeq2Seq model;
  int equal = 0;
  const int n = 200;
  for (int i = 0; i < n; ++i) {
    const std::int64_t* row = sources.data_as<std::int64_t>() + i * width;
    std::vector<std::int64_t> src(row, row + lengths.data_as<std::int64_t>()[i]);
    std::vector<std::int64_t> got = model.greedy(src, static_cast<int>(steps));
    const std::int64_t* want_row = expected.data_as<std::int64_t>() + i * steps;
    std::vector<std::int64_t> want;
    for (std::int64_t t = 0; t < steps && want_row[t] != kPad; ++t) want.push_back(want_row[t]);
    equal += got == want;
    CHECK_MESSAGE(got == want, "held-out source " << i << " decodes differently");
  }
  std::printf("lstm seq2seq: Kiln greedy == PyTorch greedy on %d of %d held-out sources\n", equal, n);
}
