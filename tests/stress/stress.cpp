// Stress test of the threading contract (docs/threading.md): C callers x R runs each on ONE session, with
// mixed batch sizes and sequence lengths, every output compared bit for bit with the result of a serial
// run of the same request. Uses only the public API. Built normally (ctest stress_*) and, with
// ThreadSanitizer, by the ctest test stress_tsan (label tsan).
//
//   kiln_stress MODEL.yaml [--mode latency|throughput] [--threads N] [--callers C] [--runs R] [--max-plans P]

#include <kiln/kiln.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>
#include <vector>

namespace {
struct Request {
  std::int64_t batch, seq;
  std::vector<std::int64_t> tokens;
  std::vector<float> expected;
};
}  // namespace

int main(int argc, char** argv) {
  if (argc < 2) {
    std::fprintf(stderr, "usage: %s MODEL.yaml [--mode latency|throughput] [--threads N] [--callers C] [--runs R] [--max-plans P]\n", argv[0]);
    return 2;
  }
  kiln::SessionOptions options;
  options.mode = kiln::ThreadingMode::throughput;
  options.intra_op_threads = 2;
  int callers = 8, runs = 500;
  for (int i = 2; i + 1 < argc; i += 2) {
    std::string flag = argv[i], value = argv[i + 1];
    if (flag == "--mode") options.mode = value == "latency" ? kiln::ThreadingMode::latency : kiln::ThreadingMode::throughput;
    else if (flag == "--threads") options.intra_op_threads = std::atoi(value.c_str());
    else if (flag == "--callers") callers = std::atoi(value.c_str());
    else if (flag == "--runs") runs = std::atoi(value.c_str());
    else if (flag == "--max-plans") options.max_plans = static_cast<std::size_t>(std::atoll(value.c_str()));
    else {
      std::fprintf(stderr, "unknown flag %s\n", flag.c_str());
      return 2;
    }
  }
  try {
    kiln::Session session(kiln::Model::load(argv[1]), options);
    // 12 requests: batch 1..4 x seq 5, 8, 16, 32 (mixed), each with its own token ids.
    const std::int64_t batches[] = {1, 2, 3, 4}, seqs[] = {5, 8, 16, 32};
    std::vector<Request> requests;
    for (int i = 0; i < 12; ++i) {
      Request r{batches[i % 4], seqs[(i + i / 4) % 4], {}, {}};
      for (std::int64_t k = 0; k < r.batch * r.seq; ++k) r.tokens.push_back((k * 131 + i * 17 + 3) % 1000);
      requests.push_back(std::move(r));
    }
    for (auto& r : requests) {  // serial reference, same session
      auto out = session.run({{"tokens", kiln::Tensor::view(kiln::DType::i64, {r.batch, r.seq}, r.tokens.data())}});
      const kiln::Tensor& p = out.at("probs");
      r.expected.assign(p.data_as<float>(), p.data_as<float>() + p.numel());
    }
    std::atomic<long> mismatches{0}, failures{0};
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int t = 0; t < callers; ++t) {
      pool.emplace_back([&, t] {
        std::vector<float> out_buf(16);
        for (int i = 0; i < runs; ++i) {
          Request& r = requests[static_cast<std::size_t>(t * 5 + i * (t + 1)) % requests.size()];
          std::map<std::string, kiln::Tensor> in{{"tokens", kiln::Tensor::view(kiln::DType::i64, {r.batch, r.seq}, r.tokens.data())}};
          std::map<std::string, kiln::Tensor> out{{"probs", kiln::Tensor::view(kiln::DType::f32, {r.batch, 4}, out_buf.data())}};
          try {
            session.run(in, out);
          } catch (const kiln::Error& e) {
            if (failures++ == 0) std::fprintf(stderr, "run failed: %s\n", e.what());
            continue;
          }
          if (std::memcmp(out_buf.data(), r.expected.data(), r.expected.size() * sizeof(float)) != 0) ++mismatches;
        }
      });
    }
    for (auto& th : pool) th.join();
    const double s = std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
    kiln::MemoryStats m = session.memory();
    std::printf("%d callers x %d runs (%s mode, %d thread(s) per run, %d at once, max_plans %zu): %.2f s, %ld mismatches, "
                "%ld failures; %zu plans, %zu plan instances, arenas %zu bytes (peak %zu), %zu compiles\n",
                callers, runs, options.mode == kiln::ThreadingMode::latency ? "latency" : "throughput",
                session.threads_per_run(), session.max_concurrent_runs(), options.max_plans, s, mismatches.load(),
                failures.load(), m.plans, m.contexts, m.arena_bytes, m.peak_arena_bytes, session.plan_count());
    if (mismatches || failures) return 1;
    if (m.plans > options.max_plans) {
      std::fprintf(stderr, "plan cache holds %zu plans, more than max_plans %zu\n", m.plans, options.max_plans);
      return 1;
    }
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  }
  std::printf("PASS\n");
  return 0;
}
