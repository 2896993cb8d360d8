// fuse-attention: the decomposed multi-head attention pattern becomes one `attention` node, whose
// kernel runs the three projections as one GEMM (query = key = value) and all heads at once.
//
//   q = linear(xq, Wq, bq); k = linear(xk, Wk, bk); v = linear(xv, Wv, bv)          [B,S,E]
//   qh = transpose(reshape(q, [B,S,H,dh]), [0,2,1,3])                                  [B,H,S,dh]
//   kt = transpose(reshape(k, [B,S,H,dh]), [0,2,3,1])   (or [0,2,1,3] then [0,1,3,2])   [B,H,dh,S]
//   vh = transpose(reshape(v, [B,S,H,dh]), [0,2,1,3])
//   p  = softmax(mul(matmul(qh, kt), 1/sqrt(dh)))      (or div by sqrt(dh)), axis -1
//   y  = linear(reshape(transpose(matmul(p, vh), [0,2,1,3]), [B,S,E]), Wo, bo)
// ->
//   y  = attention(xq, xk, xv, [Wq;Wk;Wv], [bq;bk;bv], Wo, bo) {heads=H}
// The packed projection weights are built once, here, from the constant weights.
//
// The sequence-first form of torch.nn.MultiheadAttention as torch.onnx.export writes it (batch_first
// models transpose around it; the projection is one packed in_proj linear whose output is sliced):
//   xt = transpose(x, [1,0,2])                                              [S,B,E]
//   qkv = linear(xt, W_in [3E,E], b_in)   (prepack-matmul-weights made it from MatMul + Add)
//   q|k|v = slice(qkv, last axis, [0,E) | [E,2E) | [2E,3E))
//   qh = transpose(reshape(q, [S,B*H,dh]), [1,0,2]); kt = transpose(reshape(k, ..), [1,2,0]); vh likewise
//   p  = softmax(matmul(div(qh, sqrt(dh)), kt))      (or mul by 1/sqrt(dh); or the scores scaled)
//   o  = linear(reshape(transpose(matmul(p, vh), [1,0,2]), [S*B,E]), Wo, bo)
//   y  = transpose(reshape(o, [S,B,E]), [1,0,2])                            [B,S,E]
// ->
//   y  = attention(x, x, x, W_in, b_in, Wo, bo) {heads=H}

#include <algorithm>
#include <cmath>
#include <cstdlib>
#include <cstring>

#include "passes/match.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

bool perm_is(const Node* n, std::initializer_list<std::int64_t> want) {
  return n && n->attr_ints("perm") == std::vector<std::int64_t>(want);
}

// A match under construction: every node it would consume, and why it stopped when it does.
struct Match {
  std::vector<Node*> nodes;
  std::string why;
  Node* take(Node* n, const char* what) {
    if (!n) {
      if (why.empty()) why = std::string("no ") + what;
      return nullptr;
    }
    nodes.push_back(n);
    return n;
  }
};

class FuseAttention : public Pass {
 public:
  const char* name() const override { return "fuse-attention"; }
  const char* summary() const override { return "decomposed multi-head attention -> one attention node"; }

