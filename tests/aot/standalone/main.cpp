// Prints the embedded d64 classifier's probabilities for 8 token ids given on the command line.
#include <cstdio>
#include <cstdlib>

#include "d64.hpp"

int main(int argc, char** argv) {
  if (argc != 9) return 2;
  kiln_models::TransformerClassifier model;
  for (int i = 0; i < 8; ++i) model.tokens[0][i] = std::atoll(argv[1 + i]);
  model.run();
  std::printf("probs:");
  for (float p : model.probs[0]) std::printf(" %.9g", static_cast<double>(p));
  std::printf("\n");
  return 0;
}
