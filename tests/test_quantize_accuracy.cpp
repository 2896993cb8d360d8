// The accuracy of quantized weights (docs/quantization.md), int8 and bf16:
//   - the classifier fixtures: probabilities within 1e-2 of PyTorch's fp32 ones;
//   - both date-translation examples: exact match >= 99% on the first 200 held-out dates (the sources the
//     existing generation tests use), and greedy tokens identical to Kiln's fp32 ones on >= 95% of 200 dates
//     held out from both examples' splits (tests/fixtures/quantize/dates200.tsv, tools/reference/make_quant_dates.py).
// The tolerances are the issue's: quantization error is not rounding error, so 1e-2, not 1e-4.

#include <algorithm>
#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

#include "kiln/kiln.hpp"
#include "ops/qgemm.hpp"
#include "runtime/npy.hpp"
#include "test_util.hpp"

using kiln::test::max_abs_diff;
using kiln::test::source_path;

namespace {

const kiln::Quantize kFormats[] = {kiln::Quantize::int8, kiln::Quantize::bf16};

bool runs(kiln::Quantize q) {
  return kiln::qgemm::available(q == kiln::Quantize::int8 ? kiln::qgemm::Format::s8 : kiln::qgemm::Format::bf16);
}

kiln::LoadOptions with(kiln::Quantize q) {
  kiln::LoadOptions o;
  o.quantize = q;
  return o;
}

// SOURCE<TAB>TARGET lines of a file (comments skipped), at most `limit`.
std::vector<std::pair<std::string, std::string>> read_pairs(const std::string& rel, std::size_t limit) {
  std::ifstream in(source_path(rel));
  REQUIRE(in.good());
  std::vector<std::pair<std::string, std::string>> out;
  std::string line;
  while (out.size() < limit && std::getline(in, line)) {
    if (line.empty() || line[0] == '#') continue;
    const auto tab = line.find('\t');
    REQUIRE(tab != std::string::npos);
    out.emplace_back(line.substr(0, tab), line.substr(tab + 1));
  }
  return out;
}

// Greedy tokens for every source, in batches of 50.
std::vector<std::vector<std::int64_t>> greedy(const kiln::Seq2SeqModel& model,
                                              const std::vector<std::pair<std::string, std::string>>& pairs) {
  kiln::Generator gen(model);
  std::vector<std::vector<std::int64_t>> out;
  for (std::size_t first = 0; first < pairs.size(); first += 50) {
    std::vector<std::vector<std::int64_t>> batch;
    for (std::size_t i = first; i < std::min(pairs.size(), first + 50); ++i)
      batch.push_back(model.encode(pairs[i].first));
    for (const auto& h : gen.generate(batch)) out.push_back(h.at(0).tokens);
  }
  return out;
}

void check_dates(const std::string& yaml) {
  const auto held_out = read_pairs("examples/date_translation/held_out.tsv", 200);
  const auto dates200 = read_pairs("tests/fixtures/quantize/dates200.tsv", 200);
  REQUIRE(held_out.size() == 200);
  REQUIRE(dates200.size() == 200);
  const kiln::Seq2SeqModel f32 = kiln::Seq2SeqModel::load(source_path(yaml));
  const auto f32_tokens = greedy(f32, dates200);
  for (kiln::Quantize q : kFormats) {
    if (!runs(q)) continue;
    const kiln::Seq2SeqModel model = kiln::Seq2SeqModel::load(source_path(yaml), with(q));
    const auto tokens = greedy(model, held_out);
    std::size_t right = 0;
    for (std::size_t i = 0; i < held_out.size(); ++i) right += model.decode(tokens[i]) == held_out[i].second;
    const auto mine = greedy(model, dates200);
    std::size_t same = 0;
    for (std::size_t i = 0; i < dates200.size(); ++i) same += mine[i] == f32_tokens[i];
    std::printf("%s %s: exact match %zu/200 on held_out.tsv; greedy tokens equal to fp32 on %zu/200 new dates\n",
                yaml.c_str(), kiln::quantize_name(q), right, same);
    CHECK_MESSAGE(right >= 198, kiln::quantize_name(q) << ": exact match " << right << "/200");
    CHECK_MESSAGE(same >= 190, kiln::quantize_name(q) << ": greedy tokens equal fp32's on " << same << "/200");
  }
}

}  // namespace

TEST_CASE("quantize accuracy: classifier fixtures' probabilities within 1e-2 of PyTorch's fp32") {
  for (const std::string dir : {"tests/fixtures/classifier_d64_l2", "tests/fixtures/classifier_d128_l3"})
    for (kiln::Quantize q : kFormats) {
      if (!runs(q)) continue;
      kiln::Session session(kiln::Model::load(source_path(dir + "/model.yaml"), with(q)));
      for (const char* tag : {"_b1_s8.npy", "_b4_s33.npy"}) {
        const auto out = session.run({{"tokens", kiln::read_npy(source_path(dir + "/tokens" + tag))}});
        const double err = max_abs_diff(out.at("probs"), kiln::read_npy(source_path(dir + "/probs" + tag)));
        std::printf("%s %s probs%s: max abs error %.3g\n", dir.c_str(), kiln::quantize_name(q), tag, err);
        CHECK_MESSAGE(err <= 1e-2, dir << " " << kiln::quantize_name(q) << tag << ": " << err);
      }
    }
  const std::string dir = "examples/transformer_classifier/";
  for (kiln::Quantize q : kFormats) {
    if (!runs(q)) continue;
    kiln::Session session(kiln::Model::load(source_path(dir + "transformer_classifier.yaml"), with(q)));
    const auto out = session.run({{"tokens", kiln::read_npy(source_path(dir + "tokens.npy"))}});
    const double err = max_abs_diff(out.at("probs"), kiln::read_npy(source_path(dir + "expected_probs.npy")));
    std::printf("example classifier %s probs: max abs error %.3g\n", kiln::quantize_name(q), err);
    CHECK(err <= 1e-2);
  }
}

TEST_CASE("quantize accuracy: date Transformer, exact match and greedy tokens vs fp32") {
  check_dates("examples/date_translation/transformer.yaml");
}

TEST_CASE("quantize accuracy: date LSTM, exact match and greedy tokens vs fp32") {
  check_dates("examples/date_translation/lstm.yaml");
}
