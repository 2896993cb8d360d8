// The threading and memory contracts of kiln::Session (docs/threading.md): concurrent runs on one session
// give the results serial runs give; the modes set threads per run and runs at once; no oversubscription;
// idle threads do not spin; weights are shared, arenas pooled per concurrent call, the plan cache bounded,
// and a memory cap fails a run cleanly.

#include <omp.h>
#include <sys/resource.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstring>
#include <fstream>
#include <sstream>
#include <thread>

#include "frontends/safetensors.hpp"
#include "test_util.hpp"

namespace {

using kiln::test::contains;
using kiln::test::error_of;
using kiln::test::source_path;

const std::string kModel = "examples/transformer_classifier/transformer_classifier.yaml";

kiln::Model classifier() {
  static kiln::Model model = kiln::Model::load(source_path(kModel));
  return model;
}

struct Request {
  std::vector<std::int64_t> tokens;
  std::int64_t batch, seq;
  std::map<std::string, kiln::Tensor> inputs() {
    return {{"tokens", kiln::Tensor::view(kiln::DType::i64, {batch, seq}, tokens.data())}};
  }
};

// Mixed batch sizes and sequence lengths, each with its own token ids.
std::vector<Request> mixed_requests(int count) {
  const std::int64_t batches[] = {1, 2, 3, 4}, seqs[] = {5, 8, 16, 32};
  std::vector<Request> out;
  for (int i = 0; i < count; ++i) {
    Request r{{}, batches[i % 4], seqs[(i / 4 + i) % 4]};
    for (std::int64_t k = 0; k < r.batch * r.seq; ++k) r.tokens.push_back((k * 37 + i * 101 + 7) % 1000);
    out.push_back(std::move(r));
  }
  return out;
}

std::vector<float> probs_of(kiln::Session& s, Request& r) {
  auto out = s.run(r.inputs());
  const kiln::Tensor& p = out.at("probs");
  return std::vector<float>(p.data_as<float>(), p.data_as<float>() + p.numel());
}

// `threads` callers, `runs` each, over `requests` round-robin (each thread from its own offset); every
// output compared bit for bit with the serial result. Returns the number of mismatches.
int concurrent_mismatches(kiln::Session& s, std::vector<Request>& requests, int threads, int runs) {
  std::vector<std::vector<float>> expected;
  for (auto& r : requests) expected.push_back(probs_of(s, r));
  std::atomic<int> mismatches{0};
  std::vector<std::thread> pool;
  for (int t = 0; t < threads; ++t) {
    pool.emplace_back([&, t] {
      std::vector<std::vector<float>> out_bufs;
      for (auto& r : requests) out_bufs.emplace_back(static_cast<std::size_t>(r.batch) * 4);
      for (int i = 0; i < runs; ++i) {
        const std::size_t k = static_cast<std::size_t>(t * 7 + i) % requests.size();
        Request& r = requests[k];
        std::map<std::string, kiln::Tensor> out{{"probs", kiln::Tensor::view(kiln::DType::f32, {r.batch, 4}, out_bufs[k].data())}};
        s.run(r.inputs(), out);
        if (std::memcmp(out_bufs[k].data(), expected[k].data(), expected[k].size() * sizeof(float)) != 0) ++mismatches;
      }
    });
  }
  for (auto& th : pool) th.join();
  return mismatches.load();
}

double cpu_seconds() {
  rusage u{};
  getrusage(RUSAGE_SELF, &u);
  return static_cast<double>(u.ru_utime.tv_sec + u.ru_stime.tv_sec) + 1e-6 * static_cast<double>(u.ru_utime.tv_usec + u.ru_stime.tv_usec);
}

}  // namespace

TEST_CASE("session: concurrent runs from 8 threads match serial runs bit for bit, in both modes") {
  for (auto mode : {kiln::ThreadingMode::throughput, kiln::ThreadingMode::latency}) {
    kiln::SessionOptions o;
    o.mode = mode;
    o.intra_op_threads = 2;
    kiln::Session s(classifier(), o);
    auto requests = mixed_requests(8);
    CHECK(concurrent_mismatches(s, requests, 8, 40) == 0);
    kiln::MemoryStats m = s.memory();
    CHECK(m.plans == 8);
    CHECK(s.plan_count() == 8);
    // Plan instances: at most one per run that can be in flight at once, per shape set.
    CHECK(m.contexts >= m.plans);
    CHECK(m.contexts <= m.plans * static_cast<std::size_t>(s.max_concurrent_runs()));
  }
}

