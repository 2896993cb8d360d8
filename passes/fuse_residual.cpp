// fuse-residual: add(node(...), r), where node's schema takes a residual input (OpSchema::post_ops:
// linear, conv2d) and r has the output's shape, becomes one node with r as that input: linear adds it as
// the last step of its epilogue (a oneDNN binary post-op off Kiln's GEMM), conv2d with oneDNN's `sum`
// post-op (the output computed in r's buffer when nothing reads r afterwards).
//   %f = linear(%h1, %w, %b); %r2 = add(%n1, %f)   ->   %r2 = linear(%h1, %w, %b, %n1)
//   %c = conv2d(%x, %w, %b); %s = add(%c, %r)   ->   %s = conv2d(%x, %w, %b, %r)
// It runs twice (PostOpStage), like fuse-activation: early for ops that add the residual after their
// activation (linear: any fused activation stays), late, after fold-conv-batch-norm, for ops that apply
// the activation after the residual (conv2d: it must not apply one yet, so that a later relu of the sum
// can still fold in).

#include "graph/schema.hpp"
#include "passes/match.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

// The producer of `v` when its schema takes a residual in `stage`, else null.
Node* absorber_of(const Value* v, PostOpStage stage) {
  Node* p = v ? v->producer : nullptr;
  if (!p || !p->schema || p->schema->post_ops.residual < 0) return nullptr;
  return p->schema->post_ops.activation_first == (stage == PostOpStage::ActivationFirst) ? p : nullptr;
}

class FuseResidual : public Pass {
 public:
  explicit FuseResidual(PostOpStage stage) : stage_(stage) {
    const std::string ops = post_op_ops(stage);
    summary_ = "add(" + ops + "(x), r) -> " + ops + " adding r as a post-op (" + stage_str(stage) + ")";
  }
  const char* name() const override { return "fuse-residual"; }
  const char* summary() const override { return summary_.c_str(); }

  bool run(Graph& g, PassContext& ctx) override {
    const bool activation_first = stage_ == PostOpStage::ActivationFirst;
    std::vector<Node*> adds;
    for (const auto& n : g.nodes())
      if (n->op == "add") adds.push_back(n.get());
    bool changed = false;
    for (Node* add : adds) {
      // Try the second operand first: `x + f(x)` is the usual residual form.
      for (int side : {1, 0}) {
        Value* mid = add->inputs[side];
        Value* residual = add->inputs[1 - side];
        Node* node = absorber_of(mid, stage_);
        if (!node) continue;
        const auto slot = static_cast<std::size_t>(node->schema->post_ops.residual);
        if (input_or_null(node, slot)) {
          ctx.declined(*node, "it already adds a residual");
          continue;
        }
        if (!activation_first && node->attr_string("activation") != "none") {
          ctx.declined(*node, "it applies " + node->attr_string("activation") + " before " + add->label());
          continue;
        }
        if (std::string why = why_not_single_use(g, mid); !why.empty()) {
          ctx.declined(*node, why + ", so " + add->label() + " cannot be folded in");
          continue;
        }
        if (residual->type.shape != mid->type.shape || residual == mid) {
          // (The two wordings are those of the linear and conv2d passes this one replaced.)
          ctx.declined(*node, activation_first
                                  ? add->label() + " broadcasts " + residual->type.str() + " onto " + mid->type.str()
                                  : add->label() + " adds " + residual->type.str() + " to " + mid->type.str());
          continue;
        }
        ctx.fired(*node, absorb_residual(g, node, add, residual, slot));
        changed = true;
        break;
      }
    }
    if (changed) g.compact();
    return changed;
  }

 private:
  PostOpStage stage_;
  std::string summary_;
};

}  // namespace

std::unique_ptr<Pass> make_fuse_residual_pass(PostOpStage stage) { return std::make_unique<FuseResidual>(stage); }

}  // namespace kiln
