// kiln_bench_concurrency: inferences per second of one Session shared by C caller threads.
//
//   kiln_bench_concurrency MODEL.yaml --batch B --seq S --callers C --cores N --mode throughput|latency
//                          [--seconds T]
//
// Each caller runs the model on its own token ids (batch B x seq S, ids in [0, 1000)) into its own output
// buffer, as fast as it can for T seconds (after a warm-up), through the allocation-free Session::run.
// Prints one line: `callers C mode M cores N: R inferences/s (K runs in T s)`.
#include <kiln/kiln.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <string>
#include <thread>
#include <vector>

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.yaml --batch B --seq S --callers C --cores N --mode throughput|latency [--seconds T]\n", argv[0]);
    return 2;
  }
  long batch = 1, seq = 32;
  int callers = 1;
  double seconds = 3;
  kiln::SessionOptions options;
  options.intra_op_threads = 2;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string f = argv[i], v = argv[i + 1];
    if (f == "--batch") batch = std::atol(v.c_str());
    else if (f == "--seq") seq = std::atol(v.c_str());
    else if (f == "--callers") callers = std::atoi(v.c_str());
    else if (f == "--cores") options.intra_op_threads = std::atoi(v.c_str());
    else if (f == "--seconds") seconds = std::atof(v.c_str());
    else if (f == "--mode") options.mode = v == "latency" ? kiln::ThreadingMode::latency : kiln::ThreadingMode::throughput;
    else {
      std::fprintf(stderr, "unknown flag %s\n", f.c_str());
      return 2;
    }
  }
  try {
    kiln::Session session(kiln::Model::load(argv[1]), options);
    std::atomic<long> runs{0};
    std::atomic<bool> go{false}, stop{false};
    std::atomic<int> ready{0};
    std::vector<std::thread> pool;
    for (int c = 0; c < callers; ++c) {
      pool.emplace_back([&, c] {
        std::vector<std::int64_t> tokens(static_cast<std::size_t>(batch * seq));
        for (std::size_t k = 0; k < tokens.size(); ++k) tokens[k] = static_cast<std::int64_t>((k * 131 + static_cast<std::size_t>(c) * 17 + 3) % 1000);
        std::vector<float> probs(static_cast<std::size_t>(batch) * 4);
        std::map<std::string, kiln::Tensor> in{{"tokens", kiln::Tensor::view(kiln::DType::i64, {batch, seq}, tokens.data())}};
        std::map<std::string, kiln::Tensor> out{{"probs", kiln::Tensor::view(kiln::DType::f32, {batch, 4}, probs.data())}};
        for (int w = 0; w < 20; ++w) session.run(in, out);
        ++ready;
        while (!go) std::this_thread::yield();
        long mine = 0;
        while (!stop) {
          session.run(in, out);
          ++mine;
        }
        runs += mine;
      });
    }
    while (ready < callers) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    auto t0 = std::chrono::steady_clock::now();
    go = true;
    std::this_thread::sleep_for(std::chrono::duration<double>(seconds));
    stop = true;
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    std::printf("callers %d mode %s cores %d: %.1f inferences/s (%ld runs in %.2f s)\n", callers,
                options.mode == kiln::ThreadingMode::latency ? "latency" : "throughput", options.intra_op_threads,
                static_cast<double>(runs.load()) * static_cast<double>(batch) / s, runs.load(), s);
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  return 0;
}
