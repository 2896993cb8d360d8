// fuse-linear-activation: linear followed by relu / gelu / tanh / sigmoid becomes one linear whose
// kernel applies the activation as a oneDNN eltwise post-op.
//   %h = linear(%x, %w, %b); %h1 = relu(%h)   ->   %h1 = linear(%x, %w, %b) {activation="relu"}

#include "passes/match.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

class FuseLinearActivation : public Pass {
 public:
  const char* name() const override { return "fuse-linear-activation"; }
  const char* summary() const override { return "linear + relu/gelu/tanh/sigmoid -> linear with an eltwise post-op"; }

  bool run(Graph& g, PassContext& ctx) override {
    std::vector<Node*> candidates;
    for (const auto& n : g.nodes())
      if (n->op == "relu" || n->op == "gelu" || n->op == "tanh" || n->op == "sigmoid") candidates.push_back(n.get());
    bool changed = false;
    for (Node* act : candidates) {
      Value* mid = act->inputs[0];
      Node* lin = producer_of(mid, "linear");
      if (!lin) continue;
      if (lin->attr_string("activation") != "none") {
        ctx.declined(*lin, "it already applies " + lin->attr_string("activation") + "; " + act->label() + " stays");
        continue;
      }
      if (input_or_null(lin, 3)) {
        ctx.declined(*lin, "it already adds a residual, which must come after the activation");
        continue;
      }
      if (std::string why = why_not_single_use(g, mid); !why.empty()) {
        ctx.declined(*lin, why + ", so " + act->label() + " cannot be folded in");
        continue;
      }
      std::string activation = act->op;
      if (act->op == "gelu" && act->attr_string("approximate") == "tanh") activation = "gelu_tanh";
      std::string absorbed = act->label();
      Value* out = act->outputs[0];
      g.remove_node(act);
      g.set_output(lin, 0, out);
      lin->attrs["activation"] = activation;
      ctx.fired(*lin, "absorbed " + absorbed);
      changed = true;
    }
    if (changed) g.compact();
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> make_fuse_linear_activation_pass() { return std::make_unique<FuseLinearActivation>(); }

}  // namespace kiln
