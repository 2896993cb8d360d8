// The LSTM encoder-decoder with attention (examples/date_translation/train_lstm.py) in Kiln: the encoder
// graph run once and the decoder step graph run once per token, its LSTM state fed back by this test.
//  * greedy must reproduce PyTorch's greedy output token for token on 200 held-out sources (batch 1, as
//    the script ran them);
//  * a beam search written here exactly as the script's reference (width 4, summed log-probabilities, a
//    hypothesis ending in </s> is finished, stop when the best finished score >= the best open one, ties
//    to the lower (beam, token)) must give the same tokens and scores within 1e-4 on 50 other held-out
//    sources. This checks the step's numerics through whole searches; the runtime's own generation loop
//    (include/kiln/generate.hpp, from the seq2seq branch) is tested on the same references once merged.

#include <algorithm>
#include <cmath>
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

  struct Beam {
    std::vector<std::int64_t> ids;
    double score = 0;
    kiln::Tensor h, c;
  };

  /// The script's reference beam search (train_lstm.py: beam_search) for one source.
  std::pair<std::vector<std::int64_t>, double> beam_search(const std::vector<std::int64_t>& src, int width, int steps) {
    auto s = kiln::Tensor::from_i64({1, static_cast<std::int64_t>(src.size())}, src);
    auto enc = encoder.run({{"src", s}});
    auto mask = kiln::Tensor::from_f32({1, 1, static_cast<std::int64_t>(src.size())}, std::vector<float>(src.size(), 0.f));
    std::vector<Beam> beams = {Beam{{}, 0.0, enc.at("h0"), enc.at("c0")}};
    std::vector<std::pair<std::vector<std::int64_t>, double>> finished;
    for (int t = 0; t < steps; ++t) {
      struct Cand {
        double score;
        std::size_t beam;
        std::int64_t token;
      };
      std::vector<Cand> cand;
      std::vector<std::map<std::string, kiln::Tensor>> outs;
      for (std::size_t i = 0; i < beams.size(); ++i) {
        auto token = kiln::Tensor::from_i64({1, 1}, {beams[i].ids.empty() ? kBos : beams[i].ids.back()});
        outs.push_back(decoder.run({{"token", token}, {"h", beams[i].h}, {"c", beams[i].c}, {"memory", enc.at("memory")},
                                    {"memory_t", enc.at("memory_t")}, {"mask", mask}}));
        const kiln::Tensor& logits = outs.back().at("logits");
        const float* l = logits.data_as<float>();
        const std::int64_t v = logits.shape().back();
        double max = *std::max_element(l, l + v), sum = 0;
        for (std::int64_t k = 0; k < v; ++k) sum += std::exp(static_cast<double>(l[k]) - max);
        const double log_z = max + std::log(sum);
        for (std::int64_t k = 0; k < v; ++k) cand.push_back({beams[i].score + (l[k] - log_z), i, k});
      }
      std::stable_sort(cand.begin(), cand.end(), [](const Cand& a, const Cand& b) {
        if (a.score != b.score) return a.score > b.score;
        if (a.beam != b.beam) return a.beam < b.beam;
        return a.token < b.token;
      });
      std::vector<Beam> next;
      for (std::size_t k = 0; k < cand.size() && k < static_cast<std::size_t>(width); ++k) {
        std::vector<std::int64_t> ids = beams[cand[k].beam].ids;
        ids.push_back(cand[k].token);
        if (cand[k].token == kEos) finished.emplace_back(ids, cand[k].score);
        else next.push_back(Beam{ids, cand[k].score, outs[cand[k].beam].at("h_next"), outs[cand[k].beam].at("c_next")});
      }
      if (next.empty()) break;
      double best_finished = -INFINITY, best_open = -INFINITY;
      for (const auto& f : finished) best_finished = std::max(best_finished, f.second);
      for (const auto& b : next) best_open = std::max(best_open, b.score);
      beams = std::move(next);
      if (best_finished >= best_open) break;
    }
    if (finished.empty())
      for (const auto& b : beams) finished.emplace_back(b.ids, b.score);
    auto best = finished.front();
    for (const auto& f : finished)
      if (f.second > best.second) best = f;
    return best;
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

TEST_CASE("lstm seq2seq: beam search on Kiln's decoder step equals the reference beam search on 50 sources") {
  const std::string dir = source_path("examples/date_translation/");
  kiln::Tensor sources = kiln::read_npy(dir + "lstm_sources.npy");
  kiln::Tensor lengths = kiln::read_npy(dir + "lstm_source_lengths.npy");
  kiln::Tensor tokens = kiln::read_npy(dir + "lstm_beam_tokens.npy");
  kiln::Tensor scores = kiln::read_npy(dir + "lstm_beam_scores.npy");
  const std::int64_t width = sources.shape()[1], steps = tokens.shape()[1], first = 200;
  LstmSeq2Seq model;
  double worst = 0;
  for (std::int64_t j = 0; j < tokens.shape()[0]; ++j) {
    const std::int64_t* row = sources.data_as<std::int64_t>() + (first + j) * width;
    std::vector<std::int64_t> src(row, row + lengths.data_as<std::int64_t>()[first + j]);
    auto [got, score] = model.beam_search(src, 4, static_cast<int>(steps));
    const std::int64_t* want_row = tokens.data_as<std::int64_t>() + j * steps;
    std::vector<std::int64_t> want;
    for (std::int64_t t = 0; t < steps && want_row[t] != kPad; ++t) want.push_back(want_row[t]);
    CHECK_MESSAGE(got == want, "source " << first + j << ": beam tokens differ");
    double err = std::abs(score - scores.data_as<float>()[j]);
    worst = std::max(worst, err);
    CHECK_MESSAGE(err <= 1e-4, "source " << first + j << ": score " << score << " vs " << scores.data_as<float>()[j]);
  }
  std::printf("lstm seq2seq: beam (width 4) on 50 sources, max |score - reference| %.3g\n", worst);
}
