// fuse-linear-residual: add(linear(...), r) with r of the same shape becomes one linear whose kernel
// adds r as a oneDNN binary post-op (after any fused activation).
//   %f = linear(%h1, %w, %b); %r2 = add(%n1, %f)   ->   %r2 = linear(%h1, %w, %b, %n1)

#include "passes/match.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

class FuseLinearResidual : public Pass {
 public:
  const char* name() const override { return "fuse-linear-residual"; }
  const char* summary() const override { return "add(linear(x), r) -> linear with r added as a binary post-op"; }

  bool run(Graph& g, PassContext& ctx) override {
    std::vector<Node*> adds;
    for (const auto& n : g.nodes())
      if (n->op == "add") adds.push_back(n.get());
    bool changed = false;
    for (Node* add : adds) {
      // Try the second operand first: `x + f(x)` is the usual residual form.
      for (int side : {1, 0}) {
        Value* mid = add->inputs[side];
        Value* residual = add->inputs[1 - side];
        Node* lin = producer_of(mid, "linear");
        if (!lin) continue;
        if (input_or_null(lin, 3)) {
          ctx.declined(*lin, "it already adds a residual");
          continue;
        }
        if (std::string why = why_not_single_use(g, mid); !why.empty()) {
          ctx.declined(*lin, why + ", so " + add->label() + " cannot be folded in");
          continue;
        }
        if (residual->type.shape != mid->type.shape) {
          ctx.declined(*lin, add->label() + " broadcasts " + residual->type.str() + " onto " + mid->type.str());
          continue;
        }
        ctx.fired(*lin, absorb_residual(g, lin, add, residual, 3));
        changed = true;
        break;
      }
    }
    if (changed) g.compact();
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> make_fuse_linear_residual_pass() { return std::make_unique<FuseLinearResidual>(); }

}  // namespace kiln
