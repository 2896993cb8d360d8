// fuse-conv-activation: conv2d followed by relu / clip / silu / sigmoid / tanh becomes one conv2d that
// applies the activation as a oneDNN eltwise post-op (after its residual, if it has one: conv + add +
// relu, the ResNet block's end, is then one primitive).
//   %c = conv2d(%x, %w, %b); %r = clip(%c) {min=0.0, max=6.0}   ->   %r = conv2d(%x, %w, %b) {activation="clip", clip_min=0.0, clip_max=6.0}

#include "passes/match.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

bool is_activation(const std::string& op) {
  return op == "relu" || op == "clip" || op == "silu" || op == "sigmoid" || op == "tanh";
}

class FuseConvActivation : public Pass {
 public:
  const char* name() const override { return "fuse-conv-activation"; }
  const char* summary() const override { return "conv2d + relu/clip/silu/sigmoid/tanh -> conv2d with an eltwise post-op"; }

  bool run(Graph& g, PassContext& ctx) override {
    std::vector<Node*> candidates;
    for (const auto& n : g.nodes())
      if (is_activation(n->op)) candidates.push_back(n.get());
    bool changed = false;
    for (Node* act : candidates) {
      Value* mid = act->inputs[0];
      Node* conv = producer_of(mid, "conv2d");
      if (!conv) continue;
      if (conv->attr_string("activation") != "none") {
        ctx.declined(*conv, "it already applies " + conv->attr_string("activation") + "; " + act->label() + " stays");
        continue;
      }
      if (std::string why = why_not_single_use(g, mid); !why.empty()) {
        ctx.declined(*conv, why + ", so " + act->label() + " cannot be folded in");
        continue;
      }
      if (act->op == "clip") {
        conv->attrs["clip_min"] = act->attr("min");
        conv->attrs["clip_max"] = act->attr("max");
      }
      conv->attrs["activation"] = act->op;
      std::string absorbed = act->label();
      Value* out = act->outputs[0];
      g.remove_node(act);
      g.set_output(conv, 0, out);
      ctx.fired(*conv, "absorbed " + absorbed);
      changed = true;
    }
    if (changed) g.compact();
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> make_fuse_conv_activation_pass() { return std::make_unique<FuseConvActivation>(); }

}  // namespace kiln
