#include "runtime/plan.hpp"

#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <cstring>
#include <fstream>
#include <sstream>

#include "graph/checked.hpp"
#include "ops/common.hpp"
#include "ops/isa.hpp"

namespace kiln {

namespace {

struct Interval {
  std::size_t bytes;
  int first, last;  // steps during which the buffer is live, inclusive
  std::size_t offset = 0;
};

// Greedy best-fit by decreasing size: each buffer takes the lowest offset that does not overlap a
// buffer live at the same time. Returns the arena size.
std::size_t place(std::vector<Interval*>& buffers) {
  std::sort(buffers.begin(), buffers.end(), [](auto* a, auto* b) { return a->bytes > b->bytes; });
  std::vector<Interval*> placed;
  std::size_t total = 0;
  for (Interval* buf : buffers) {
    std::vector<std::pair<std::size_t, std::size_t>> busy;
    for (Interval* p : placed)
      if (p->first <= buf->last && buf->first <= p->last) busy.emplace_back(p->offset, p->offset + p->bytes);
    std::sort(busy.begin(), busy.end());
    std::size_t offset = 0;
    for (auto [lo, hi] : busy) {
      if (offset + buf->bytes <= lo) break;
      offset = std::max(offset, hi);
    }
    buf->offset = offset;
    total = std::max(total, offset + buf->bytes);
    placed.push_back(buf);
  }
  return total;
}

std::size_t aligned(std::size_t bytes) { return (bytes + 63) / 64 * 64; }

std::size_t saturating_add(std::size_t a, std::size_t b) {
  return static_cast<std::size_t>(checked::add_u64(a, b).value_or(static_cast<std::uint64_t>(checked::kMaxSize)));
}

// Memory a node's kernel allocates outside the arena while it runs, as its schema states it.
std::size_t working_bytes_of(const Node& n, const std::vector<TensorType>& types) {
  if (!n.schema || !n.schema->working_bytes) return 0;
  std::vector<const TensorType*> in;
  for (const Value* v : n.inputs) in.push_back(v ? &types[v->id] : nullptr);
  return n.schema->working_bytes(n, in);
}

}  // namespace

std::size_t physical_memory_bytes() {
  const long pages = sysconf(_SC_PHYS_PAGES), page = sysconf(_SC_PAGESIZE);
  std::size_t bytes = pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) : 0;
  std::ifstream cgroup("/sys/fs/cgroup/memory.max");  // cgroup v2; "max" when unlimited
  unsigned long long limit = 0;
  if (cgroup >> limit && limit > 0 && (bytes == 0 || limit < bytes)) bytes = static_cast<std::size_t>(limit);
  return bytes;
}

std::string Plan::inputs_str() const {
  std::string out;
  for (const Value* in : graph_.inputs) out += (out.empty() ? "" : ", ") + in->name + " " + types_[in->id].str();
  return out;
}

void Plan::refuse(bool at_least, std::size_t need, const std::string& detail, std::size_t physical) const {
  fail("not enough memory: a run on " + inputs_str() + " needs " + (at_least ? "at least " : "") +
       std::to_string(need) + " bytes (" + detail + "), more than this machine's physical memory of " +
       std::to_string(physical) + " bytes");
}

struct Plan::Buffers {
  std::vector<int> root;            // the value whose buffer each value lives in (views, in-place outputs)
  std::vector<int> output_index;    // the graph output a value is computed straight into, or -1
  std::vector<Interval> intervals;  // per value, then per step (its scratch)
  int last_step = 0;                // graph outputs stay live to the end
};

Plan::Plan(const Graph& graph, const std::vector<std::vector<std::int64_t>>& input_dims, const dnnl::engine& engine,
           bool allocate, std::size_t memory_limit)
    : graph_(graph) {
  const std::size_t physical = physical_memory_bytes();
  bind_types(input_dims);
  check_tensor_sizes(physical);
  check_layouts();
  Buffers b;
  find_buffers(b);
  share_in_place(b);
  make_steps(engine, b);
  place_arena(b, memory_limit, physical);
  if (allocate) allocate_arena();
}