TEST_CASE("session: the modes set threads per run and runs at once") {
  kiln::SessionOptions o;
  o.intra_op_threads = 2;
  o.mode = kiln::ThreadingMode::latency;
  kiln::Session lat(classifier(), o);
  CHECK(lat.threads_per_run() == 2);
  CHECK(lat.max_concurrent_runs() == 1);
  o.mode = kiln::ThreadingMode::throughput;
  kiln::Session thr(classifier(), o);
  CHECK(thr.threads_per_run() == 1);
  CHECK(thr.max_concurrent_runs() == 2);
  // Per model: LoadOptions::session is what Session(model) uses.
  kiln::LoadOptions lo;
  lo.session.mode = kiln::ThreadingMode::throughput;
  lo.session.intra_op_threads = 1;
  kiln::Session from_model(kiln::Model::load(source_path(kModel), lo));
  CHECK(from_model.max_concurrent_runs() == 1);
  CHECK(from_model.threads_per_run() == 1);
  // The caller's own OpenMP setting is left as it was.
  const int before = omp_get_max_threads();
  Request r = mixed_requests(1)[0];
  probs_of(lat, r);
  CHECK(omp_get_max_threads() == before);
  o.intra_op_threads = -1;
  CHECK(contains(error_of([&] { kiln::Session bad(classifier(), o); }), "intra_op_threads is -1"));
}

TEST_CASE("session: the same results in latency mode with 1 and 2 threads and in throughput mode") {
  auto requests = mixed_requests(4);
  kiln::SessionOptions o;
  o.intra_op_threads = 1;
  kiln::Session one(classifier(), o);
  o.intra_op_threads = 2;
  kiln::Session two(classifier(), o);
  o.mode = kiln::ThreadingMode::throughput;
  kiln::Session thr(classifier(), o);
  for (auto& r : requests) {
    auto a = probs_of(one, r), b = probs_of(two, r), c = probs_of(thr, r);
    REQUIRE(a.size() == b.size());
    for (std::size_t i = 0; i < a.size(); ++i) {
      CHECK(std::abs(a[i] - b[i]) <= 1e-5f);
      CHECK(a[i] == c[i]);  // both single-threaded per run: the same kernels
    }
  }
}

TEST_CASE("session: no oversubscription: 4 concurrent callers on 2 cores take no longer in total than serial runs") {
  kiln::SessionOptions o;
  o.mode = kiln::ThreadingMode::throughput;
  o.intra_op_threads = 2;
  kiln::Session s(classifier(), o);
  Request r = mixed_requests(1)[0];  // batch 1 x seq 5
  const int total = 400;
  probs_of(s, r);
  auto timed = [&](int callers) {
    auto t0 = std::chrono::steady_clock::now();
    std::vector<std::thread> pool;
    for (int c = 0; c < callers; ++c)
      pool.emplace_back([&] {
        std::vector<float> buf(4);
        std::map<std::string, kiln::Tensor> out{{"probs", kiln::Tensor::view(kiln::DType::f32, {1, 4}, buf.data())}};
        for (int i = 0; i < total / callers; ++i) s.run(r.inputs(), out);
      });
    for (auto& th : pool) th.join();
    return std::chrono::duration<double>(std::chrono::steady_clock::now() - t0).count();
  };
  double serial = 1e9, concurrent = 1e9;
  for (int rep = 0; rep < 3; ++rep) {  // best of 3: the machine is shared
    serial = std::min(serial, timed(1));
    concurrent = std::min(concurrent, timed(4));
  }
  MESSAGE("400 runs: serial " << serial * 1e3 << " ms, 4 callers " << concurrent * 1e3 << " ms");
  CHECK(concurrent <= serial * 1.15);
}