  bool run(Graph& g, PassContext& ctx) override {
    std::vector<Node*> roots;
    for (const auto& n : g.nodes())
      if (n->op == "linear") roots.push_back(n.get());
    bool changed = false;
    std::vector<Node*> removed;
    for (Node* out_proj : roots) {
      if (std::find(removed.begin(), removed.end(), out_proj) != removed.end()) continue;
      Match m;
      // Walk up from the output projection; stop quietly while it does not look like attention.
      Node* merge = producer_of(out_proj->inputs[0], "reshape");
      Node* back = merge ? producer_of(merge->inputs[0], "transpose") : nullptr;
      Node* context = back ? producer_of(back->inputs[0], "matmul") : nullptr;
      Node* softmax = context ? producer_of(context->inputs[0], "softmax") : nullptr;
      if (!softmax || !perm_is(back, {0, 2, 1, 3})) continue;
      m.nodes = {merge, back, context, softmax};
      std::string why = match(g, out_proj, m);
      if (!why.empty()) {
        ctx.declined(*out_proj, "attention pattern: " + why);
        continue;
      }
      rewrite(g, out_proj, m, ctx);
      removed.insert(removed.end(), m.nodes.begin(), m.nodes.end());
      changed = true;
    }
    std::vector<Node*> transposes;
    for (const auto& n : g.nodes())
      if (n->op == "transpose" && perm_is(n.get(), {1, 0, 2})) transposes.push_back(n.get());
    for (Node* root : transposes) {
      if (std::find(removed.begin(), removed.end(), root) != removed.end()) continue;
      Match m;
      Node* back = producer_of(root->inputs[0], "reshape");
      if (!back) back = producer_of(root->inputs[0], "reshape_dims");
      Node* out_proj = back ? producer_of(back->inputs[0], "linear") : nullptr;
      Node* merge = out_proj ? producer_of(out_proj->inputs[0], "reshape") : nullptr;
      Node* heads_back = merge ? producer_of(merge->inputs[0], "transpose") : nullptr;
      Node* context = heads_back ? producer_of(heads_back->inputs[0], "matmul") : nullptr;
      Node* softmax = context ? producer_of(context->inputs[0], "softmax") : nullptr;
      if (!softmax || !perm_is(heads_back, {1, 0, 2})) continue;
      m.nodes = {root, back, out_proj, merge, heads_back, context, softmax};
      std::string why = match_seq_first(g, m);
      if (!why.empty()) {
        ctx.declined(*out_proj, "attention pattern (sequence-first): " + why);
        continue;
      }
      rewrite_seq_first(g, root, out_proj, m, ctx);
      removed.insert(removed.end(), m.nodes.begin(), m.nodes.end());
      changed = true;
    }
    if (changed) g.compact();
    return changed;
  }

 private:
  // Filled by match_seq_first().
  Node* in_proj_ = nullptr;
  Value* seq_first_x_ = nullptr;

