// fuse-layer-norm: layer normalization written out op by op becomes one layer_norm node.
//   mu = reduce_mean(x, [-1], keepdims); d = sub(x, mu); var = reduce_mean(pow(d, 2), [-1], keepdims)
//   y = div(d, sqrt(add(var, eps)))  [ ; y = mul(y, w) ] [ ; y = add(y, b) ]
// ->
//   y = layer_norm(x, w, b) {eps}
// The match starts at the div; the scale and shift are taken when they are constants of shape [D].

#include <cstdio>
#include <cstdlib>

#include "passes/match.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

// The double closest to the shortest decimal that reads back as `f` (1e-05f -> 1e-05, not 9.99999975e-06).
double shortest(float f) {
  char buf[32];
  for (int prec = 1; prec <= 9; ++prec) {
    std::snprintf(buf, sizeof buf, "%.*g", prec, static_cast<double>(f));
    if (static_cast<float>(std::strtod(buf, nullptr)) == f) break;
  }
  return std::strtod(buf, nullptr);
}

bool last_axis_mean(const Node* n) {
  if (!n || n->op != "reduce_mean" || !n->attr_bool("keepdims")) return false;
  const auto& axes = n->attr_ints("axes");
  int rank = n->inputs[0]->type.rank();
  return axes.size() == 1 && (axes[0] == -1 || axes[0] == rank - 1);
}

class FuseLayerNorm : public Pass {
 public:
  const char* name() const override { return "fuse-layer-norm"; }
  const char* summary() const override { return "mean/sub/pow/mean/add/sqrt/div(/mul/add) -> layer_norm"; }

  bool run(Graph& g, PassContext& ctx) override {
    std::vector<Node*> divs;
    for (const auto& n : g.nodes())
      if (n->op == "div") divs.push_back(n.get());
    bool changed = false;
    for (Node* div : divs) {
      Node* sub = producer_of(div->inputs[0], "sub");
      Node* sqrt = producer_of(div->inputs[1], "sqrt");
      if (!sub || !sqrt) continue;
      Node* mean = sub->inputs[1]->producer;
      Node* add_eps = producer_of(sqrt->inputs[0], "add");
      if (!last_axis_mean(mean) || mean->inputs[0] != sub->inputs[0] || !add_eps) continue;
      float eps = 0;
      Value* var = nullptr;
      if (scalar_constant(add_eps->inputs[1], &eps)) var = add_eps->inputs[0];
      else if (scalar_constant(add_eps->inputs[0], &eps)) var = add_eps->inputs[1];
      Node* var_mean = var ? var->producer : nullptr;
      if (!last_axis_mean(var_mean)) {
        ctx.declined(*div, "no variance: expected add(reduce_mean(pow(d, 2), [-1]), eps) under the sqrt");
        continue;
      }
      Node* square = var_mean->inputs[0]->producer;
      bool squares =
          square &&
          ((square->op == "pow" && square->attr_float("exponent") == 2.0 && square->inputs[0] == sub->outputs[0]) ||
           (square->op == "mul" && square->inputs[0] == sub->outputs[0] && square->inputs[1] == sub->outputs[0]));
      if (!squares) {
        ctx.declined(*div, "the variance does not average the square of " + sub->label());
        continue;
      }
      Value* x = sub->inputs[0];
      const Dim& d = x->type.shape.back();
      // Optional scale and shift: constants of shape [D] on the div's single-use chain.
      Node* last = div;
      Value* weight = nullptr;
      Value* bias = nullptr;
      auto affine = [&](const char* op) -> Value* {
        const Value* cur = last->outputs[0];
        if (!why_not_single_use(g, cur).empty()) return nullptr;
        Node* next = cur->users[0];
        if (next->op != op) return nullptr;
        Value* other = next->inputs[0] == cur ? next->inputs[1] : next->inputs[0];
        if (!other->is_constant() || other->type.shape != Shape{d}) return nullptr;
        last = next;
        return other;
      };
      weight = affine("mul");
      bias = affine("add");
      // Intermediates used outside the pattern would lose their producer.
      std::string why;
      auto uses_ok = [&](const Value* v, std::size_t uses) {
        if (why.empty() && (g.is_output(v) || v->users.size() != uses))
          why = "'" + v->name + "' is used outside the layer norm pattern";
      };
      uses_ok(mean->outputs[0], 1);
      uses_ok(sub->outputs[0], square->op == "mul" ? 3 : 2);
      uses_ok(square->outputs[0], 1);
      uses_ok(var_mean->outputs[0], 1);
      uses_ok(add_eps->outputs[0], 1);
      uses_ok(sqrt->outputs[0], 1);
      if (!why.empty()) {
        ctx.declined(*div, why);
        continue;
      }
      Value* out = last->outputs[0];
      std::string name = last->name;
      SourceLoc loc = last->loc;
      std::vector<Node*> remove = {mean, sub, square, var_mean, add_eps, sqrt, div};
      if (weight) remove.push_back(div->outputs[0]->users[0]);
      if (bias) remove.push_back(last);
      ctx.fired(*last, "became layer_norm (eps " + attr_str(Attr{shortest(eps)}) + (weight ? ", scale" : "") +
                           (bias ? ", shift" : "") + "), absorbing " + std::to_string(remove.size()) + " nodes from " +
                           mean->label());
      Value* fresh = g.add_value(out->name + ".fused", out->type);
      for (Node* n : remove) g.remove_node(n);
      Node* ln = g.add_node("layer_norm", name, {x, weight, bias}, {fresh}, AttrMap{{"eps", Attr{shortest(eps)}}}, loc);
      g.set_output(ln, 0, out);
      changed = true;
    }
    if (changed) g.compact();
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> make_fuse_layer_norm_pass() { return std::make_unique<FuseLayerNorm>(); }

}  // namespace kiln
