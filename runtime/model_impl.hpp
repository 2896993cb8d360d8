#pragma once
// What the public kiln::Model and kiln::Session hold.

#include <atomic>
#include <condition_variable>
#include <list>
#include <memory>
#include <mutex>
#include <new>
#include <stdexcept>
#include <thread>

#include <tbb/task_arena.h>
#include <oneapi/dnnl/dnnl.hpp>

#include "graph/graph.hpp"
#include "kiln/model.hpp"
#include "passes/pass.hpp"
#include "runtime/kplan.hpp"
#include "runtime/plan.hpp"

namespace kiln::detail {

struct ModelImpl {
  std::unique_ptr<Graph> graph;
  std::string path;
  std::vector<Remark> remarks;  // what the passes did, for --explain
  LoadOptions options;
  std::size_t weight_bytes = 0;
  DimRanges dim_ranges;  // symbolic dims bounded at compile time (kilnc compile --shape NAME=MIN..MAX)
};

/// Bytes of the constants the graph uses (its weights), as Model::weight_bytes reports them.
inline std::size_t weight_bytes_of(const Graph& g) {
  std::size_t bytes = 0;
  for (const auto& v : g.values())
    if (v->is_constant() && !v->users.empty()) bytes += v->constant.bytes;
  return bytes;
}

/// Runs `body` for the public call `call`: std::bad_alloc and std::length_error (a size from a file or
/// tensor too large to allocate) become kiln::Error, so that no public call lets them escape. Allocates
/// nothing unless one is caught.
template <class F>
decltype(auto) no_bad_alloc(const char* call, F&& body) {
  try {
    return body();
  } catch (const std::bad_alloc&) {
    throw Error(std::string("error: out of memory in ") + call);
  } catch (const std::length_error& e) {
    throw Error(std::string("error: out of memory in ") + call + " (" + e.what() + ")");
  }
}

/// The CPU engine shared by all sessions.
const dnnl::engine& cpu_engine();

/// Sets the calling thread's OpenMP team size (oneDNN's threads) for a scope and restores it after.
/// OpenMP's setting is per thread, so this affects no other thread.
class OmpThreads {
 public:
  explicit OmpThreads(int n);
  ~OmpThreads();
  OmpThreads(const OmpThreads&) = delete;
  OmpThreads& operator=(const OmpThreads&) = delete;

 private:
  int saved_;
};

/// What one running call needs besides a plan: a oneDNN stream, a TBB arena sized for the mode, and the
/// binding scratch reused between calls so that a warm run allocates nothing.
struct RunContext {
  RunContext(const dnnl::engine& engine, int threads) : stream(engine), arena(threads, 1) { arena.initialize(); }

  dnnl::stream stream;
  tbb::task_arena arena;
  std::vector<const Tensor*> bound;
  struct Binding {
    const std::string* symbol;
    std::int64_t value;
    const std::string* input;  // the input that bound it
  };
  std::vector<Binding> symbols;
  std::vector<const void*> in_ptrs;
  std::vector<void*> out_ptrs;
};

/// The plans for one set of input shapes: one instance per call running on them at the same time
/// (oneDNN's primitive cache makes a further instance's primitives cache hits; weights are the model's).
struct PlanEntry {
  std::vector<std::vector<std::int64_t>> dims;
  std::vector<std::unique_ptr<Plan>> instances;
  std::vector<Plan*> idle;  // capacity kept >= instances.size(): returning one never allocates
  std::size_t arena_bytes = 0;
  bool busy() const { return idle.size() != instances.size(); }
};

/// Latency mode's runner: every run's kernels are issued from this one thread, so a session uses one
/// OpenMP team whichever thread calls. (libgomp keeps a team per calling thread; when callers take turns,
/// the last caller's idle workers spin on a core while the next caller's team works.)
class Executor {
 public:
  explicit Executor(int threads);
  ~Executor();
  Executor(const Executor&) = delete;
  Executor& operator=(const Executor&) = delete;
  /// Runs f() on the executor thread and waits for it; rethrows what it threw. Allocates nothing.
  template <class F>
  void run(F& f) {
    submit([](void* p) { (*static_cast<F*>(p))(); }, &f);
  }