  std::string match_seq_first(const Graph& g, Match& m) {
    Node* out_proj = m.nodes[2];
    Node* context = m.nodes[5];
    Node* softmax = m.nodes[6];
    if (out_proj->attr_string("activation") != "none" || input_or_null(out_proj, 3))
      return "the output projection already has a fused activation or residual";
    const TensorType& ctx_type = context->outputs[0]->type;  // [B*H, S, dh]
    if (ctx_type.rank() != 3 || !ctx_type.shape[2].concrete()) return "the context is not [B*H, S, head_dim]";
    const std::int64_t dh = ctx_type.shape[2].value;
    const std::int64_t axis = softmax->attr_int("axis");
    if (axis != -1 && axis != 2) return "the softmax is not over the last axis";
    // The scale: on the scores (before the softmax) or on q (before q·kᵀ).
    auto scaled = [&](Node* scale, Value** x) -> bool {
      if (!scale || (scale->op != "mul" && scale->op != "div")) return false;
      float c = 0.f;
      if (scalar_constant(scale->inputs[1], &c)) *x = scale->inputs[0];
      else if (scale->op == "mul" && scalar_constant(scale->inputs[0], &c)) *x = scale->inputs[1];
      else return false;
      const float want =
          scale->op == "mul" ? 1.0f / std::sqrt(static_cast<float>(dh)) : std::sqrt(static_cast<float>(dh));
      if (std::fabs(c - want) > 1e-6f * std::max(1.0f, want)) return false;
      m.nodes.push_back(scale);
      return true;
    };
    Value* scores = softmax->inputs[0];
    Value* unscaled = nullptr;
    if (scaled(scores->producer, &unscaled)) scores = unscaled;
    Node* qk = m.take(producer_of(scores, "matmul"), "q·kᵀ matmul");
    if (!qk)
      return scores->producer && scores->producer->op == "add"
                 ? "masked scores (an add before the softmax) are not fused yet"
                 : m.why;
    Value* q_in = qk->inputs[0];
    if (!unscaled) {
      if (!scaled(q_in->producer, &unscaled)) return "neither the scores nor q are scaled by 1/sqrt(head_dim)";
      q_in = unscaled;
    }
    // Each of q, kᵀ, v: transpose(reshape(slice(qkv))).
    Node* slices[3] = {};
    auto head = [&](Value* v, std::initializer_list<std::int64_t> perm, int which) -> bool {
      Node* t = producer_of(v, "transpose");
      if (!t || !perm_is(t, perm)) return false;
      Node* r = producer_of(t->inputs[0], "reshape");
      Node* sl = r ? producer_of(r->inputs[0], "slice") : nullptr;
      if (!sl) return false;
      const Shape& split = r->outputs[0]->type.shape;  // [S, B*H, dh]
      if (split.size() != 3 || !split[2].is(dh)) return false;
      m.nodes.insert(m.nodes.end(), {t, r, sl});
      slices[which] = sl;
      return true;
    };
    if (!head(q_in, {1, 0, 2}, 0) || !head(qk->inputs[1], {1, 2, 0}, 1) || !head(context->inputs[1], {1, 0, 2}, 2))
      return "q, kᵀ and v are not each slice -> reshape [S,B*H," + std::to_string(dh) + "] -> transpose";
    in_proj_ = producer_of(slices[0]->inputs[0], "linear");
    if (!in_proj_) return "q, k and v are not sliced from one linear";
    const Value* w = in_proj_->inputs[1];
    if (!w->is_constant() || w->type.rank() != 2 || !w->type.shape[1].concrete())
      return in_proj_->label() + " does not have a constant 2-D weight";
    const std::int64_t e = w->type.shape[1].value;
    if (e % dh != 0 || !w->type.shape[0].is(3 * e))
      return in_proj_->label() + " weight " + w->type.str() + " is not [3E, E] with E a multiple of " +
             std::to_string(dh);
    heads_ = e / dh;
    if (in_proj_->attr_string("activation") != "none" || input_or_null(in_proj_, 3))
      return in_proj_->label() + " has a fused activation or residual";
    if (input_or_null(in_proj_, 2) && !in_proj_->inputs[2]->is_constant())
      return in_proj_->label() + " has a computed bias";
    for (int i = 0; i < 3; ++i) {
      const Node* sl = slices[i];
      const auto& ax = sl->attr_ints("axes");
      const auto& st = sl->attr_ints("starts");
      const auto& en = sl->attr_ints("ends");
      const auto& sp = sl->attr_ints("steps");
      if (sl->inputs[0] != in_proj_->outputs[0] || ax.size() != 1 || (ax[0] != -1 && ax[0] != 2) ||
          st != std::vector<std::int64_t>{i * e} || en != std::vector<std::int64_t>{(i + 1) * e} ||
          !(sp.empty() || sp == std::vector<std::int64_t>{1}))
        return sl->label() + " is not the " + "qkv"[static_cast<std::size_t>(i)] + " third of " + in_proj_->label();
    }
    Node* xt = producer_of(in_proj_->inputs[0], "transpose");
    if (!xt || !perm_is(xt, {1, 0, 2})) return "the input is not transposed to sequence-first before the projection";
    seq_first_x_ = xt->inputs[0];
    if (seq_first_x_->type.rank() != 3) return "the input is not [B,S,E]";
    if (out_proj->inputs[1]->type.shape != Shape{Dim::of(e), Dim::of(e)})
      return out_proj->label() + " does not map back to the embedding dim";
    m.nodes.push_back(in_proj_);
    m.nodes.push_back(xt);
    // Every value the pattern computes is read by the pattern alone (the root's output excepted).
    for (Node* n : m.nodes) {
      if (n == m.nodes[0]) continue;
      for (const Value* out : n->outputs) {
        if (g.is_output(out)) return n->label() + ": its output '" + out->name + "' is a graph output";
        for (const Node* u : out->users)
          if (std::find(m.nodes.begin(), m.nodes.end(), u) == m.nodes.end())
            return n->label() + ": its output '" + out->name + "' is also read by " + u->label();
      }
    }
    if (m.nodes[0]->outputs[0]->type.shape != seq_first_x_->type.shape)
      return "the result's shape differs from the input's";
    return {};
  }