// Concrete types for every value: the inputs' dims, then the same shape rules over concrete input types.
void Plan::bind_types(const std::vector<std::vector<std::int64_t>>& input_dims) {
  const Graph& graph = graph_;
  const std::size_t nv = graph.num_values();
  types_.resize(nv);
  locs_.resize(nv);
  for (const auto& v : graph.values()) types_[v->id] = v->type;
  for (std::size_t i = 0; i < graph.inputs.size(); ++i) {
    Value* in = graph.inputs[i];
    types_[in->id].shape = concrete_shape(input_dims.at(i));
    locs_[in->id] = Loc{Where::Input, static_cast<int>(i), 0, nullptr};
  }
  for (const auto& v : graph.values())
    if (v->is_constant()) locs_[v->id] = Loc{Where::Constant, 0, 0, v->constant.data};
  for (const auto& n : graph.nodes()) {
    std::vector<const TensorType*> in;
    for (Value* v : n->inputs) in.push_back(v ? &types_[v->id] : nullptr);
    auto out = n->schema->infer(ShapeCtx(*n, std::move(in)));
    for (std::size_t i = 0; i < out.size(); ++i) types_[n->outputs[i]->id] = std::move(out[i]);
  }
}

// Sizes, checked (the shapes come from the caller's tensors), and a first memory check before any kernel
// or buffer is made: the largest tensor a run writes plus the kernels' working memory.
void Plan::check_tensor_sizes(std::size_t physical) {
  const Graph& graph = graph_;
  std::size_t largest = 0;
  for (const auto& n : graph.nodes()) {
    for (const Value* v : n->outputs) {
      const TensorType& t = types_[v->id];
      const auto bytes = checked::tensor_bytes(dims_of(t.shape), dtype_size(t.dtype));
      if (!bytes)
        n->fail("output '" + v->name + "' would be " + t.str() + ": its size in bytes exceeds " +
                std::to_string(checked::kMaxSize));
      largest = std::max(largest, static_cast<std::size_t>(*bytes));
    }
    working_bytes_ = std::max(working_bytes_, working_bytes_of(*n, types_));
  }
  if (physical && saturating_add(largest, working_bytes_) > physical)
    refuse(true, saturating_add(largest, working_bytes_),
           "its largest tensor " + std::to_string(largest) + " bytes" +
               (working_bytes_ ? ", attention working memory " + std::to_string(working_bytes_) + " bytes" : ""),
           physical);
}

// Layouts: every kernel gets its inputs in the layout it needs (the assign-layouts pass inserts the
// reorders), and the caller gets plain outputs.
void Plan::check_layouts() const {
  const Graph& graph = graph_;
  for (const auto& n : graph.nodes()) {
    const std::string want = n->schema->required_layout(*n);
    for (std::size_t i = 0; i < n->inputs.size(); ++i) {
      const Value* v = n->inputs[i];
      if (v && types_[v->id].layout != want && !(v->is_constant() && n->schema->is_weight_input(i)))
        n->fail("needs its inputs in layout " + (want.empty() ? std::string("plain") : want) + ", but '" + v->name +
                "' is " + types_[v->id].str() + " (the assign-layouts pass inserts reorders)");
    }
  }
  for (const Value* out : graph.outputs)
    if (!types_[out->id].plain())
      fail("graph output '" + out->name + "' is " + types_[out->id].str() +
           "; outputs must be plain (the assign-layouts pass reorders them)");
}

