// fold-conv-batch-norm: batch_norm(conv2d(x)) with constant statistics becomes one conv2d whose weights
// and bias absorb the normalization, computed once at compile time:
//   s = weight / sqrt(running_var + eps);  W'[o] = W[o] * s[o];  b'[o] = (b[o] - running_mean[o]) * s[o] + bias[o]
//   %c = conv2d(%x, %w, _); %b = batch_norm(%c, %g, %beta, %m, %v)   ->   %b = conv2d(%x, %w.bn, %w.bn_bias)

#include <cmath>
#include <cstdlib>

#include "passes/match.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

// A new f32 constant of `n` floats owned by the graph's constant.
Value* new_constant(Graph& g, const std::string& name, const Shape& shape, std::size_t n, float** data) {
  const std::shared_ptr<void> owner = allocate_constant_bytes(n * sizeof(float));
  if (!owner) fail("out of memory folding batch_norm into '" + name + "'");
  *data = static_cast<float*>(owner.get());
  return g.add_constant(name, TensorType{DType::f32, shape}, ConstData{owner.get(), n * sizeof(float), owner});
}

const float* floats(const Value* v) { return v ? static_cast<const float*>(v->constant.data) : nullptr; }

class FoldConvBatchNorm : public Pass {
 public:
  const char* name() const override { return "fold-conv-batch-norm"; }
  const char* summary() const override {
    return "batch_norm(conv2d(x)) -> conv2d with the normalization folded into its weights and bias";
  }

  bool run(Graph& g, PassContext& ctx) override {
    std::vector<Node*> bns;
    for (const auto& n : g.nodes())
      if (n->op == "batch_norm") bns.push_back(n.get());
    bool changed = false;
    for (Node* bn : bns) {
      Value* mid = bn->inputs[0];
      Node* conv = producer_of(mid, "conv2d");
      if (!conv) continue;
      if (conv->attr_string("activation") != "none" || input_or_null(conv, 3)) {
        ctx.declined(*conv,
                     "it already applies an activation or residual, which " + bn->label() + " would have to follow");
        continue;
      }
      if (std::string why = why_not_single_use(g, mid); !why.empty()) {
        ctx.declined(*conv, why + ", so " + bn->label() + " cannot be folded in");
        continue;
      }
      bool constant = conv->inputs[1]->is_constant() && (!input_or_null(conv, 2) || conv->inputs[2]->is_constant());
      for (std::size_t i = 1; i < bn->inputs.size(); ++i)
        constant = constant && (!bn->inputs[i] || bn->inputs[i]->is_constant());
      if (!constant) {
        ctx.declined(*conv, bn->label() + " has parameters computed at run time");
        continue;
      }
      std::string folded = bn->label();
      fold(g, conv, bn);
      ctx.fired(*conv, "folded " + folded + " into its weights and bias");
      changed = true;
    }
    if (changed) g.compact();
    return changed;
  }

 private:
  static void fold(Graph& g, Node* conv, Node* bn) {
    const Value* w = conv->inputs[1];
    const std::int64_t o = w->type.shape[0].value;
    const auto per_out = static_cast<std::size_t>(numel_of(w->type.shape) / o);
    const float *gamma = floats(bn->inputs[1]), *beta = floats(bn->inputs[2]), *mean = floats(bn->inputs[3]),
                *var = floats(bn->inputs[4]), *bias = floats(input_or_null(conv, 2)), *src = floats(w);
    const double eps = bn->attr_float("eps");
    float *nw = nullptr, *nb = nullptr;
    Value* wv = new_constant(g, w->name + ".bn_folded", w->type.shape, per_out * o, &nw);
    Value* bv = new_constant(g, w->name + ".bn_folded_bias", {w->type.shape[0]}, static_cast<std::size_t>(o), &nb);
    for (std::int64_t c = 0; c < o; ++c) {
      const double s = (gamma ? gamma[c] : 1.0) / std::sqrt(static_cast<double>(var[c]) + eps);
      for (std::size_t k = 0; k < per_out; ++k) nw[c * per_out + k] = static_cast<float>(src[c * per_out + k] * s);
      nb[c] = static_cast<float>(((bias ? bias[c] : 0.0) - mean[c]) * s + (beta ? beta[c] : 0.0));
    }
    Value* out = bn->outputs[0];
    g.remove_node(bn);
    g.set_input(conv, 1, wv);
    while (conv->inputs.size() < 3) g.set_input(conv, conv->inputs.size(), nullptr);
    g.set_input(conv, 2, bv);
    g.set_output(conv, 0, out);
  }
};

}  // namespace

std::unique_ptr<Pass> make_fold_conv_batch_norm_pass() { return std::make_unique<FoldConvBatchNorm>(); }

}  // namespace kiln