  void rewrite_seq_first(Graph& g, Node* root, Node* out_proj, const Match& m, PassContext& ctx) {
    Value* in_w = in_proj_->inputs[1];
    Value* in_b = input_or_null(in_proj_, 2);
    Value* out_w = out_proj->inputs[1];
    Value* out_b = input_or_null(out_proj, 2);
    Value* x = seq_first_x_;
    Value* out = root->outputs[0];
    ctx.fired(*out_proj, "became attention {heads=" + std::to_string(heads_) + "}, absorbing " +
                             std::to_string(m.nodes.size()) + " nodes of the sequence-first form from " +
                             in_proj_->label());
    std::string name = out_proj->name;
    SourceLoc loc = out_proj->loc;
    for (Node* n : m.nodes) g.remove_node(n);
    Value* fresh = g.add_value(out->name + ".fused", out->type);
    Node* att = g.add_node("attention", name, {x, x, x, in_w, in_b, out_w, out_b}, {fresh},
                           AttrMap{{"heads", Attr{heads_}}}, loc);
    g.set_output(att, 0, out);
  }

  // Filled by match().
  Node* proj_[3] = {};
  std::int64_t heads_ = 0;

  std::string match(const Graph& g, Node* out_proj, Match& m) {
    Node* softmax = m.nodes[3];
    Node* context = m.nodes[2];
    if (out_proj->attr_string("activation") != "none" || input_or_null(out_proj, 3))
      return "the output projection already has a fused activation or residual";
    const TensorType& ctx_type = context->outputs[0]->type;
    if (ctx_type.rank() != 4 || !ctx_type.shape[1].concrete() || !ctx_type.shape[3].concrete())
      return "the context is not [batch, heads, seq, head_dim] with concrete heads and head_dim";
    heads_ = ctx_type.shape[1].value;
    const std::int64_t dh = ctx_type.shape[3].value;
    std::int64_t axis = softmax->attr_int("axis");
    if (axis != -1 && axis != 3) return "the softmax is not over the last axis";

    // Scale: mul by 1/sqrt(dh) or div by sqrt(dh), on either side for mul.
    Node* scale = softmax->inputs[0]->producer;
    if (!scale || (scale->op != "mul" && scale->op != "div"))
      return scale && scale->op == "add" ? "masked scores (an add before the softmax) are not fused yet"
                                         : "the scores are not scaled by 1/sqrt(head_dim) before the softmax";
    float c = 0.f;
    Value* scores = nullptr;
    if (scalar_constant(scale->inputs[1], &c)) scores = scale->inputs[0];
    else if (scale->op == "mul" && scalar_constant(scale->inputs[0], &c)) scores = scale->inputs[1];
    if (!scores) return scale->label() + " does not scale by a one-element constant";
    const float want =
        scale->op == "mul" ? 1.0f / std::sqrt(static_cast<float>(dh)) : std::sqrt(static_cast<float>(dh));
    if (std::fabs(c - want) > 1e-6f * std::max(1.0f, want))
      return scale->label() + " scales by " + std::to_string(c) + ", not the standard " + std::to_string(want);
    m.nodes.push_back(scale);
    Node* qk = m.take(producer_of(scores, "matmul"), "q·kᵀ matmul");
    if (!qk) return m.why;

    // Heads of q, k (transposed) and v: transpose(reshape(linear)).
    auto head = [&](Value* v, bool key) -> Node* {
      Node* t = producer_of(v, "transpose");
      if (key && t && perm_is(t, {0, 1, 3, 2})) {  // kᵀ taken from k in [B,H,S,dh]
        m.nodes.push_back(t);
        t = producer_of(t->inputs[0], "transpose");
        key = false;
      }
      if (!t || !(key ? perm_is(t, {0, 2, 3, 1}) : perm_is(t, {0, 2, 1, 3}))) return nullptr;
      Node* r = producer_of(t->inputs[0], "reshape");
      Node* lin = r ? producer_of(r->inputs[0], "linear") : nullptr;
      if (!lin) return nullptr;
      const Shape& split = r->outputs[0]->type.shape;
      if (split.size() != 4 || !split[2].is(heads_) || !split[3].is(dh)) return nullptr;
      m.nodes.push_back(t);
      m.nodes.push_back(r);
      m.nodes.push_back(lin);
      return lin;
    };
    proj_[0] = head(qk->inputs[0], false);
    proj_[1] = head(qk->inputs[1], true);
    proj_[2] = head(context->inputs[1], false);
    if (!proj_[0] || !proj_[1] || !proj_[2])
      return "q, k and v are not each linear -> reshape [B,S," + std::to_string(heads_) + "," + std::to_string(dh) +
             "] -> transpose";
    const std::int64_t e = heads_ * dh;
    bool biases = input_or_null(proj_[0], 2) != nullptr;
    for (Node* p : proj_) {
      if (p->attr_string("activation") != "none" || input_or_null(p, 3))
        return p->label() + " has a fused activation or residual";
      const Value* w = p->inputs[1];
      if (!w->is_constant() || w->type.shape != Shape{Dim::of(e), Dim::of(e)})
        return p->label() + " does not have a constant [" + std::to_string(e) + "," + std::to_string(e) + "] weight";
      if ((input_or_null(p, 2) != nullptr) != biases || (biases && !p->inputs[2]->is_constant()))
        return "the q, k and v projections do not all have constant biases, or all none";
    }
    if (out_proj->inputs[1]->type.shape != Shape{Dim::of(e), Dim::of(e)})
      return out_proj->label() + " does not map back to the embedding dim (weight " + out_proj->inputs[1]->type.str() +
             ")";
    const Value* merged = m.nodes[0]->outputs[0];
    if (merged->type.rank() != 3 || !merged->type.shape[2].is(e))
      return "the heads are not merged back to [B,S," + std::to_string(e) + "]";
    // Every intermediate value is consumed by the pattern alone.
    for (Node* n : m.nodes)
      for (const Value* out : n->outputs)
        if (std::string why = why_not_single_use(g, out); !why.empty()) return n->label() + ": " + why;
    return {};
  }