TEST_CASE("session: idle threads do not spin") {
  auto requests = mixed_requests(4);
  auto idle_cpu_ms = [](int settle_ms) {
    std::this_thread::sleep_for(std::chrono::milliseconds(settle_ms));
    const double c0 = cpu_seconds();
    std::this_thread::sleep_for(std::chrono::milliseconds(300));
    return (cpu_seconds() - c0) * 1e3;
  };
  // Latency mode: the OpenMP team's workers spin briefly after a run (GOMP_SPINCOUNT), then sleep.
  kiln::SessionOptions o;
  o.intra_op_threads = 2;
  kiln::Session lat(classifier(), o);
  for (int i = 0; i < 20; ++i) probs_of(lat, requests[static_cast<std::size_t>(i) % 4]);
  const double right_after = idle_cpu_ms(0);
  for (int i = 0; i < 20; ++i) probs_of(lat, requests[static_cast<std::size_t>(i) % 4]);
  const double settled = idle_cpu_ms(100);
  // Throughput mode: no OpenMP team at all, so nothing to spin.
  o.mode = kiln::ThreadingMode::throughput;
  kiln::Session thr(classifier(), o);
  for (int i = 0; i < 20; ++i) probs_of(thr, requests[static_cast<std::size_t>(i) % 4]);
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // the latency session's team from above
  std::vector<std::thread> callers;
  for (int t = 0; t < 2; ++t)
    callers.emplace_back([&] { for (int i = 0; i < 20; ++i) probs_of(thr, requests[static_cast<std::size_t>(i) % 4]); });
  for (auto& c : callers) c.join();
  const double throughput_idle = idle_cpu_ms(0);
  MESSAGE("process CPU over 300 ms idle: latency mode right after runs " << right_after << " ms, 100 ms after "
          << settled << " ms; throughput mode right after runs " << throughput_idle << " ms (GOMP_SPINCOUNT="
          << std::string(std::getenv("GOMP_SPINCOUNT") ? std::getenv("GOMP_SPINCOUNT") : "unset") << ")");
  // A worker spinning while idle would use ~300 ms of CPU in each window; a bounded spin uses a few ms
  // once, and nothing after it.
  CHECK(right_after < 40);
  CHECK(settled < 10);
  CHECK(throughput_idle < 10);
}

TEST_CASE("session: weights are shared between sessions, arenas are pooled per concurrent call") {
  kiln::Model model = classifier();
  kiln::Session a(model), b(model);
  Request r = mixed_requests(1)[0];
  probs_of(a, r);
  probs_of(b, r);
  CHECK(model.weight_bytes() > 2000000);  // the d128 classifier: ~2.1 MB of f32 weights
  CHECK(a.memory().weight_bytes == model.weight_bytes());
  CHECK(b.memory().weight_bytes == model.weight_bytes());
  CHECK(a.memory().arena_bytes > 0);
  CHECK(a.memory().arena_bytes == b.memory().arena_bytes);
  CHECK(a.memory().contexts == 1);  // serial runs reuse one context
  for (int i = 0; i < 5; ++i) probs_of(a, r);
  CHECK(a.memory().contexts == 1);
  CHECK(a.memory().peak_arena_bytes == a.memory().arena_bytes);
}

TEST_CASE("session: the plan cache is bounded by max_plans") {
  kiln::SessionOptions o;
  o.max_plans = 3;
  kiln::Session s(classifier(), o);
  auto requests = mixed_requests(8);
  std::size_t peak = 0;
  for (auto& r : requests) {
    probs_of(s, r);
    CHECK(s.memory().plans <= 3);
    peak = std::max(peak, s.memory().arena_bytes);
  }
  CHECK(s.plan_count() == 8);
  CHECK(s.memory().plans == 3);
  CHECK(s.memory().peak_arena_bytes == peak);
  o.max_plans = 0;
  CHECK(contains(error_of([&] { kiln::Session bad(classifier(), o); }), "max_plans is 0"));
}