 private:
  void submit(void (*fn)(void*), void* arg);
  void loop(int threads);
  std::mutex mu_;
  std::condition_variable cv_;
  void (*fn_)(void*) = nullptr;
  void* arg_ = nullptr;
  bool done_ = false, stop_ = false;
  std::exception_ptr error_;
  std::thread thread_;
};

struct SessionImpl {
  std::shared_ptr<const ModelImpl> model;
  SessionOptions options;
  int threads = 1;     // per run
  int concurrent = 1;  // runs at once

  tbb::task_arena requests;            // run_many: `concurrent` requests at once
  std::unique_ptr<Executor> executor;  // latency mode with more than one thread per run
  // Set for good once a caller found the run slot taken: from then on runs go through `executor`. A
  // session only ever called from one thread runs inline (no hand-off per run).
  std::atomic<bool> shared_callers{false};

  std::mutex mu;
  std::condition_variable cv;  // a run slot, a context or a plan instance was returned
  int running = 0;
  std::vector<std::unique_ptr<RunContext>> contexts;
  std::vector<RunContext*> idle_contexts;
  std::list<std::unique_ptr<PlanEntry>> plans;  // most recently used first
  std::size_t compiled = 0;
  std::size_t arena_bytes = 0, peak_arena_bytes = 0, instances = 0;

  SessionImpl(std::shared_ptr<const ModelImpl> m, const SessionOptions& o);

  /// Waits (blocked) for a run slot; returns a context for the caller's exclusive use.
  RunContext* begin_run();
  void end_run(RunContext* ctx);

  /// Checks inputs against the model's declared inputs (names, dtypes, ranks, dims, symbol bindings) and
  /// fills `ctx.bound` in graph-input order. Allocates nothing unless it fails.
  /// With `need_data` false, inputs without data are accepted (for shape queries).
  void bind(RunContext& ctx, const std::map<std::string, Tensor>& inputs, bool need_data = true) const;

  struct Lease {
    PlanEntry* entry;
    Plan* plan;
  };
  /// A plan instance for the shapes in `ctx.bound` for the caller's exclusive use, compiled on first
  /// use. Throws kiln::Error when the memory limit does not allow its arena.
  Lease acquire(RunContext& ctx);
  void release(Lease lease);

 private:
  PlanEntry* find(const RunContext& ctx);  // under mu; moves a hit to the front
  bool drop_lru_idle();                    // under mu: drop the least recently used idle entry, if any
  void trim();                             // under mu: drop idle entries beyond max_plans
  bool evict_idle_for(std::size_t bytes);  // under mu: drop idle entries (LRU first) until bytes fit
};

/// Scoped run: a slot and context from the session, released on every exit path.
class RunScope {
 public:
  explicit RunScope(SessionImpl& s) : s_(s), ctx_(s.begin_run()) {}
  ~RunScope() { s_.end_run(ctx_); }
  RunScope(const RunScope&) = delete;
  RunScope& operator=(const RunScope&) = delete;
  RunContext& ctx() { return *ctx_; }

 private:
  SessionImpl& s_;
  RunContext* ctx_;
};

class PlanLease {
 public:
  PlanLease(SessionImpl& s, RunContext& ctx) : s_(s), lease_(s.acquire(ctx)) {}
  ~PlanLease() { s_.release(lease_); }
  PlanLease(const PlanLease&) = delete;
  PlanLease& operator=(const PlanLease&) = delete;
  Plan& plan() { return *lease_.plan; }

 private:
  SessionImpl& s_;
  SessionImpl::Lease lease_;
};

}  // namespace kiln::detail