  // [a; b; c] of three constants, in a new owned constant.
  static Value* pack(Graph& g, const std::string& name, Value* const parts[3], std::vector<Dim> shape) {
    std::size_t bytes = 0;
    for (int i = 0; i < 3; ++i) bytes += parts[i]->constant.bytes;
    const std::shared_ptr<void> owner = allocate_constant_bytes(bytes);
    if (!owner) fail("out of memory packing attention weights");
    void* p = owner.get();
    std::size_t at = 0;
    for (int i = 0; i < 3; ++i) {
      std::memcpy(static_cast<char*>(p) + at, parts[i]->constant.data, parts[i]->constant.bytes);
      at += parts[i]->constant.bytes;
    }
    return g.add_constant(name, TensorType{DType::f32, std::move(shape)}, ConstData{p, bytes, owner});
  }

  void rewrite(Graph& g, Node* out_proj, const Match& m, PassContext& ctx) {
    const std::int64_t e = proj_[0]->inputs[1]->type.shape[0].value;
    Value* weights[3] = {proj_[0]->inputs[1], proj_[1]->inputs[1], proj_[2]->inputs[1]};
    Value* in_w = pack(g, out_proj->name + ".in_proj_weight", weights, {Dim::of(3 * e), Dim::of(e)});
    Value* in_b = nullptr;
    if (input_or_null(proj_[0], 2)) {
      Value* biases[3] = {proj_[0]->inputs[2], proj_[1]->inputs[2], proj_[2]->inputs[2]};
      in_b = pack(g, out_proj->name + ".in_proj_bias", biases, {Dim::of(3 * e)});
    }
    Value* inputs[3] = {proj_[0]->inputs[0], proj_[1]->inputs[0], proj_[2]->inputs[0]};
    Value* out_w = out_proj->inputs[1];
    Value* out_b = input_or_null(out_proj, 2);
    Value* out = out_proj->outputs[0];
    std::string absorbed = std::to_string(m.nodes.size()) + " nodes from " + proj_[0]->label();
    ctx.fired(*out_proj, "became attention {heads=" + std::to_string(heads_) + "}, absorbing " + absorbed);
    std::string name = out_proj->name;
    SourceLoc loc = out_proj->loc;
    for (Node* n : m.nodes) g.remove_node(n);
    g.remove_node(out_proj);
    Value* fresh = g.add_value(out->name + ".fused", out->type);
    Node* att = g.add_node("attention", name, {inputs[0], inputs[1], inputs[2], in_w, in_b, out_w, out_b}, {fresh},
                           AttrMap{{"heads", Attr{heads_}}}, loc);
    g.set_output(att, 0, out);
  }
};

}  // namespace

std::unique_ptr<Pass> make_fuse_attention_pass() { return std::make_unique<FuseAttention>(); }

}  // namespace kiln
