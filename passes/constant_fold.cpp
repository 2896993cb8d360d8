// constant-fold: a node whose inputs are all constants is computed once, at compile time, by the op's
// own kernel; its outputs become constants (views fold for free: they share their source's bytes).
//   %s = const; %t = mul(%s, %s)   ->   %t = const

#include "graph/schema.hpp"
#include "ops/evaluate.hpp"
#include "passes/pass.hpp"

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
        std::vector<ConstData> results = evaluate_constant_node(*n);
        for (std::size_t i = 0; i < results.size(); ++i) n->outputs[i]->constant = std::move(results[i]);
      }
      ctx.fired(*n, "computed at compile time");
      g.remove_node(n);
      changed = true;
    }
    if (changed) g.compact();
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> make_constant_fold_pass() { return std::make_unique<ConstantFold>(); }

}  // namespace kiln
