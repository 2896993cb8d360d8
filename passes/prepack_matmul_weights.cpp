// prepack-matmul-weights: matmul(a, W) with a constant 2-D W [K,N] becomes linear(a, Wᵀ) with Wᵀ
// [N,K] computed once at compile time. [N,K] is the weights layout oneDNN's matmul runs fastest on
// this CPU (`ba` for a K x N matrix: 1.8x over `ab`, docs/onednn.md), and `linear` takes post-op
// fusions. The transposed copy replaces W in the plan, so weights are stored once, in that layout.
//   %y = matmul(%x, %w) : (f32[batch,seq,64], f32[64,256])   ->   %y = linear(%x, %w.packed) : (..., f32[256,64])
// A following add of a constant [N] (either operand order: torch exports nn.Linear on 3-D input as MatMul
// then Add(bias, ·)) becomes linear's bias, so that activation and residual fusions see a linear.

#include <cstdlib>

#include "passes/match.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

class PrepackMatmulWeights : public Pass {
 public:
  const char* name() const override { return "prepack-matmul-weights"; }
  const char* summary() const override {
    return "matmul by a constant [K,N] -> linear with [N,K] weights made at compile time";
  }

  // add(y, b) or add(b, y) with b a constant f32 [N] and y this linear's output used only there (torch's
  // export of nn.Linear on 3-D input: MatMul then Add(bias, ·)): b becomes linear's bias.
  static void absorb_bias(Graph& g, Node* lin, std::int64_t n, PassContext& ctx) {
    Value* y = lin->outputs[0];
    if (!why_not_single_use(g, y).empty() || y->users[0]->op != "add") return;
    Node* add = y->users[0];
    Value* b = add->inputs[0] == y ? add->inputs[1] : add->inputs[0];
    if (b == y || !b->is_constant() || b->type.dtype != DType::f32 || b->type.shape != Shape{Dim::of(n)}) return;
    ctx.fired(*lin, "absorbed " + add->label() + " (bias '" + b->name + "')");
    Value* out = add->outputs[0];
    g.remove_node(add);
    g.set_input(lin, 2, b);
    g.set_output(lin, 0, out);
  }

  bool run(Graph& g, PassContext& ctx) override {
    std::vector<Node*> matmuls;
    for (const auto& n : g.nodes())
      if (n->op == "matmul") matmuls.push_back(n.get());
    bool changed = false;
    for (Node* mm : matmuls) {
      Value* w = mm->inputs[1];
      if (!w->is_constant()) continue;
      if (w->type.rank() != 2 || w->type.dtype != DType::f32) {
        ctx.declined(*mm, "its constant operand " + w->type.str() + " is not a 2-D f32 matrix");
        continue;
      }
      const std::int64_t k = w->type.shape[0].value, n = w->type.shape[1].value;
      std::size_t bytes = static_cast<std::size_t>(k * n) * sizeof(float);
      const std::shared_ptr<void> owner = allocate_constant_bytes(bytes);
      if (!owner) mm->fail("out of memory packing weights");
      auto* packed = static_cast<float*>(owner.get());
      const auto* src = static_cast<const float*>(w->constant.data);
      for (std::int64_t i = 0; i < k; ++i)
        for (std::int64_t j = 0; j < n; ++j) packed[j * k + i] = src[i * n + j];
      Value* wt = g.add_constant(w->name + ".packed", TensorType{DType::f32, {Dim::of(n), Dim::of(k)}},
                                 ConstData{packed, bytes, owner});
      ctx.fired(*mm, "became linear with '" + w->name + "' stored transposed [" + std::to_string(n) + "," +
                         std::to_string(k) + "]");
      Value* out = mm->outputs[0];
      Value* a = mm->inputs[0];
      std::string name = mm->name;
      SourceLoc loc = mm->loc;
      Value* fresh = g.add_value(out->name + ".fused", out->type);
      g.remove_node(mm);
      Node* lin = g.add_node("linear", name, {a, wt}, {fresh}, {}, loc);
      g.set_output(lin, 0, out);
      absorb_bias(g, lin, n, ctx);
      changed = true;
    }
    if (changed) g.compact();
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> make_prepack_matmul_weights_pass() { return std::make_unique<PrepackMatmulWeights>(); }

}  // namespace kiln
