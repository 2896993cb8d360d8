// fuse-activation: a unary activation (relu, gelu, clip, silu, ... : graph/activation.hpp) whose input is
// the only use of a node whose schema accepts it (OpSchema::post_ops: linear, conv2d) becomes that node's
// `activation` attribute (its parameters the <activation>_<param> attributes): the kernel applies it as
// its GEMM epilogue or a oneDNN eltwise post-op.
//   %h = linear(%x, %w, %b); %h1 = relu(%h)   ->   %h1 = linear(%x, %w, %b) {activation="relu"}
//   %c = conv2d(%x, %w, %b); %r = clip(%c) {min=0.0, max=6.0}   ->   %r = conv2d(%x, %w, %b) {activation="clip", clip_min=0.0, clip_max=6.0}
// It runs twice (PostOpStage): early for ops that apply the activation before their residual (linear: a
// node with a residual already cannot take one), late, after fuse-residual, for those that apply it after
// (conv2d: conv + add + relu, the ResNet block's end, becomes one primitive).

#include "graph/schema.hpp"
#include "passes/match.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

// The producer of `v` when its schema takes activations in `stage`, else null.
Node* absorber_of(const Value* v, PostOpStage stage) {
  Node* p = v ? v->producer : nullptr;
  if (!p || !p->schema || !p->schema->post_ops.activations) return nullptr;
  return p->schema->post_ops.activation_first == (stage == PostOpStage::ActivationFirst) ? p : nullptr;
}

class FuseActivation : public Pass {
 public:
  explicit FuseActivation(PostOpStage stage) : stage_(stage) {
    const std::string ops = post_op_ops(stage);
    summary_ = ops + " + an activation it accepts -> " + ops + " applying it as a post-op (" + stage_str(stage) + ")";
  }
  const char* name() const override { return "fuse-activation"; }
  const char* summary() const override { return summary_.c_str(); }

  bool run(Graph& g, PassContext& ctx) override {
    std::vector<Node*> candidates;
    for (const auto& n : g.nodes())
      if (activation_of(*n)) candidates.push_back(n.get());
    bool changed = false;
    for (Node* act : candidates) {
      const ActivationDef& a = *activation_of(*act);
      Value* mid = act->inputs[0];
      Node* node = absorber_of(mid, stage_);
      if (!node || !node->schema->post_ops.accepts(a)) continue;
      const PostOps& post_ops = node->schema->post_ops;
      if (node->attr_string("activation") != "none") {
        ctx.declined(*node, "it already applies " + node->attr_string("activation") + "; " + act->label() + " stays");
        continue;
      }
      if (post_ops.activation_first && input_or_null(node, static_cast<std::size_t>(post_ops.residual))) {
        ctx.declined(*node, "it already adds a residual, which must come after the activation");
        continue;
      }
      if (std::string why = why_not_single_use(g, mid); !why.empty()) {
        ctx.declined(*node, why + ", so " + act->label() + " cannot be folded in");
        continue;
      }
      node->attrs["activation"] = std::string(a.name);
      for (std::size_t i = 0; i < a.params.size(); ++i) node->attrs[a.param_attr(i)] = act->attr(a.params[i].name);
      std::string absorbed = act->label();
      Value* out = act->outputs[0];
      g.remove_node(act);
      g.set_output(node, 0, out);
      ctx.fired(*node, "absorbed " + absorbed);
      changed = true;
    }
    if (changed) g.compact();
    return changed;
  }

 private:
  PostOpStage stage_;
  std::string summary_;
};

}  // namespace

const char* stage_str(PostOpStage stage) {
  return stage == PostOpStage::ActivationFirst ? "ops whose activation precedes the residual"
                                               : "ops whose activation follows the residual";
}

std::string post_op_ops(PostOpStage stage) {
  std::string out;
  for (const OpSchema* s : all_ops())
    if ((s->post_ops.activations || s->post_ops.residual >= 0) &&
        s->post_ops.activation_first == (stage == PostOpStage::ActivationFirst))
      out += (out.empty() ? "" : "/") + s->name;
  return out;
}

std::unique_ptr<Pass> make_fuse_activation_pass(PostOpStage stage) { return std::make_unique<FuseActivation>(stage); }

}  // namespace kiln