// Views alias their source: each value's root buffer. Graph outputs a node computes are written straight
// into the caller's buffer; the others (inputs, constants, views) are copied there after the run.
void Plan::find_buffers(Buffers& b) {
  const Graph& graph = graph_;
  const std::size_t nv = graph.num_values();
  b.root.resize(nv);
  std::vector<int>& root = b.root;
  for (std::size_t i = 0; i < nv; ++i) root[i] = static_cast<int>(i);
  for (const auto& n : graph.nodes())
    if (n->schema->view_of >= 0) root[n->outputs[0]->id] = root[n->inputs[n->schema->view_of]->id];
  b.output_index.assign(nv, -1);
  std::vector<int>& output_index = b.output_index;
  for (std::size_t j = 0; j < graph.outputs.size(); ++j) {
    const Value* out = graph.outputs[j];
    bool computed_here = out->producer && out->producer->schema->view_of < 0;
    if (computed_here && output_index[out->id] < 0) output_index[out->id] = static_cast<int>(j);
    else copy_outputs_.push_back(static_cast<int>(j));
  }
  b.last_step = static_cast<int>(graph.nodes().size());
}

// In place: an output may take over an input's buffer when that buffer is read by nothing after this
// node (its last use, views of it included) and has the same size. Buffers are groups of values sharing
// one root; the decision merges the output's group into the input's.
void Plan::share_in_place(Buffers& b) const {
  const Graph& graph = graph_;
  const std::size_t nv = graph.num_values();
  std::vector<int>& root = b.root;
  const std::vector<int>& output_index = b.output_index;
  const int last_step = b.last_step;
  std::vector<int> group_last(nv, -1);
  int s = 0;
  for (const auto& n : graph.nodes()) {
    for (Value* v : n->inputs)
      if (v) group_last[root[v->id]] = std::max(group_last[root[v->id]], s);
    ++s;
  }
  for (const Value* out : graph.outputs) group_last[root[out->id]] = last_step;
  auto bytes_of = [&](int v) { return buffer_bytes(types_[v]); };
  s = 0;
  for (const auto& n : graph.nodes()) {
    const int out = n->outputs.empty() ? -1 : n->outputs[0]->id;
    if (out >= 0 && n->schema->view_of < 0 && output_index[out] < 0) {
      for (int i : n->schema->in_place) {
        const Value* in = i < static_cast<int>(n->inputs.size()) ? n->inputs[i] : nullptr;
        if (!in) continue;
        const int r = root[in->id];
        const Value* rv = graph.values()[r].get();
        bool arena = rv->producer && rv->producer->schema->view_of < 0 && !rv->is_constant() && output_index[r] < 0;
        if (!arena || group_last[r] != s || bytes_of(r) != bytes_of(out)) continue;
        for (std::size_t w = 0; w < nv; ++w)
          if (root[w] == out) root[w] = r;
        group_last[r] = group_last[out];
        break;
      }
    }
    ++s;
  }
}

// Kernels, and liveness of every buffer the arena holds.
void Plan::make_steps(const dnnl::engine& engine, Buffers& b) {
  const Graph& graph = graph_;
  const std::size_t nv = graph.num_values();
  const std::vector<int>& root = b.root;
  const std::vector<int>& output_index = b.output_index;
  b.intervals.assign(nv + graph.nodes().size(), Interval{0, -1, -1});
  std::vector<Interval>& intervals = b.intervals;
  int step_index = 0;
  for (const auto& n : graph.nodes()) {
    Step step;
    step.node = n.get();
    for (Value* v : n->inputs) {
      step.in_values.push_back(v ? v->id : -1);
      if (v) intervals[root[v->id]].last = std::max(intervals[root[v->id]].last, step_index);
    }
    for (Value* v : n->outputs) step.out_values.push_back(v->id);
    step.in_ptrs.resize(n->inputs.size());
    step.out_ptrs.resize(n->outputs.size());
    if (n->schema->view_of < 0) {
      KernelCtx kctx{*n, {}, {}, engine};
      for (Value* v : n->inputs) kctx.in.push_back(v ? types_[v->id] : TensorType{});
      for (Value* v : n->outputs) kctx.out.push_back(types_[v->id]);
      try {
        step.kernel = n->schema->make_kernel(kctx);
      } catch (const dnnl::error& e) {
        n->fail(std::string("oneDNN could not create a kernel: ") + e.what());
      }
      for (Value* v : n->outputs) {
        if (output_index[v->id] >= 0) {
          locs_[v->id] = Loc{Where::Output, output_index[v->id], 0, nullptr};
          continue;
        }
        if (root[v->id] != v->id) {  // computed in place, in its input's buffer
          ++in_place_;
          continue;
        }
        auto& iv = intervals[v->id];
        iv.bytes = aligned(buffer_bytes(types_[v->id]));
        iv.first = step_index;
        iv.last = std::max(iv.last, step_index);
        locs_[v->id].where = Where::Arena;
      }
      auto& scratch = intervals[nv + step_index];
      scratch.bytes = aligned(step.kernel->scratch_bytes());
      scratch.first = scratch.last = step_index;
    }
    steps_.push_back(std::move(step));
    ++step_index;
  }
  for (int j : copy_outputs_) {
    int r = root[graph.outputs[j]->id];
    intervals[r].last = b.last_step;
  }
}

