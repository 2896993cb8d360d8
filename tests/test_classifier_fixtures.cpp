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

TEST_CASE("decomposed classifier matches PyTorch as written (-O0) and fused (-O2)") {
  // Attention, layer norm and GELU written out op by op (tools/reference/decomposed.py). At -O2 the
  // pattern passes must turn it into the same 14 kernels as the hand-written model.
  const std::string dir = "tests/fixtures/decomposed_d64";
  for (int level : {0, 2}) {
    kiln::LoadOptions options;
    options.opt_level = level;
    kiln::Model model = kiln::Model::load(source_path(dir + "/model.yaml"), options);
    kiln::Session session(model);
    for (const char* tag : {"_b1_s8.npy", "_b2_s13.npy"}) {
      auto out = session.run({{"tokens", kiln::read_npy(source_path(dir + "/tokens" + tag))}});
      for (const char* name : {"logits", "probs"}) {
        double err = max_abs_diff(out.at(name), kiln::read_npy(source_path(dir + "/" + name + tag)));
        std::printf("decomposed -O%d %s%s: max abs error %.3g\n", level, name, tag, err);
        CHECK(err <= 1e-4);
      }
    }
    std::string ir = model.ir();
    if (level == 2) {
      for (const char* gone : {" = erf(", " = pow(", " = sqrt(", " = reduce_mean(%encoder", " = matmul(", " = softmax(%encoder", " = add("})
        CHECK_MESSAGE(ir.find(gone) == std::string::npos, "still in the -O2 IR: " << gone);
      CHECK(ir.find("attention(") != std::string::npos);
      CHECK(ir.find("gelu") != std::string::npos);
    } else {
      CHECK(ir.find("attention(") == std::string::npos);
    }
  }
}
