// fuse-conv-residual: add(conv2d(x), r) with r of the same shape becomes one conv2d whose kernel adds r
// with oneDNN's `sum` post-op (the output computed in r's buffer when nothing reads r afterwards). The
// conv must not apply an activation yet: conv2d applies its activation after the residual, so a later
// relu of the sum can still fold in (fuse-conv-activation).
//   %c = conv2d(%x, %w, %b); %s = add(%c, %r)   ->   %s = conv2d(%x, %w, %b, %r)

#include "passes/match.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

class FuseConvResidual : public Pass {
 public:
  const char* name() const override { return "fuse-conv-residual"; }
  const char* summary() const override { return "add(conv2d(x), r) -> conv2d with r added by a sum post-op"; }

  bool run(Graph& g, PassContext& ctx) override {
    std::vector<Node*> adds;
    for (const auto& n : g.nodes())
      if (n->op == "add") adds.push_back(n.get());
    bool changed = false;
    for (Node* add : adds) {
      // The later operand first: in `x + f(x)` it is the convolution.
      for (int side : {1, 0}) {
        Value* mid = add->inputs[side];
        Value* residual = add->inputs[1 - side];
        Node* conv = producer_of(mid, "conv2d");
        if (!conv) continue;
        if (input_or_null(conv, 3)) {
          ctx.declined(*conv, "it already adds a residual");
          continue;
        }
        if (conv->attr_string("activation") != "none") {
          ctx.declined(*conv, "it applies " + conv->attr_string("activation") + " before " + add->label());
          continue;
        }
        if (std::string why = why_not_single_use(g, mid); !why.empty()) {
          ctx.declined(*conv, why + ", so " + add->label() + " cannot be folded in");
          continue;
        }
        if (residual->type.shape != mid->type.shape || residual == mid) {
          ctx.declined(*conv, add->label() + " adds " + residual->type.str() + " to " + mid->type.str());
          continue;
        }
        ctx.fired(*conv, absorb_residual(g, conv, add, residual, 3));
        changed = true;
        break;
      }
    }
    if (changed) g.compact();
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> make_fuse_conv_residual_pass() { return std::make_unique<FuseConvResidual>(); }

}  // namespace kiln
