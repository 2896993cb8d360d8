#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <optional>
#include <sstream>
#include <utility>

#include <omp.h>
#include <tbb/parallel_for.h>

#include "graph/checked.hpp"
#include "ops/isa.hpp"
#include "runtime/compile.hpp"
#include "runtime/model_impl.hpp"

namespace kiln {

namespace {
bool same_dims(const std::vector<std::int64_t>& dims, const Shape& shape) {
  if (dims.size() != shape.size()) return false;
  for (std::size_t i = 0; i < dims.size(); ++i)
    if (!shape[i].is(dims[i])) return false;
  return true;
}
}  // namespace

namespace detail {

void SessionImpl::bind(RunContext& ctx, const std::map<std::string, Tensor>& inputs, bool need_data) const {
  const Graph& g = *model->graph;
  // Names no declared input: reported first, since a misspelled input also shows up as a missing one.
  auto reject_unknown = [&] {
    for (const auto& [name, t] : inputs) {
      bool known = false;
      for (const Value* in : g.inputs) known = known || in->name == name;
      if (known) continue;
      std::string names;
      for (const Value* in : g.inputs) names += (names.empty() ? "" : ", ") + in->name;
      fail("model '" + g.name + "' has no input '" + name + "' (its inputs: " + names + ")");
    }
  };
  if (inputs.size() > g.inputs.size()) reject_unknown();
  auto& bound = ctx.bound;
  auto& symbols = ctx.symbols;
  bound.clear();
  symbols.clear();
  for (const Value* in : g.inputs) {
    auto it = inputs.find(in->name);
    if (it == inputs.end()) {
      reject_unknown();
      fail("missing input '" + in->name + "' (" + in->type.str() + ")");
    }
    const Tensor& t = it->second;
    auto got = [&] { return std::string(dtype_name(t.dtype())) + shape_to_string(t.shape()); };
    if (t.dtype() != in->type.dtype || t.shape().size() != in->type.shape.size())
      fail("input '" + in->name + "': expected " + in->type.str() + ", got " + got());
    for (std::size_t d = 0; d < t.shape().size(); ++d) {
      const Dim& want = in->type.shape[d];
      std::int64_t have = t.shape()[d];
      if (want.concrete()) {
        if (want.value != have)
          fail("input '" + in->name + "': expected " + in->type.str() + ", got " + got() + " (dim " +
               std::to_string(d) + ")");
        continue;
      }
      if (have == 0) fail("input '" + in->name + "': dim " + std::to_string(d) + " ('" + want.sym + "') is 0");
      auto seen = std::find_if(symbols.begin(), symbols.end(),
                               [&](const RunContext::Binding& b) { return *b.symbol == want.sym; });
      if (seen == symbols.end()) {
        symbols.push_back(RunContext::Binding{&want.sym, have, &in->name});
      } else if (seen->value != have) {
        fail("input '" + in->name + "': dim '" + want.sym + "' is " + std::to_string(have) + " here but " +
             std::to_string(seen->value) +
             (*seen->input == in->name ? " in an earlier dim" : " in input '" + *seen->input + "'"));
      }
    }
    if (!checked::tensor_bytes(t.shape(), dtype_size(t.dtype())))
      fail("input '" + in->name + "': shape " + shape_to_string(t.shape()) + " of " +
           std::string(dtype_name(t.dtype())) + " is too large: its size in bytes exceeds " +
           std::to_string(checked::kMaxSize));
    if (need_data && !t.data() && t.numel() > 0) fail("input '" + in->name + "' has no data");
    bound.push_back(&t);
  }
  for (const RunContext::Binding& b : symbols) {  // dims a plan file was compiled for as a bounded range
    auto r = model->dim_ranges.find(*b.symbol);
    if (r != model->dim_ranges.end() && (b.value < r->second.min || b.value > r->second.max))
      fail("input '" + *b.input + "': dim '" + *b.symbol + "' is " + std::to_string(b.value) + ", outside the range " +
           r->second.str() + " the model was compiled for (kilnc compile --shape " + *b.symbol + "=MIN..MAX)");
  }
}

OmpThreads::OmpThreads(int n) : saved_(omp_get_max_threads()) {
  if (saved_ != n) omp_set_num_threads(n);
}
OmpThreads::~OmpThreads() {
  if (omp_get_max_threads() != saved_) omp_set_num_threads(saved_);
}

Executor::Executor(int threads) : thread_([this, threads] { loop(threads); }) {}

Executor::~Executor() {
  {
    std::lock_guard lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  thread_.join();
}

void Executor::loop(int threads) {
  omp_set_num_threads(threads);
  std::unique_lock lock(mu_);
  for (;;) {
    cv_.wait(lock, [&] { return fn_ || stop_; });
    if (stop_) return;
    try {
      fn_(arg_);
    } catch (...) {
      error_ = std::current_exception();
    }
    fn_ = nullptr;
    done_ = true;
    cv_.notify_all();
  }
}

void Executor::submit(void (*fn)(void*), void* arg) {
  std::unique_lock lock(mu_);  // one job at a time: latency mode admits one run at once
  fn_ = fn;
  arg_ = arg;
  done_ = false;
  cv_.notify_all();
  cv_.wait(lock, [&] { return done_; });
  if (error_) std::rethrow_exception(std::exchange(error_, nullptr));
}

SessionImpl::SessionImpl(std::shared_ptr<const ModelImpl> m, const SessionOptions& o)
    : model(std::move(m)), options(o) {
  if (options.intra_op_threads < 0)
    fail("SessionOptions::intra_op_threads is " + std::to_string(options.intra_op_threads) +
         " (expected 0 for all cores, or a positive count)");
  if (options.max_plans == 0) fail("SessionOptions::max_plans is 0 (expected at least 1)");
  // 0: what OpenMP would use on this thread (OMP_NUM_THREADS if set, else every core the process may run on).
  const int cores = options.intra_op_threads > 0 ? options.intra_op_threads : std::max(1, omp_get_max_threads());
  threads = options.mode == ThreadingMode::latency ? cores : 1;
  concurrent = options.mode == ThreadingMode::latency ? 1 : cores;
  requests.initialize(concurrent, 1);
  if (options.mode == ThreadingMode::latency && threads > 1) executor = std::make_unique<Executor>(threads);
  idle_contexts.reserve(static_cast<std::size_t>(concurrent));
}

RunContext* SessionImpl::begin_run() {
  std::unique_lock lock(mu);
  if (running >= concurrent) shared_callers.store(true, std::memory_order_relaxed);
  cv.wait(lock, [&] { return running < concurrent; });
  ++running;
  if (!idle_contexts.empty()) {
    RunContext* ctx = idle_contexts.back();
    idle_contexts.pop_back();
    return ctx;
  }
  try {
    contexts.push_back(std::make_unique<RunContext>(cpu_engine(), threads));
  } catch (...) {
    --running;
    cv.notify_all();
    throw;
  }
  return contexts.back().get();
}

void SessionImpl::end_run(RunContext* ctx) {
  {
    std::lock_guard lock(mu);
    idle_contexts.push_back(ctx);  // capacity reserved for `concurrent` contexts
    --running;
  }
  cv.notify_all();
}

PlanEntry* SessionImpl::find(const RunContext& ctx) {
  for (auto it = plans.begin(); it != plans.end(); ++it) {
    const PlanEntry& e = **it;
    bool same = true;
    for (std::size_t i = 0; i < ctx.bound.size() && same; ++i) same = e.dims[i] == ctx.bound[i]->shape();
    if (!same) continue;
    if (it != plans.begin()) plans.splice(plans.begin(), plans, it);
    return plans.front().get();
  }
  return nullptr;
}

bool SessionImpl::drop_lru_idle() {
  auto victim = plans.end();
  for (auto it = plans.begin(); it != plans.end(); ++it)
    if (!(*it)->busy()) victim = it;  // the last idle one: least recently used
  if (victim == plans.end()) return false;
  arena_bytes -= (*victim)->arena_bytes;
  instances -= (*victim)->instances.size();
  plans.erase(victim);
  return true;
}

void SessionImpl::trim() {
  // Every plan running: the extra one is dropped when a later call finds it idle.
  while (plans.size() > options.max_plans && drop_lru_idle()) {}
}

bool SessionImpl::evict_idle_for(std::size_t bytes) {
  while (arena_bytes + bytes > options.memory_limit)
    if (!drop_lru_idle()) return false;
  return true;
}

SessionImpl::Lease SessionImpl::acquire(RunContext& ctx) {
  std::unique_lock lock(mu);
  for (;;) {
    if (PlanEntry* e = find(ctx); e && !e->idle.empty()) {
      Plan* plan = e->idle.back();
      e->idle.pop_back();
      return Lease{e, plan};
    }
    // No idle instance for these shapes: compile one (without holding the lock), then account for it.
    lock.unlock();
    std::vector<std::vector<std::int64_t>> dims;
    for (const Tensor* t : ctx.bound) dims.push_back(t->shape());
    auto plan = std::make_unique<Plan>(*model->graph, dims, cpu_engine(), /*allocate=*/false, options.memory_limit);
    const std::size_t need = plan->arena_bytes();
    lock.lock();
    PlanEntry* e = find(ctx);
    if (e && !e->idle.empty()) continue;  // another call returned one meanwhile
    const std::size_t limit = options.memory_limit;
    if (limit && arena_bytes + need > limit && !evict_idle_for(need)) {
      e = find(ctx);
      if (e && !e->instances.empty()) {  // wait for a running call on these shapes to finish
        for (;;) {
          cv.wait(lock);
          e = find(ctx);  // it may have been dropped meanwhile: look again
          if (!e || !e->idle.empty()) break;
        }
        continue;
      }
      std::string shapes;
      for (const auto& d : dims) shapes += (shapes.empty() ? "" : ", ") + shape_to_string(d);
      fail("memory limit: a run on inputs " + shapes + " needs an activation arena of " + std::to_string(need) +
           " bytes, but the session's memory_limit is " + std::to_string(limit) + " bytes and " +
           std::to_string(arena_bytes) + " are held by plans in use");
    }
    if (!e) {  // a new shape set: make room in the cache first, so that it never holds more than max_plans
      while (plans.size() >= options.max_plans && drop_lru_idle()) {}
    }
    plan->allocate_arena();
    if (!e) {
      plans.push_front(std::make_unique<PlanEntry>());
      e = plans.front().get();
      e->dims = std::move(dims);
      ++compiled;
    }
    arena_bytes += need;
    peak_arena_bytes = std::max(peak_arena_bytes, arena_bytes);
    e->arena_bytes += need;
    ++instances;
    e->instances.push_back(std::move(plan));
    e->idle.reserve(e->instances.size());
    trim();
    return Lease{e, e->instances.back().get()};
  }
}

void SessionImpl::release(Lease lease) {
  {
    std::lock_guard lock(mu);
    lease.entry->idle.push_back(lease.plan);
    trim();
  }
  cv.notify_all();
}

}  // namespace detail

Model Model::load(const std::string& path, const LoadOptions& options) {
  return detail::no_bad_alloc("Model::load", [&] {
    detail::CompileRequest request;
    request.path = path;
    request.pipeline = detail::pipeline_options(options);
    request.options = options;
    return Model(detail::compile(std::move(request)));
  });
}

Model Model::load_from_memory(const std::string& yaml_text, const void* weights, std::size_t weights_size,
                              const LoadOptions& options, const std::string& name) {
  return detail::no_bad_alloc("Model::load_from_memory", [&] {
    detail::CompileRequest request;
    request.path = name;
    request.yaml_text = &yaml_text;
    request.weights = weights;
    request.weights_size = weights_size;
    request.pipeline = detail::pipeline_options(options);
    request.options = options;
    return Model(detail::compile(std::move(request)));
  });
}

const std::string& Model::name() const { return impl_->graph->name; }

namespace {
std::vector<IoInfo> io_of(const std::vector<Value*>& values) {
  std::vector<IoInfo> out;
  for (const Value* v : values) {
    IoInfo info{v->name, v->type.dtype, {}};
    for (const auto& d : v->type.shape) info.dims.push_back(d.str());
    out.push_back(std::move(info));
  }
  return out;
}
}  // namespace

std::vector<IoInfo> Model::inputs() const { return io_of(impl_->graph->inputs); }
std::vector<IoInfo> Model::outputs() const { return io_of(impl_->graph->outputs); }
std::string Model::ir(bool with_locations) const { return impl_->graph->print(with_locations); }
std::size_t Model::weight_bytes() const { return impl_->weight_bytes; }
const LoadOptions& Model::options() const { return impl_->options; }

Session::Session(const Model& model) : Session(model, model.options().session) {}
Session::Session(const Model& model, const SessionOptions& options)
    : impl_(detail::no_bad_alloc("Session",
                                 [&] { return std::make_unique<detail::SessionImpl>(model.impl(), options); })) {}
Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

std::map<std::string, std::vector<std::int64_t>> Session::output_shapes(const std::map<std::string, Tensor>& inputs) {
  return detail::no_bad_alloc("Session::output_shapes", [&] {
    detail::RunScope scope(*impl_);
    impl_->bind(scope.ctx(), inputs, /*need_data=*/false);
    detail::OmpThreads omp(impl_->threads);
    detail::PlanLease lease(*impl_, scope.ctx());
    std::map<std::string, std::vector<std::int64_t>> shapes;
    const Graph& g = *impl_->model->graph;
    for (std::size_t j = 0; j < g.outputs.size(); ++j)
      shapes[g.outputs[j]->name] = dims_of(lease.plan().output_type(j).shape);
    return shapes;
  });
}

void Session::prepare(const std::map<std::string, Tensor>& inputs) {
  return detail::no_bad_alloc("Session::prepare", [&] {
    detail::RunScope scope(*impl_);
    impl_->bind(scope.ctx(), inputs);
    detail::OmpThreads omp(impl_->threads);  // primitives are created for the team size they run with
    detail::PlanLease lease(*impl_, scope.ctx());
  });
}

std::map<std::string, Tensor> Session::run(const std::map<std::string, Tensor>& inputs) {
  return detail::no_bad_alloc("Session::run", [&] {
    std::map<std::string, Tensor> result;
    {
      detail::RunScope scope(*impl_);
      impl_->bind(scope.ctx(), inputs);
      detail::OmpThreads omp(impl_->threads);
      detail::PlanLease lease(*impl_, scope.ctx());
      const Graph& g = *impl_->model->graph;
      for (std::size_t j = 0; j < g.outputs.size(); ++j) {
        const TensorType& t = lease.plan().output_type(j);
        result.emplace(g.outputs[j]->name, Tensor::empty(t.dtype, dims_of(t.shape)));
      }
    }
    run(inputs, result);
    return result;
  });
}

namespace {
// Checks the caller's outputs against the plan and collects their data pointers in `ctx.out_ptrs`.
void bind_outputs(const Graph& g, const Plan& plan, detail::RunContext& ctx, std::map<std::string, Tensor>& outputs) {
  ctx.in_ptrs.clear();
  for (const Tensor* t : ctx.bound) ctx.in_ptrs.push_back(t->data());
  ctx.out_ptrs.clear();
  for (std::size_t j = 0; j < g.outputs.size(); ++j) {
    const std::string& name = g.outputs[j]->name;
    auto it = outputs.find(name);
    const TensorType& want = plan.output_type(j);
    if (it == outputs.end()) fail("output tensor '" + name + "' (" + want.str() + ") was not provided");
    const Tensor& t = it->second;
    if (t.dtype() != want.dtype || !same_dims(t.shape(), want.shape))
      fail("output '" + name + "': expected " + want.str() + ", got " + std::string(dtype_name(t.dtype())) +
           shape_to_string(t.shape()));
    if (!t.data() && t.numel() > 0) fail("output '" + name + "' has no data");
    ctx.out_ptrs.push_back(t.data());
  }
}
// What run and profile share: a run context with the inputs bound, the session's team size, the plan for
// those shapes leased, and the outputs bound. Released in reverse order.
class BoundRun {
 public:
  BoundRun(detail::SessionImpl& s, const std::map<std::string, Tensor>& inputs, std::map<std::string, Tensor>& outputs)
      : scope_(s), omp_(s.threads) {
    s.bind(scope_.ctx(), inputs);
    lease_.emplace(s, scope_.ctx());
    bind_outputs(*s.model->graph, lease_->plan(), scope_.ctx(), outputs);
  }
  detail::RunContext& ctx() { return scope_.ctx(); }
  Plan& plan() { return lease_->plan(); }