// Offsets in one arena for every buffer live at the same time, and the memory checks on its size.
void Plan::place_arena(Buffers& b, std::size_t memory_limit, std::size_t physical) {
  const std::size_t nv = graph_.num_values();
  std::vector<Interval>& intervals = b.intervals;
  std::vector<Interval*> buffers;
  for (std::size_t i = 0; i < intervals.size(); ++i) {
    bool arena_value = i < nv && locs_[i].where == Where::Arena;
    if ((arena_value || i >= nv) && intervals[i].bytes > 0) buffers.push_back(&intervals[i]);
  }
  {
    // place() adds offsets and sizes: their sum bounds every one of them, so check it once.
    std::size_t sum = 0;
    for (const Interval* buffer : buffers) sum = saturating_add(sum, buffer->bytes);
    if (sum >= static_cast<std::size_t>(checked::kMaxSize))
      fail("a run on " + inputs_str() + " needs more than " + std::to_string(checked::kMaxSize) + " bytes of memory");
  }
  arena_bytes_ = place(buffers);
  // The session's memory_limit caps activation arenas (SessionOptions::memory_limit); physical memory
  // bounds everything a run needs.
  if (memory_limit && arena_bytes_ > memory_limit)
    fail("memory limit: a run on " + inputs_str() + " needs an activation arena of " + std::to_string(arena_bytes_) +
         " bytes, more than the session's memory_limit of " + std::to_string(memory_limit) + " bytes");
  if (physical && saturating_add(arena_bytes_, working_bytes_) > physical)
    refuse(false, saturating_add(arena_bytes_, working_bytes_),
           "activation arena " + std::to_string(arena_bytes_) + " bytes" +
               (working_bytes_ ? ", attention working memory " + std::to_string(working_bytes_) + " bytes" : ""),
           physical);
  for (std::size_t i = 0; i < nv; ++i)
    if (locs_[i].where == Where::Arena) locs_[i].offset = intervals[i].offset;
  for (std::size_t s = 0; s < steps_.size(); ++s) steps_[s].scratch_offset = intervals[nv + s].offset;
  for (std::size_t i = 0; i < nv; ++i)
    if (b.root[i] != static_cast<int>(i)) locs_[i] = locs_[b.root[i]];
}

void Plan::allocate_arena() {
  if (arena_) return;
  void* mem = std::aligned_alloc(64, std::max<std::size_t>(arena_bytes_, 64));
  if (!mem) fail("out of memory allocating an arena of " + std::to_string(arena_bytes_) + " bytes");
  arena_ = std::shared_ptr<char>(static_cast<char*>(mem), [](char* p) { std::free(p); });
}

Plan::~Plan() = default;

void* Plan::resolve(int value, const void* const* inputs, void* const* outputs) const {
  const Loc& loc = locs_[value];
  switch (loc.where) {
    case Where::Input: return const_cast<void*>(inputs[loc.index]);
    case Where::Output: return outputs[loc.index];
    case Where::Constant: return const_cast<void*>(loc.constant);
    case Where::Arena: return arena_.get() + loc.offset;
    case Where::None: break;
  }
  return nullptr;
}

