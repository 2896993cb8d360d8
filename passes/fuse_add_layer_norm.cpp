// fuse-add-layer-norm: layer_norm(add(a, b)) with a and b of the same shape becomes one layer_norm
// that sums its two inputs row by row before normalizing (the post-norm residual).
//   %r1 = add(%x, %a); %n1 = layer_norm(%r1, %w, %b)   ->   %n1 = layer_norm(%x, %w, %b, %a)

#include "passes/match.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

class FuseAddLayerNorm : public Pass {
 public:
  const char* name() const override { return "fuse-add-layer-norm"; }
  const char* summary() const override { return "layer_norm(a + b) -> layer_norm that adds its residual input"; }

  bool run(Graph& g, PassContext& ctx) override {
    std::vector<Node*> norms;
    for (const auto& n : g.nodes())
      if (n->op == "layer_norm") norms.push_back(n.get());
    bool changed = false;
    for (Node* ln : norms) {
      Value* sum = ln->inputs[0];
      Node* add = producer_of(sum, "add");
      if (!add) continue;
      if (input_or_null(ln, 3)) {
        ctx.declined(*ln, "it already adds a residual");
        continue;
      }
      if (std::string why = why_not_single_use(g, sum); !why.empty()) {
        ctx.declined(*ln, add->label() + ": " + why);
        continue;
      }
      Value* a = add->inputs[0];
      Value* b = add->inputs[1];
      if (a->type.shape != b->type.shape) {
        ctx.declined(*ln, add->label() + " broadcasts " + a->type.str() + " and " + b->type.str());
        continue;
      }
      std::string absorbed = add->label();
      g.remove_node(add);
      while (ln->inputs.size() < 3) g.set_input(ln, ln->inputs.size(), nullptr);
      g.set_input(ln, 0, a);
      g.set_input(ln, 3, b);
      ctx.fired(*ln, "absorbed " + absorbed);
      changed = true;
    }
    if (changed) g.compact();
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> make_fuse_add_layer_norm_pass() { return std::make_unique<FuseAddLayerNorm>(); }

}  // namespace kiln
