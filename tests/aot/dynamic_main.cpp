// A test program for kiln_add_model with dims bound at run time (seq=1..64) and the plan read from a
// side file: prints the outputs for the token ids given.
// Usage: kiln_aot_dynamic PLAN_FILE|- BATCH SEQ ID...   ('-': the plan file written at build time)

#include <cstdio>
#include <cstdlib>
#include <string>

#include "classifier_d64.hpp"

int main(int argc, char** argv) {
  if (argc < 4) {
    std::fprintf(stderr, "usage: %s PLAN_FILE|- BATCH SEQ ID...\n", argv[0]);
    return 2;
  }
  try {
    const std::string plan = argv[1];
    test_models::ClassifierD64 model(plan == "-" ? test_models::ClassifierD64::kPlanFile : plan);
    const std::int64_t batch = std::atoll(argv[2]), seq = std::atoll(argv[3]);
    if (argc != 4 + batch * seq) {
      std::fprintf(stderr, "expected %lld ids\n", static_cast<long long>(batch * seq));
      return 2;
    }
    model.tokens = kiln::Tensor::empty(kiln::DType::i64, {batch, seq});
    for (std::int64_t i = 0; i < batch * seq; ++i) model.tokens.data_as<std::int64_t>()[i] = std::atoll(argv[4 + i]);
    model.run();
    for (const auto& [name, t] : {std::pair<const char*, const kiln::Tensor*>{"logits", &model.logits}, {"probs", &model.probs}}) {
      std::printf("%s:", name);
      for (std::int64_t i = 0; i < t->numel(); ++i) std::printf(" %.9g", static_cast<double>(t->data_as<float>()[i]));
      std::printf("\n");
    }
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