void Plan::run(dnnl::stream& stream, const void* const* inputs, void* const* outputs) {
  run_steps(stream, inputs, outputs, nullptr);
}

void Plan::profile(dnnl::stream& stream, const void* const* inputs, void* const* outputs,
                   std::vector<double>& step_ms) {
  step_ms.assign(steps_.size(), 0.0);
  run_steps(stream, inputs, outputs, &step_ms);
}

std::vector<Plan::StepInfo> Plan::steps() const {
  std::vector<StepInfo> out;
  for (const auto& step : steps_)
    out.push_back(StepInfo{step.node, step.kernel ? step.kernel->impl() : std::string("view")});
  return out;
}

void Plan::run_steps(dnnl::stream& stream, const void* const* inputs, void* const* outputs,
                     std::vector<double>* step_ms) {
  for (std::size_t s = 0; s < steps_.size(); ++s) {
    Step& step = steps_[s];
    if (!step.kernel) continue;
    auto t0 = step_ms ? std::chrono::steady_clock::now() : std::chrono::steady_clock::time_point{};
    for (std::size_t i = 0; i < step.in_values.size(); ++i)
      step.in_ptrs[i] = step.in_values[i] < 0 ? nullptr : resolve(step.in_values[i], inputs, outputs);
    for (std::size_t i = 0; i < step.out_values.size(); ++i)
      step.out_ptrs[i] = resolve(step.out_values[i], inputs, outputs);
    KernelArgs args{step.in_ptrs.data(), step.out_ptrs.data(), arena_.get() + step.scratch_offset};
    step.kernel->execute(stream, args);
    if (step_ms) {
      stream.wait();
      (*step_ms)[s] = std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    }
  }
  stream.wait();
  for (int j : copy_outputs_) {
    const Value* v = graph_.outputs[j];
    const TensorType& t = types_[v->id];
    std::memcpy(outputs[j], resolve(v->id, inputs, outputs),
                static_cast<std::size_t>(numel_of(t.shape)) * dtype_size(t.dtype));
  }
}

std::string Plan::describe() const {
  std::ostringstream os;
  for (const auto& step : steps_) {
    os << step.node->label() << " -> " << types_[step.node->outputs[0]->id].str() << "  ["
       << (step.kernel ? step.kernel->impl() : std::string("view")) << "]\n";
  }
  std::size_t weight_bytes = 0, weights = 0, quantized_bytes = 0, quantized = 0;
  for (const auto& v : graph_.values())
    if (v->is_constant() && !v->users.empty()) {
      weight_bytes += v->constant.bytes;
      ++weights;
      if (quantized_format(v->type)) {
        quantized_bytes += v->constant.bytes;
        ++quantized;
      }
    }
  std::size_t kernels = 0, reorders = 0, packed = 0;
  for (const auto& step : steps_) {
    kernels += step.kernel ? 1 : 0;
    packed += step.kernel ? step.kernel->packed_weight_bytes() : 0;
    reorders += step.node->op == "reorder" ? 1 : 0;
  }
  os << "kernels: " << kernels << " (" << in_place_ << " writing in place), reorders: " << reorders << "\n";
  os << "activation arena: " << arena_bytes_ << " bytes (peak, intermediates and kernel scratch)\n";
  os << "weights: " << weight_bytes << " bytes in " << weights << " tensors\n";
  if (quantized > 0)
    os << "quantized weights: " << quantized_bytes << " bytes in " << quantized
       << " tensors (s8/bf16 panels, docs/quantization.md)\n";
  if (packed > 0)
    os << "packed weights: " << packed
       << " bytes (Kiln's GEMM panels, made once and shared by every plan of these "
          "weights)\n";
  os << "instruction set: " << isa::describe() << "\n";
  return os.str();
}

}  // namespace kiln