TEST_CASE("session: a memory limit makes a run fail cleanly, and the session stays usable") {
  Request small{{}, 1, 8}, large{{}, 4, 32};
  for (std::int64_t k = 0; k < 8; ++k) small.tokens.push_back(k + 1);
  for (std::int64_t k = 0; k < 128; ++k) large.tokens.push_back(k + 3);
  std::size_t small_bytes = 0, large_bytes = 0;
  {
    kiln::Session probe(classifier());
    probs_of(probe, small);
    small_bytes = probe.memory().arena_bytes;
    kiln::Session probe2(classifier());
    probs_of(probe2, large);
    large_bytes = probe2.memory().arena_bytes;
  }
  REQUIRE(large_bytes > small_bytes);
  kiln::SessionOptions o;
  o.memory_limit = small_bytes;
  kiln::Session s(classifier(), o);
  const auto expected = probs_of(s, small);
  std::string e = error_of([&] { probs_of(s, large); });
  CHECK(contains(e, "memory limit"));
  CHECK(contains(e, "[4,32]"));
  CHECK(contains(e, std::to_string(large_bytes) + " bytes"));
  CHECK(s.memory().arena_bytes <= small_bytes);
  CHECK(probs_of(s, small) == expected);  // still works (the idle plan may have been dropped and rebuilt)
  // Concurrent callers under a cap that fits one arena: they wait for the plan instead of failing.
  std::vector<Request> same(1, small);
  CHECK(concurrent_mismatches(s, same, 4, 20) == 0);
  CHECK(s.memory().contexts == 1);
  CHECK(s.memory().arena_bytes <= small_bytes);
}

TEST_CASE("model: load_from_memory gives the same results as load") {
  const std::string dir = source_path("examples/transformer_classifier/");
  auto slurp = [](const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    std::stringstream ss;
    ss << in.rdbuf();
    return ss.str();
  };
  std::string yaml = slurp(dir + "transformer_classifier.yaml");
  std::string weights = slurp(dir + "transformer_classifier.safetensors");
  kiln::Model m = kiln::Model::load_from_memory(yaml, weights.data(), weights.size());
  weights.assign(weights.size(), '\0');  // the model keeps its own copy
  kiln::Session a(m), b(classifier());
  Request r = mixed_requests(3)[2];
  CHECK(probs_of(a, r) == probs_of(b, r));
  CHECK(m.weight_bytes() == classifier().weight_bytes());
  // Errors name the given name; a corrupt weights image is reported, not crashed on.
  std::string e = error_of([&] { kiln::Model::load_from_memory(yaml, "garbage", 7, {}, "mine.yaml"); });
  CHECK(contains(e, "mine.yaml"));
  e = error_of([&] { kiln::Model::load_from_memory("kiln: 1\nname: x\ninputs: [", nullptr, 0, {}, "bad.yaml"); });
  CHECK(contains(e, "bad.yaml:"));
}

TEST_CASE("session: run_many runs independent requests side by side with the results of single runs") {
  for (auto mode : {kiln::ThreadingMode::throughput, kiln::ThreadingMode::latency}) {
    kiln::SessionOptions o;
    o.mode = mode;
    o.intra_op_threads = 2;
    kiln::Session s(classifier(), o);
    auto requests = mixed_requests(16);
    std::vector<std::map<std::string, kiln::Tensor>> ins, outs;
    std::vector<std::vector<float>> bufs;
    for (auto& r : requests) bufs.emplace_back(static_cast<std::size_t>(r.batch) * 4);
    for (std::size_t i = 0; i < requests.size(); ++i) {
      ins.push_back(requests[i].inputs());
      outs.push_back({{"probs", kiln::Tensor::view(kiln::DType::f32, {requests[i].batch, 4}, bufs[i].data())}});
    }
    s.run_many(ins, outs);
    for (std::size_t i = 0; i < requests.size(); ++i) CHECK(bufs[i] == probs_of(s, requests[i]));
    // A bad request fails alone: the others still ran; the error is the bad one's.
    ins[3] = {{"tokenz", kiln::Tensor::from_i64({1, 1}, {0})}};
    for (auto& b : bufs) std::fill(b.begin(), b.end(), -1.0f);
    CHECK(contains(error_of([&] { s.run_many(ins, outs); }), "no input 'tokenz'"));
    CHECK(bufs[3][0] == -1.0f);
    CHECK(bufs[4] == probs_of(s, requests[4]));
    outs.pop_back();
    CHECK(contains(error_of([&] { s.run_many(ins, outs); }), "16 input sets but 15 output sets"));
  }
}
