// End to end: the Transformer classifier from YAML against PyTorch outputs written by
// tools/reference/make_fixtures.py (two configs x batch 1,4 x seq 8,33).
// Tolerance 1e-4 (fp32): PyTorch itself agrees with a float64 numpy forward pass to ~1e-6.

#include <cstdio>

#include "runtime/npy.hpp"
#include "test_util.hpp"

using kiln::test::max_abs_diff;
using kiln::test::source_path;

namespace {

void check_config(const std::string& dir) {
  kiln::Model model = kiln::Model::load(source_path(dir + "/model.yaml"));
  kiln::Session session(model);
  for (int batch : {1, 4}) {
    for (int seq : {8, 33}) {
      std::string tag = "_b" + std::to_string(batch) + "_s" + std::to_string(seq) + ".npy";
      auto tokens = kiln::read_npy(source_path(dir + "/tokens" + tag));
      auto out = session.run({{"tokens", tokens}});
      for (const char* name : {"logits", "probs"}) {
        auto expected = kiln::read_npy(source_path(dir + "/" + name + tag));
        double err = max_abs_diff(out.at(name), expected);
        std::printf("%s %s b%d s%d: max abs error %.3g\n", dir.c_str(), name, batch, seq, err);
        CHECK_MESSAGE(err <= 1e-4, dir << " " << name << tag << " max abs error " << err);
      }
    }
  }
  // Four distinct shapes, four plans; running a shape again reuses its plan.
  CHECK(session.plan_count() == 4);
  session.run({{"tokens", kiln::read_npy(source_path(dir + "/tokens_b1_s8.npy"))}});
  CHECK(session.plan_count() == 4);
}

}  // namespace

TEST_CASE("classifier d64 2 layers matches PyTorch") { check_config("tests/fixtures/classifier_d64_l2"); }
TEST_CASE("classifier d128 3 layers matches PyTorch") { check_config("tests/fixtures/classifier_d128_l3"); }

TEST_CASE("example model reproduces PyTorch probabilities") {
  std::string dir = "examples/transformer_classifier/";
  kiln::Session session(kiln::Model::load(source_path(dir + "transformer_classifier.yaml")));
  auto out = session.run({{"tokens", kiln::read_npy(source_path(dir + "tokens.npy"))}});
  double err = max_abs_diff(out.at("probs"), kiln::read_npy(source_path(dir + "expected_probs.npy")));
  std::printf("example probs: max abs error %.3g\n", err);
  CHECK(err <= 1e-4);
}
