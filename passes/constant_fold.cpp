// constant-fold: a node whose inputs are all constants is computed once, at compile time, by the op's
// own kernel; its outputs become constants (views fold for free: they share their source's bytes).
//   %s = const; %t = mul(%s, %s)   ->   %t = const

#include <cstdlib>
#include <cstring>

#include "passes/pass.hpp"
#include "runtime/model_impl.hpp"
#include "runtime/plan.hpp"

namespace kiln {
namespace {

constexpr std::size_t kMaxFoldedBytes = std::size_t{256} << 20;  // never materialize more than this

class ConstantFold : public Pass {
 public:
  const char* name() const override { return "constant-fold"; }
  const char* summary() const override { return "compute nodes whose inputs are all constants at compile time"; }

  bool run(Graph& g, PassContext& ctx) override {
    bool changed = false;
    std::vector<Node*> nodes;
    for (const auto& n : g.nodes()) nodes.push_back(n.get());
    for (Node* n : nodes) {
      bool all_constant = !n->inputs.empty();
      for (const Value* v : n->inputs) all_constant = all_constant && (!v || v->is_constant());
      if (!all_constant) continue;
      std::size_t bytes = 0;
      for (const Value* out : n->outputs)
        bytes += static_cast<std::size_t>(numel_of(out->type.shape)) * dtype_size(out->type.dtype);
      if (bytes > kMaxFoldedBytes) {
        ctx.declined(*n, "its result would take " + std::to_string(bytes) + " bytes");
        continue;
      }
      if (n->schema->view_of >= 0) {
        const Value* src = n->inputs[n->schema->view_of];
        n->outputs[0]->constant = src->constant;
      } else {
        fold(*n);
      }
      ctx.fired(*n, "computed at compile time");
      g.remove_node(n);
      changed = true;
    }
    if (changed) g.compact();
    return changed;
  }

 private:
  // Runs the node alone: a one-node graph whose inputs are the constants, through a Plan.
  static void fold(Node& n) {
    Graph one;
    std::vector<Value*> ins;
    for (Value* v : n.inputs)
      ins.push_back(v ? one.add_constant(v->name, v->type, v->constant) : nullptr);
    std::vector<Value*> outs;
    for (Value* v : n.outputs) outs.push_back(one.add_value(v->name, v->type));
    one.add_node(n.op, n.name, ins, outs, n.attrs, n.loc);
    one.outputs = outs;
    Plan plan(one, {}, detail::cpu_engine());
    std::vector<void*> buffers;
    for (Value* v : n.outputs) {
      std::size_t bytes = static_cast<std::size_t>(numel_of(v->type.shape)) * dtype_size(v->type.dtype);
      void* p = std::aligned_alloc(64, std::max<std::size_t>((bytes + 63) / 64 * 64, 64));
      if (!p) n.fail("out of memory while folding a constant");
      std::shared_ptr<const void> owner(p, [](const void* q) { std::free(const_cast<void*>(q)); });
      v->constant = ConstData{p, bytes, owner};
      buffers.push_back(p);
    }
    dnnl::stream stream(detail::cpu_engine());
    plan.run(stream, nullptr, buffers.data());
  }
};

}  // namespace

std::unique_ptr<Pass> make_constant_fold_pass() { return std::make_unique<ConstantFold>(); }

}  // namespace kiln
