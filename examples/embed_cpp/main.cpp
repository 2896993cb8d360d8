// Embedding Kiln from C++: load a model, share one Session between threads, run on caller memory.
//
//   embed_cpp MODEL.yaml TOKEN_ID...
//
// Runs the classifier on the token ids (batch 1) from 4 threads at once, 25 times each, checks that every
// run gave the same probabilities, and prints them once with the session's memory report.
#include <kiln/kiln.hpp>

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 3) {
    std::fprintf(stderr, "usage: %s MODEL.yaml TOKEN_ID...\n", argv[0]);
    return 2;
  }
  std::vector<std::int64_t> tokens;
  for (int i = 2; i < argc; ++i) tokens.push_back(std::strtoll(argv[i], nullptr, 10));
  const auto seq = static_cast<std::int64_t>(tokens.size());

  try {
    kiln::Model model = kiln::Model::load(argv[1]);
    kiln::SessionOptions options;
    options.mode = kiln::ThreadingMode::throughput;  // requests side by side, one core each
    kiln::Session session(model, options);           // one session, shared by all threads

    constexpr int kThreads = 4, kRuns = 25;
    std::vector<std::vector<float>> results(kThreads, std::vector<float>(4));
    std::vector<std::thread> threads;
    for (int t = 0; t < kThreads; ++t) {
      threads.emplace_back([&, t] {
        // Views over memory this thread owns: Kiln copies nothing and keeps no pointer after run().
        std::vector<std::int64_t> my_tokens = tokens;
        std::map<std::string, kiln::Tensor> in{{"tokens", kiln::Tensor::view(kiln::DType::i64, {1, seq}, my_tokens.data())}};
        std::map<std::string, kiln::Tensor> out{{"probs", kiln::Tensor::view(kiln::DType::f32, {1, 4}, results[t].data())}};
        for (int r = 0; r < kRuns; ++r) session.run(in, out);
      });
    }
    for (auto& th : threads) th.join();
    for (int t = 1; t < kThreads; ++t)
      if (results[t] != results[0]) {
        std::fprintf(stderr, "thread %d got different probabilities\n", t);
        return 1;
      }
    std::printf("probs:");
    for (float p : results[0]) std::printf(" %.6f", p);
    std::printf("\n");
    kiln::MemoryStats m = session.memory();
    std::printf("runs: %d on %d threads; weights %zu bytes, arenas %zu bytes in %zu contexts, %zu plan(s)\n",
                kThreads * kRuns, kThreads, m.weight_bytes, m.arena_bytes, m.contexts, m.plans);

    // Errors are kiln::Error, with a message naming what was wrong.
    try {
      session.run({{"tokenz", kiln::Tensor::from_i64({1, 1}, {0})}});
    } catch (const kiln::Error& e) {
      std::printf("expected error: %s\n", e.what());
    }
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
