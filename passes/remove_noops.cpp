// remove-noops: drops nodes that compute nothing at inference — dropout, reshape to the same shape,
// transpose by the identity permutation — and collapses reshape(reshape(x)) into one reshape.
//   %d = dropout(%x); %y = add(%d, %z)   ->   %y = add(%x, %z)

#include "passes/match.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

bool identity_perm(const Node& n) {
  const auto& perm = n.attr_ints("perm");
  for (std::size_t i = 0; i < perm.size(); ++i)
    if (perm[i] != static_cast<std::int64_t>(i)) return false;
  return true;
}

class RemoveNoops : public Pass {
 public:
  const char* name() const override { return "remove-noops"; }
  const char* summary() const override { return "drop dropout, identity reshape/transpose; merge chained reshapes"; }

  bool run(Graph& g, PassContext& ctx) override {
    std::vector<Node*> candidates;
    for (const auto& n : g.nodes())
      if (n->op == "dropout" || n->op == "reshape" || n->op == "transpose") candidates.push_back(n.get());
    bool changed = false;
    for (Node* n : candidates) {
      Value* in = n->inputs[0];
      Value* out = n->outputs[0];
      // reshape(reshape(x)) -> reshape(x): the outer one alone says where the elements go.
      if (n->op == "reshape") {
        if (Node* inner = producer_of(in, "reshape")) {
          // A 0 in the outer shape copies a dim of the inner reshape's output; reading from the inner
          // input instead, it must copy the same dim, or become that dim's concrete size.
          std::vector<std::int64_t> shape = n->attr_ints("shape");
          const Shape& mid = in->type.shape;
          const Shape& src = inner->inputs[0]->type.shape;
          bool ok = true;
          for (std::size_t i = 0; i < shape.size() && ok; ++i) {
            if (shape[i] != 0) continue;
            if (i < src.size() && src[i] == mid[i]) continue;
            if (mid[i].concrete()) shape[i] = mid[i].value;
            else ok = false;
          }
          if (ok) {
            g.set_input(n, 0, inner->inputs[0]);
            n->attrs["shape"] = shape;
            ctx.fired(*n, "reads through " + inner->label());
            changed = true;
            in = n->inputs[0];
          } else {
            ctx.declined(
                *n, "its shape copies a symbolic dim of " + inner->label() + " that its input does not have there");
          }
        }
      }
      bool noop = n->op == "dropout" || (n->op == "reshape" && in->type.shape == out->type.shape) ||
                  (n->op == "transpose" && identity_perm(*n));
      if (!noop) continue;
      if (g.is_output(out)) {
        ctx.declined(*n, "its output '" + out->name + "' is a graph output, whose name must stay");
        continue;
      }
      ctx.fired(*n, "removed: its uses now read '" + in->name + "'");
      g.replace_uses(out, in);
      g.remove_node(n);
      changed = true;
    }
    if (changed) g.compact();
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> make_remove_noops_pass() { return std::make_unique<RemoveNoops>(); }

}  // namespace kiln