 private:
  detail::RunScope scope_;
  detail::OmpThreads omp_;
  std::optional<detail::PlanLease> lease_;
};

}  // namespace

void Session::run(const std::map<std::string, Tensor>& inputs, std::map<std::string, Tensor>& outputs) {
  return detail::no_bad_alloc("Session::run", [&] {
    BoundRun bound(*impl_, inputs, outputs);
    detail::RunContext& ctx = bound.ctx();
    Plan& plan = bound.plan();
    auto work = [&] { ctx.arena.execute([&] { plan.run(ctx.stream, ctx.in_ptrs.data(), ctx.out_ptrs.data()); }); };
    if (impl_->executor && impl_->shared_callers.load(std::memory_order_relaxed)) impl_->executor->run(work);
    else work();
  });
}

void Session::run_many(const std::vector<std::map<std::string, Tensor>>& inputs,
                       std::vector<std::map<std::string, Tensor>>& outputs) {
  return detail::no_bad_alloc("Session::run_many", [&] {
    if (inputs.size() != outputs.size())
      fail("run_many: " + std::to_string(inputs.size()) + " input sets but " + std::to_string(outputs.size()) +
           " output sets");
    std::mutex error_mu;
    std::exception_ptr first_error;
    impl_->requests.execute([&] {
      tbb::parallel_for(std::size_t{0}, inputs.size(), [&](std::size_t i) {
        try {
          run(inputs[i], outputs[i]);
        } catch (...) {
          std::lock_guard lock(error_mu);
          if (!first_error) first_error = std::current_exception();
        }
      });
    });
    if (first_error) std::rethrow_exception(first_error);
  });
}

std::size_t Session::plan_count() const {
  std::lock_guard lock(impl_->mu);
  return impl_->compiled;
}

MemoryStats Session::memory() const {
  std::lock_guard lock(impl_->mu);
  MemoryStats m;
  m.weight_bytes = impl_->model->weight_bytes;
  m.arena_bytes = impl_->arena_bytes;
  m.peak_arena_bytes = impl_->peak_arena_bytes;
  m.plans = impl_->plans.size();
  m.contexts = impl_->instances;
  m.memory_limit = impl_->options.memory_limit;
  return m;
}

const SessionOptions& Session::options() const { return impl_->options; }
int Session::threads_per_run() const { return impl_->threads; }
int Session::max_concurrent_runs() const { return impl_->concurrent; }

std::string Session::profile(const std::map<std::string, Tensor>& inputs, int runs) {
  return detail::no_bad_alloc("Session::profile", [&] {
    std::map<std::string, Tensor> outputs = run(inputs);  // warm-up; compiles the plan
    BoundRun bound(*impl_, inputs, outputs);
    detail::RunContext& ctx = bound.ctx();
    Plan& plan = bound.plan();
    const auto steps = plan.steps();
    std::vector<std::vector<double>> samples(steps.size());
    std::vector<double> ms;
    for (int r = 0; r < std::max(runs, 1); ++r) {
      ctx.arena.execute([&] { plan.profile(ctx.stream, ctx.in_ptrs.data(), ctx.out_ptrs.data(), ms); });
      for (std::size_t s = 0; s < steps.size(); ++s) samples[s].push_back(ms[s]);
    }
    std::vector<std::pair<double, std::size_t>> order;
    double total = 0;
    for (std::size_t s = 0; s < steps.size(); ++s) {
      auto& v = samples[s];
      std::sort(v.begin(), v.end());
      order.emplace_back(v[v.size() / 2], s);
      total += v[v.size() / 2];
    }
    std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
    std::ostringstream os;
    char line[512];
    std::snprintf(line, sizeof line, "%10s %6s  %-44s %s\n", "median ms", "share", "node", "kernel");
    os << line;
    for (const auto& [t, s] : order) {
      if (steps[s].impl == "view") continue;
      std::snprintf(line, sizeof line, "%10.4f %5.1f%%  %-44s %s\n", t, total > 0 ? 100.0 * t / total : 0.0,
                    steps[s].node->label().c_str(), steps[s].impl.c_str());
      os << line;
    }
    std::snprintf(line, sizeof line, "%10.4f 100.0%%  total of the per-node medians over %d runs\n", total,
                  std::max(runs, 1));
    os << line;
    return os.str();
  });
}

std::string Session::explain(const std::map<std::string, Tensor>& inputs) {
  return detail::no_bad_alloc("Session::explain", [&] {
    detail::RunScope scope(*impl_);
    impl_->bind(scope.ctx(), inputs);
    detail::OmpThreads omp(impl_->threads);
    detail::PlanLease lease(*impl_, scope.ctx());
    return lease.plan().describe();
  });
}

}  // namespace kiln
