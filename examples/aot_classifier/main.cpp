// The example classifier, compiled into this binary by kiln_add_model (see CMakeLists.txt): no YAML and
// no weights file at run time. Usage: aot_classifier [32 token ids]   (default: the ids 0, 1, ..., 31)
// Prints the four class probabilities, then the median time per inference.

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <vector>

#include "transformer_classifier.hpp"

int main(int argc, char** argv) {
  constexpr int kSeq = 32;
  if (argc != 1 && argc != 1 + kSeq) {
    std::fprintf(stderr, "usage: %s [%d token ids]\n", argv[0], kSeq);
    return 2;
  }
  try {
    auto model = std::make_unique<kiln_models::TransformerClassifier>();  // large members: on the heap
    for (int i = 0; i < kSeq; ++i) model->tokens[0][i] = argc > 1 ? std::atoll(argv[1 + i]) : i;
    model->run();
    std::printf("probs:");
    for (float p : model->probs[0]) std::printf(" %.9g", static_cast<double>(p));
    std::printf("\n");

    std::vector<double> ms;
    for (int r = 0; r < 50; ++r) {
      auto t0 = std::chrono::steady_clock::now();
      model->run();
      ms.push_back(std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count());
    }
    std::sort(ms.begin(), ms.end());
    std::printf("time per inference: median %.3f ms over %zu runs\n", ms[ms.size() / 2], ms.size());
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
