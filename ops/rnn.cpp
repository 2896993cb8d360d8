// lstm, gru, rnn: multi-layer, optionally bidirectional recurrent layers with PyTorch nn.LSTM / nn.GRU /
// nn.RNN weights, on oneDNN's RNN primitives (vanilla_lstm; lbr_gru, the linear-before-reset GRU that nn.GRU
// computes, or vanilla_gru with linear_before_reset=false, ONNX's default GRU; vanilla_rnn, tanh or relu).
//   %y, %h_n, %c_n = lstm(%x, %h0, %c0, %rnn.weight_ih_l0, %rnn.weight_hh_l0, %rnn.bias_ih_l0, %rnn.bias_hh_l0, ...)
//        {batch_first=true, bidirectional=false, num_layers=1}
//        : (f32[batch,seq,32], f32[1,batch,64], f32[1,batch,64], f32[256,32], f32[256,64], f32[256], f32[256], ...)
//        -> (f32[batch,seq,64], f32[1,batch,64], f32[1,batch,64])
// Inputs: src, then the optional initial states h0 (and c0 for lstm) of shape [layers*dirs, batch, hidden]
// (PyTorch's order: layer-major, then direction), then per layer k < 4 and direction (forward, then the
// `_reverse` one) weight_ih_l{k}, weight_hh_l{k}, bias_ih_l{k}, bias_hh_l{k} — PyTorch's state_dict names,
// so `weights: PREFIX` finds them. Outputs: y (the last layer's hidden states, both directions
// concatenated on the last axis as PyTorch does), h_n and c_n (the final states, same shape as h0).
//
// Kernel: one oneDNN RNN primitive per layer (oneDNN's multi-layer bidirectional primitive feeds each
// direction only its own direction's previous layer, PyTorch feeds the concatenation of both), chained
// through two scratch buffers. Weights are converted once, at compile time, by the pack-weights pass
// (pack_rnn below): PyTorch's [gates*hidden, in] rows become oneDNN's gate order in the ldigo layout its
// primitive reads in place. The two PyTorch biases are summed into oneDNN's one bias when the kernel is made.
// Gate orders: LSTM i,f,g,o in PyTorch = i,f,c~,o in oneDNN (unchanged); GRU r,z,n in PyTorch ->
// u(=z),r,o(=n) in oneDNN, with lbr_gru's fourth bias row holding bias_hh_n (the part inside r * (...)).
// A decoder step (seq 1, states in and out) is one primitive execution per layer: no reorders, no
// allocation, states read and written in place in the node's buffers.
//
// Small cells (small_cell below: LSTMs and nn.GRU-style GRUs up to hidden 96 with 96 inputs, 288 and 221 KB
// of weights per layer) run on Kiln's own kernel instead (ops/rnn_small.hpp: the whole sequence in one
// call, gates and cell update fused, no per-step overhead), where Kiln's kernels run (AVX2+FMA, KILN_GEMM
// not onednn); the pack-weights pass then packs their weights into its layout (rnn_small::kLayout), which
// oneDNN's path also reads (a plan file moved to a CPU without AVX2).

#include <omp.h>

#include <algorithm>
#include <atomic>
#include <cstring>
#include <optional>

#include "ops/common.hpp"
#include "ops/rnn_small.hpp"

namespace kiln {

/// How many private weight copies lstm/gru kernels have converted so far (none where the pack-weights pass
/// packed them and the primitive reads them in place).
std::size_t rnn_weight_packs_made();

namespace {

constexpr int kMaxLayers = 4;
constexpr int kWeightsPerDir = 4;  // weight_ih, weight_hh, bias_ih, bias_hh
const char* const kWeightNames[kWeightsPerDir] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
enum { kWih, kWhh, kBih, kBhh };

enum class Kind { lstm, lbr_gru, gru, rnn };

struct Cell {
  bool lstm;
  int gates;       // gate rows per hidden unit in PyTorch's weights: 4 (LSTM), 3 (GRU), 1 (RNN)
  int bias_gates;  // oneDNN bias rows: 4 for LSTM and lbr_gru (which keeps a separate bias for the hh part
                   // of n), 3 for the GRU that applies the reset before the product, 1 for RNN
  int base;        // index of the first weight input (after src, h0[, c0])
  // oneDNN gate g is PyTorch gate perm[g].
  int perm[4];
  Kind kind;
  dnnl::algorithm activation = dnnl::algorithm::eltwise_tanh;  // rnn only
  bool reverse = false;                                        // one direction, last step first (attribute `reverse`)
  bool peephole = false;                                       // lstm with weight_peephole_l* inputs
};
const Cell kLstm{true, 4, 4, 3, {0, 1, 2, 3}, Kind::lstm};
const Cell kGru{false, 3, 4, 2, {1, 0, 2, 0}, Kind::lbr_gru};
const Cell kGruResetBefore{false, 3, 3, 2, {1, 0, 2, 0}, Kind::gru};
const Cell kRnn{false, 1, 1, 2, {0, 0, 0, 0}, Kind::rnn};

int peephole_index(const Cell& c, std::int64_t layer, std::int64_t dir);

/// The cell a node computes: gru's linear_before_reset and rnn's nonlinearity pick among the variants.
Cell cell_of(const Node& node, const Cell& base) {
  Cell c = base;
  if (base.kind == Kind::lbr_gru && !node.attr_bool("linear_before_reset")) c = kGruResetBefore;
  if (base.kind == Kind::rnn) {
    const std::string act = node.attr_string("nonlinearity");
    if (act == "relu") c.activation = dnnl::algorithm::eltwise_relu;
    else if (act != "tanh") node.fail("attribute 'nonlinearity' must be tanh or relu, got '" + act + "'");
  }
  c.reverse = node.attr_bool("reverse");
  const auto first_peephole = static_cast<std::size_t>(peephole_index(c, 0, 0));
  c.peephole = c.lstm && node.inputs.size() > first_peephole && node.inputs[first_peephole] != nullptr;
  if (c.reverse && node.attr_bool("bidirectional"))
    node.fail("attributes 'reverse' and 'bidirectional' exclude each other (bidirectional runs both ways)");
  return c;
}

const char* torch_class(const Cell& c) { return c.kind == Kind::lstm ? "LSTM" : c.kind == Kind::rnn ? "RNN" : "GRU"; }

int weight_index(const Cell& c, std::int64_t layer, std::int64_t dir, int which) {
  return c.base + static_cast<int>((layer * 2 + dir) * kWeightsPerDir) + which;
}

/// lstm only: the optional peephole weights of (layer, dir), after every layer's four weights.
int peephole_index(const Cell& c, std::int64_t layer, std::int64_t dir) {
  return c.base + kMaxLayers * 2 * kWeightsPerDir + static_cast<int>(layer * 2 + dir);
}

std::string peephole_name(std::int64_t layer, std::int64_t dir) {
  return "weight_peephole_l" + std::to_string(layer) + (dir ? "_reverse" : "");
}

std::string weight_name(int layer, int dir, int which) {
  return std::string(kWeightNames[which]) + "_l" + std::to_string(layer) + (dir ? "_reverse" : "");
}

std::vector<InputSpec> input_specs(const Cell& c) {
  std::vector<InputSpec> in = {{"src"}, {"h0", true}};
  if (c.lstm) in.push_back({"c0", true});
  for (int l = 0; l < kMaxLayers; ++l)
    for (int d = 0; d < 2; ++d)
      for (int w = 0; w < kWeightsPerDir; ++w) {
        std::string name = weight_name(l, d, w);
        in.push_back({name, true, name});
      }
  if (c.lstm)
    for (int l = 0; l < kMaxLayers; ++l)
      for (int d = 0; d < 2; ++d) {
        std::string name = peephole_name(l, d);
        in.push_back({name, true, name});
      }
  return in;
}

std::vector<TensorType> infer(const ShapeCtx& ctx, const Cell& base) {
  const Node& node = ctx.node();
  const Cell c = cell_of(node, base);
  expect_f32(ctx, 0);
  ctx.expect_rank(0, 3);
  const std::int64_t layers = node.attr_int("num_layers");
  if (layers < 1 || layers > kMaxLayers)
    ctx.fail("attribute 'num_layers' = " + std::to_string(layers) + " must be in 1.." + std::to_string(kMaxLayers));
  const int dirs = node.attr_bool("bidirectional") ? 2 : 1;
  const bool batch_first = node.attr_bool("batch_first");
  const Shape& x = ctx.in(0).shape;
  const Dim& batch = batch_first ? x[0] : x[1];
  const Dim& seq = batch_first ? x[1] : x[0];
  const Dim& features = x[2];

  // Which weights are present must match num_layers and bidirectional, so a misnamed prefix or a wrong
  // attribute is an error rather than silently ignored weights.
  for (int l = 0; l < kMaxLayers; ++l)
    for (int d = 0; d < 2; ++d)
      for (int w = 0; w < kWeightsPerDir; ++w) {
        bool used = l < layers && d < dirs;
        bool present = ctx.has(weight_index(c, l, d, w));
        if (present && !used)
          ctx.fail("weight " + weight_name(l, d, w) + " ('" + node.inputs[weight_index(c, l, d, w)]->name +
                   "') is given but the node has num_layers = " + std::to_string(layers) +
                   ", bidirectional = " + (dirs == 2 ? "true" : "false"));
        if (!present && used && w < kBih)
          ctx.fail("missing weight " + weight_name(l, d, w) + " (num_layers = " + std::to_string(layers) +
                   (dirs == 2 ? ", bidirectional" : "") + " needs weight_ih/weight_hh for every layer" +
                   (dirs == 2 ? " and direction)" : ")"));
        if (present) expect_f32(ctx, weight_index(c, l, d, w));
      }
  const bool bias = ctx.has(weight_index(c, 0, 0, kBih));
  for (int l = 0; l < layers; ++l)
    for (int d = 0; d < dirs; ++d)
      for (int w : {kBih, kBhh})
        if (ctx.has(weight_index(c, l, d, w)) != bias)
          ctx.fail(std::string(bias ? "missing" : "unexpected") + " bias " + weight_name(l, d, w) +
                   " (biases are all present or all absent, as with nn." + torch_class(c) + "(bias=...))");

  const int hh0 = weight_index(c, 0, 0, kWhh);
  if (ctx.in(hh0).rank() != 2)
    ctx.fail("expected weight_hh_l0 of rank 2 ([gates*hidden, hidden]), got " + ctx.in(hh0).str() + " ('" +
             node.inputs[hh0]->name + "')");
  const Dim hidden = ctx.in(hh0).shape[1];
  const Dim rows = Dim::of(c.gates * hidden.value);
  if (!hidden.concrete() || hidden.value < 1)
    ctx.fail("weight_hh_l0 must have a concrete hidden size, got " + ctx.in(hh0).str());
  if (!features.concrete()) ctx.fail("the input's feature dim (last axis) must be concrete, got " + ctx.in(0).str());
  for (int l = 0; l < layers; ++l)
    for (int d = 0; d < dirs; ++d) {
      Dim in_features = l == 0 ? features : Dim::of(dirs * hidden.value);
      expect_weight_shape(ctx, weight_index(c, l, d, kWih), {rows, in_features});
      expect_weight_shape(ctx, weight_index(c, l, d, kWhh), {rows, hidden});
      if (bias) {
        expect_weight_shape(ctx, weight_index(c, l, d, kBih), {rows});
        expect_weight_shape(ctx, weight_index(c, l, d, kBhh), {rows});
      }
    }
  // Peepholes (lstm): [3*hidden] per layer and direction, gates i, f, o; all present or all absent.
  if (c.lstm)
    for (int l = 0; l < kMaxLayers; ++l)
      for (int d = 0; d < 2; ++d) {
        const int i = peephole_index(c, l, d);
        const bool used = l < layers && d < dirs;
        if (ctx.has(i) && !used)
          ctx.fail("weight " + peephole_name(l, d) + " ('" + node.inputs[static_cast<std::size_t>(i)]->name +
                   "') is given but the node has num_layers = " + std::to_string(layers) +
                   ", bidirectional = " + (dirs == 2 ? "true" : "false"));
        if (used && ctx.has(i) != c.peephole)
          ctx.fail(std::string(c.peephole ? "missing" : "unexpected") + " weight " + peephole_name(l, d) +
                   " (peepholes are given for every layer and direction or for none)");
        if (used && c.peephole) {
          expect_f32(ctx, i);
          expect_weight_shape(ctx, i, {Dim::of(3 * hidden.value)});
        }
      }

  const Shape state = {Dim::of(layers * dirs), batch, hidden};
  const int num_states = c.lstm ? 2 : 1;
  for (int s = 1; s <= num_states; ++s) {
    if (!ctx.has(s)) continue;
    expect_f32(ctx, s);
    const char* name = s == 1 ? "h0" : "c0";
    if (ctx.in(s).shape != state)
      ctx.fail(std::string("expected initial state ") + name + " of shape " + shape_str(state) +
               " ([num_layers*directions, batch, hidden]), got " + ctx.in(s).str());
  }
  if (c.lstm && ctx.has(1) != ctx.has(2)) ctx.fail("initial states h0 and c0 must be given together");

  Shape y =
      batch_first ? Shape{batch, seq, Dim::of(dirs * hidden.value)} : Shape{seq, batch, Dim::of(dirs * hidden.value)};
  std::vector<TensorType> out = {TensorType{DType::f32, y}, TensorType{DType::f32, state}};
  if (c.lstm) out.push_back(TensorType{DType::f32, state});
  return out;
}

std::vector<TensorType> infer_lstm(const ShapeCtx& ctx) { return infer(ctx, kLstm); }
std::vector<TensorType> infer_gru(const ShapeCtx& ctx) { return infer(ctx, kGru); }
std::vector<TensorType> infer_rnn(const ShapeCtx& ctx) { return infer(ctx, kRnn); }

/// A constant as f32 values (weights are constants when the kernel is made: the shape rule checked them).
const float* const_f32(const KernelCtx& ctx, int i) {
  const ConstData* data = ctx.constant(static_cast<std::size_t>(i));
  if (!data)
    ctx.node.fail("weight " + ctx.node.schema->inputs.at(i).name + " must be a constant (a weight from the file)");
  return static_cast<const float*>(data->data);
}

/// One layer's primitive: `src` and `dst` sequences, states `state_md` (in when has_state, always out),
/// weights in whatever layout oneDNN prefers (format_tag::any; query the primitive for it).
dnnl::primitive_desc layer_pd(const Cell& c, const dnnl::engine& engine, std::int64_t dirs, std::int64_t in_ch,
                              std::int64_t h, const dnnl::memory::desc& src, const dnnl::memory::desc& dst,
                              const dnnl::memory::desc& state_md, bool has_state,
                              const std::optional<dnnl::memory::desc>& wl = std::nullopt,
                              const std::optional<dnnl::memory::desc>& wi = std::nullopt) {
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  const auto direction = dirs == 2 ? dnnl::rnn_direction::bidirectional_concat
                                   : (c.reverse ? dnnl::rnn_direction::unidirectional_right2left
                                                : dnnl::rnn_direction::unidirectional_left2right);
  auto wl_any = wl.value_or(dnnl::memory::desc({1, dirs, in_ch, c.gates, h}, dt::f32, tag::any));
  auto wi_any = wi.value_or(dnnl::memory::desc({1, dirs, h, c.gates, h}, dt::f32, tag::any));
  auto bias_md = dnnl::memory::desc({1, dirs, c.bias_gates, h}, dt::f32, tag::ldgo);
  auto src_iter = has_state ? state_md : dnnl::memory::desc();
  const auto prop = dnnl::prop_kind::forward_inference;
  if (c.lstm) {
    const auto peephole_md =
        c.peephole ? dnnl::memory::desc({1, dirs, 3, h}, dt::f32, tag::ldgo) : dnnl::memory::desc();
    dnnl::lstm_forward::desc desc(prop, direction, src, src_iter, src_iter, wl_any, wi_any, peephole_md, bias_md, dst,
                                  state_md, state_md);
    return dnnl::lstm_forward::primitive_desc(desc, user_scratchpad_attr(), engine);
  }
  if (c.kind == Kind::rnn) {
    dnnl::vanilla_rnn_forward::desc desc(prop, c.activation, direction, src, src_iter, wl_any, wi_any, bias_md, dst,
                                         state_md);
    return dnnl::vanilla_rnn_forward::primitive_desc(desc, user_scratchpad_attr(), engine);
  }
  if (c.kind == Kind::gru) {
    dnnl::gru_forward::desc desc(prop, direction, src, src_iter, wl_any, wi_any, bias_md, dst, state_md);
    return dnnl::gru_forward::primitive_desc(desc, user_scratchpad_attr(), engine);
  }
  dnnl::lbr_gru_forward::desc desc(prop, direction, src, src_iter, wl_any, wi_any, bias_md, dst, state_md);
  return dnnl::lbr_gru_forward::primitive_desc(desc, user_scratchpad_attr(), engine);
}

dnnl::memory::desc arg_desc(const dnnl::primitive_desc& pd, int arg) {
  return pd.query_md(dnnl::query::exec_arg_md, arg);
}

// Weights reach oneDNN in its gate order and the layout its primitive reads (ldigo for its gemm path, a blocked
// one such as ldgOi32o where it runs brgemm), named as every packed oneDNN weight is (dnnl_layout_name). The pack-weights pass does that once, at compile time (pack_rnn): per layer, the weight_ih of
// both directions become one buffer in that layout (the forward input's constant holds all of it, the
// reverse one is a view of its second half), likewise weight_hh, and a kernel binds them in place. A kernel
// made from the weights as written (-O0), or whose primitive wants another layout than the pass found for
// its representative shape, converts a private copy when it is made (counted by rnn_weight_packs_made).
std::atomic<std::size_t> g_packs_made{0};

/// Writes PyTorch weight `w` ([G*H, cols], gates in PyTorch's order) as one direction of ldigo: [cols, G, H]
/// in oneDNN's gate order.
void to_gate_major(const Cell& c, const float* w, std::int64_t cols, std::int64_t g, std::int64_t h, float* dst) {
  for (std::int64_t gate = 0; gate < g; ++gate)
    for (std::int64_t o = 0; o < h; ++o) {
      const float* row = w + (c.perm[gate] * h + o) * cols;
      for (std::int64_t i = 0; i < cols; ++i) dst[(i * g + gate) * h + o] = row[i];
    }
}

/// Whether Kiln's LSTM/GRU kernel (ops/rnn_small.hpp) runs the node instead of oneDNN's primitive: an LSTM or
/// a linear-before-reset GRU (nn.GRU's) whose step costs at most kSmallLstmMacs / kSmallGruMacs
/// multiply-adds per batch row (gates·hidden·(inputs + hidden), the widest layer's: as many floats as its
/// weight_ih and weight_hh hold), on a CPU where Kiln's kernels run. It depends on the weights' shapes only,
/// so that the pack-weights pass (which sees one representative shape) and every plan agree on the weights'
/// layout.
/// Measured on one Zen 5 core, seq 64, inputs = hidden, batch 1 and 8 (bench/README.md, bench_onnx section;
/// batches under 4 project the inputs of 24 steps at a time, see make_small):
/// - LSTM: oneDNN's primitive (brgemm) costs ~2 µs per step even for the smallest cells; Kiln's kernel is
///   1.2-5x faster up to hidden 96 (288 KB of weights). At hidden 128 (512 KB) oneDNN is 1.25x faster at
///   batch 8 (Kiln's reads weight_hh, and at batch 8 weight_ih, at every step; oneDNN projects the inputs
///   of all steps in one GEMM). Bound: hidden 96 with 96 inputs.
/// - GRU: oneDNN's (its reference kernel for lbr_gru) is cheaper per step than its LSTM; Kiln's kernel is
///   1.7-3x faster up to hidden 64, and even at batch 1 / 1.1x faster at batch 8 at hidden 96 (221 KB).
///   Bound: hidden 96 with 96 inputs.
constexpr std::int64_t kSmallLstmMacs = 4 * 96 * (96 + 96);
constexpr std::int64_t kSmallGruMacs = 3 * 96 * (96 + 96);

bool small_cell(const Cell& c, std::int64_t features, std::int64_t h, std::int64_t dirs, std::int64_t layers) {
  if ((c.kind != Kind::lstm && c.kind != Kind::lbr_gru) || !rnn_small::enabled()) return false;
  const std::int64_t widest = std::max(features, layers > 1 ? dirs * h : 0);
  return c.gates * h * (widest + h) <= (c.lstm ? kSmallLstmMacs : kSmallGruMacs);
}

/// The small kernel's pack rule: per layer, weight_ih and weight_hh of both directions each in one buffer of
/// rnn_small::kLayout (the reverse direction's input a view of its second half).
void pack_small(PackCtx& ctx, const Cell& c, std::int64_t layers, std::int64_t dirs, std::int64_t features,
                std::int64_t h) {
  const Node& node = ctx.node();
  for (std::int64_t l = 0; l < layers; ++l) {
    const std::int64_t in_ch = l == 0 ? features : dirs * h;
    for (int which : {kWih, kWhh}) {
      const std::int64_t cols = which == kWih ? in_ch : h;
      const std::size_t per = rnn_small::packed_floats(c.gates, h, cols) * sizeof(float);
      std::vector<PackedInput> parts;
      std::vector<const float*> sources;
      for (std::int64_t d = 0; d < dirs; ++d) {
        const auto i = static_cast<std::size_t>(weight_index(c, static_cast<int>(l), static_cast<int>(d), which));
        const Value* v = node.inputs.at(i);
        if (!v || !v->is_constant() || !v->type.plain() || v->type.rank() != 2 || !is_concrete(v->type.shape)) return;
        TensorType type = v->type;
        type.layout = rnn_small::kLayout;
        parts.push_back(PackedInput{i, type, static_cast<std::size_t>(d) * per, per});
        sources.push_back(static_cast<const float*>(v->constant.data));
      }
      ctx.replace(parts, per * static_cast<std::size_t>(dirs), [sources, gates = c.gates, cols, h, per](void* out) {
        for (std::size_t d = 0; d < sources.size(); ++d)
          rnn_small::pack(sources[d], gates, h, cols, static_cast<float*>(out) + d * per / sizeof(float));
      });
    }
  }
}

/// The pack rule (OpSchema::pack): weight_ih and weight_hh of each layer, both directions in one buffer, in
/// the layout a one-step, batch-1 primitive of the node reads (ldigo where that layout has no format tag).
void pack_rnn(PackCtx& ctx, const Cell& base) {
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  const Node& node = ctx.node();
  const Cell c = cell_of(node, base);
  const std::int64_t layers = node.attr_int("num_layers");
  const std::int64_t dirs = node.attr_bool("bidirectional") ? 2 : 1;
  const Value* x = node.inputs.at(0);
  const Value* hh0 = node.inputs.at(static_cast<std::size_t>(weight_index(c, 0, 0, kWhh)));
  if (!hh0 || !hh0->is_constant() || !x->type.shape.back().concrete()) return;
  const std::int64_t h = hh0->type.shape[1].value, g = c.gates, features = x->type.shape.back().value;
  if (small_cell(c, features, h, dirs, layers)) return pack_small(ctx, c, layers, dirs, features, h);
  const bool has_state = node.inputs.size() > 1 && node.inputs[1] != nullptr;
  for (std::int64_t l = 0; l < layers; ++l) {
    const std::int64_t in_ch = l == 0 ? features : dirs * h;
    const auto pd =
        layer_pd(c, detail::cpu_engine(), dirs, in_ch, h, dnnl::memory::desc({1, 1, in_ch}, dt::f32, tag::tnc),
                 dnnl::memory::desc({1, 1, dirs * h}, dt::f32, tag::tnc),
                 dnnl::memory::desc({1, dirs, 1, h}, dt::f32, tag::ldnc), has_state);
    for (int which : {kWih, kWhh}) {
      const std::int64_t cols = which == kWih ? in_ch : h;
      const dnnl::memory::dims dims = {1, dirs, cols, g, h};
      dnnl::memory::desc packed_md = arg_desc(pd, which == kWih ? DNNL_ARG_WEIGHTS_LAYER : DNNL_ARG_WEIGHTS_ITER);
      std::string layout = dnnl_layout_name(packed_md);
      if (layout.empty()) {  // no format tag names it: ldigo, which kernels ask oneDNN to read (see make)
        packed_md = dnnl::memory::desc(dims, dt::f32, tag::ldigo);
        layout = dnnl_layout_name(packed_md);
      }
      const std::size_t total = packed_md.get_size(), per = total / static_cast<std::size_t>(dirs);
      std::vector<PackedInput> parts;
      std::vector<const float*> sources;
      for (std::int64_t d = 0; d < dirs; ++d) {
        const auto i = static_cast<std::size_t>(weight_index(c, static_cast<int>(l), static_cast<int>(d), which));
        const Value* v = node.inputs.at(i);
        if (!v || !v->is_constant() || !v->type.plain() || v->type.rank() != 2 || !is_concrete(v->type.shape)) return;
        TensorType type = v->type;
        type.layout = layout;
        parts.push_back(PackedInput{i, type, static_cast<std::size_t>(d) * per, per});
        sources.push_back(static_cast<const float*>(v->constant.data));
      }
      ctx.replace(parts, total, [&c, sources, dims, packed_md, cols, g, h](void* out) {
        std::vector<float> ldigo(static_cast<std::size_t>(dims[1] * cols * g * h));
        for (std::size_t d = 0; d < sources.size(); ++d)
          to_gate_major(c, sources[d], cols, g, h, ldigo.data() + static_cast<std::int64_t>(d) * cols * g * h);
        reorder_into(dnnl::memory({dims, dt::f32, tag::ldigo}, detail::cpu_engine(), ldigo.data()),
                     dnnl::memory(packed_md, detail::cpu_engine(), out));
      });
    }
  }
}

void pack_lstm(PackCtx& ctx) { pack_rnn(ctx, kLstm); }
void pack_gru(PackCtx& ctx) { pack_rnn(ctx, kGru); }
void pack_vanilla_rnn(PackCtx& ctx) { pack_rnn(ctx, kRnn); }

/// A kernel that also holds what it converted itself (private weight copies, the summed biases).
class RnnKernel : public DnnlKernel {
 public:
  using DnnlKernel::DnnlKernel;
  std::vector<dnnl::memory> held;
  /// Set for cells too small to share: one time step's products below kSerialMacs multiply-adds. oneDNN
  /// parallelizes each step's GEMMs over the team, and for a [8, 24]-state LSTM the synchronization per step
  /// costs more than the step (0.17 ms on one Zen 5 core, 0.42 ms on two): such a cell runs on the calling
  /// thread alone.
  bool serial = false;
  static constexpr std::int64_t kSerialMacs = 1 << 18;

  void execute(dnnl::stream& stream, const KernelArgs& args) override {
    const int team = omp_get_max_threads();
    if (!serial || team == 1) return DnnlKernel::execute(stream, args);
    struct Restore {
      int n;
      ~Restore() { omp_set_num_threads(n); }
    } restore{team};
    omp_set_num_threads(1);
    DnnlKernel::execute(stream, args);
  }
};

/// Input i's constant, as written or in rnn_small::kLayout (checking that it holds the bytes that layout
/// needs: a plan file's are checked here).
const ConstData* small_weight(const KernelCtx& ctx, int i, std::int64_t gates, std::int64_t h, std::int64_t cols) {
  const auto at = static_cast<std::size_t>(i);
  const std::string name = "weight " + ctx.node.schema->inputs.at(at).name;
  const ConstData* data = ctx.constant(at);
  if (!data) ctx.node.fail(name + " must be a constant (a weight from the file)");
  const bool packed = ctx.in[at].layout == rnn_small::kLayout;
  const std::size_t need =
      (packed ? rnn_small::packed_floats(gates, h, cols) : static_cast<std::size_t>(gates * h * cols)) * sizeof(float);
  if (data->bytes < need)
    ctx.node.fail(name + (packed ? " in layout " + ctx.in[at].layout : std::string()) + " holds " +
                  std::to_string(data->bytes) + " bytes; expected " + std::to_string(need));
  return data;
}

/// Binds `weights` (one input per direction, [G*H, cols] each) as argument `arg` of step `s` in the layout
/// `want`: in place when the pass packed them into that layout; otherwise through a private copy converted
/// now, from the packed constant or from the weights as written.
void bind_weights(RnnKernel& kernel, const KernelCtx& ctx, const Cell& c, int s, int arg,
                  const std::vector<int>& weights, std::int64_t cols, std::int64_t h, const dnnl::memory::desc& want) {
  using dt = dnnl::memory::data_type;
  const std::int64_t g = c.gates, dirs = static_cast<std::int64_t>(weights.size());
  const dnnl::memory::dims dims = {1, dirs, cols, g, h};
  auto name = [&](int i) { return "weight " + ctx.node.schema->inputs.at(static_cast<std::size_t>(i)).name; };
  const std::string& layout = ctx.in[static_cast<std::size_t>(weights[0])].layout;
  dnnl::memory src;
  std::vector<float> ldigo;
  if (!layout.empty() && layout != rnn_small::kLayout) {
    const auto named = dnnl_layout_desc(layout, dims, dt::f32);
    if (!named) ctx.node.fail(name(weights[0]) + " is in layout " + layout + ", which is not a oneDNN weights format");
    const dnnl::memory::desc& packed_md = *named;
    const ConstData* data = ctx.constant(static_cast<std::size_t>(weights[0]));
    if (!data) ctx.node.fail(name(weights[0]) + " must be a constant (a weight from the file)");
    if (data->bytes < packed_md.get_size())  // a plan file's bytes are checked here
      ctx.node.fail(name(weights[0]) + " in layout " + layout + " holds " + std::to_string(data->bytes) +
                    " bytes; expected " + std::to_string(packed_md.get_size()));
    if (packed_md == want) {
      kernel.input(s, arg, want, weights[0]);
      return;
    }
    src = dnnl::memory(packed_md, ctx.engine, const_cast<void*>(data->data));
  } else {
    ldigo.resize(static_cast<std::size_t>(dirs * cols * g * h));
    std::vector<float> rows;  // weights packed for Kiln's kernel (a plan from a CPU that runs it), unpacked
    for (std::size_t d = 0; d < weights.size(); ++d) {
      const ConstData* data = small_weight(ctx, weights[d], c.gates, h, cols);
      const auto* w = static_cast<const float*>(data->data);
      if (layout == rnn_small::kLayout) {
        rows.resize(static_cast<std::size_t>(g * h * cols));
        rnn_small::unpack(w, g, h, cols, rows.data());
        w = rows.data();
      }
      to_gate_major(c, w, cols, g, h, ldigo.data() + static_cast<std::int64_t>(d) * cols * g * h);
    }
    src = dnnl::memory({dims, dt::f32, dnnl::memory::format_tag::ldigo}, ctx.engine, ldigo.data());
  }
  dnnl::memory mem(want, ctx.engine);
  reorder_into(src, mem);
  kernel.held.push_back(mem);
  kernel.fixed(s, arg, mem);
  kernel.add_packed_weight_bytes(want.get_size());
  ++g_packs_made;
}

}  // namespace

std::size_t rnn_weight_packs_made() { return g_packs_made.load(); }

namespace {

/// The oneDNN desc of the weights at input `first` (and its reverse direction) when the pass packed them into
/// a named layout; nullopt for weights as written.
std::optional<dnnl::memory::desc> packed_desc(const KernelCtx& ctx, const Cell& c, int first, std::int64_t dirs,
                                              std::int64_t cols, std::int64_t h) {
  return dnnl_layout_desc(ctx.in[static_cast<std::size_t>(first)].layout, {1, dirs, cols, c.gates, h},
                          dnnl::memory::data_type::f32);
}

/// Kiln's LSTM and GRU kernel (ops/rnn_small.hpp) for the nodes small_cell() picks: per layer and direction
/// the packed weights (read in place when the pass packed them, else a private pack), the biases
/// (rnn_small::Direction) and the peepholes, padded to hp. Scratch: per direction h (two buffers) and c of
/// every row, then (several layers) two sequences between layers. The rows of a batch are independent:
/// where the work is large enough for the team, the directions and row ranges run on separate threads, each
/// over the whole sequence (one fork per layer, no synchronization per step); results do not depend on the
/// split.
class SmallRnnKernel : public Kernel {
 public:
  std::int64_t layers = 1, dirs = 1, n = 0, t = 0, features = 0, h = 0, hp = 0;
  bool batch_first = true, has_state = false, gru = false;
  std::vector<rnn_small::Direction> cells;        // [layer * dirs + direction]
  std::vector<std::shared_ptr<const void>> held;  // the packed constants' owners, private copies
  std::size_t packed_bytes = 0;
  std::string name;
  /// Multiply-adds per thread below which a layer runs on fewer threads (at most work / kThreadMacs; the
  /// calling thread alone under 2·kThreadMacs). Measured on two Zen 5 cores with the second one idle: an
  /// [8, 16]-state LSTM over 64 steps (0.56 M multiply-adds, 0.021 ms on one thread) takes 0.010 ms split
  /// over two, [8, 24] (2.4 M) 0.044 -> 0.023 ms, [64, 24] 0.35 -> 0.18 ms; 2^19 (~10 µs of work per thread)
  /// keeps decoder steps and batch-1 sequences on one thread.
  static constexpr double kThreadMacs = 1 << 19;

  std::int64_t chunk = 0;             // steps projected at a time (rnn_small::run), 0: none
  std::size_t state_floats() const {  // per direction: h (2 buffers), c, the projected inputs
    return static_cast<std::size_t>(3 * n * hp + chunk * n * (gru ? 3 : 4) * hp);
  }
  std::size_t between_floats() const { return static_cast<std::size_t>(t * n * dirs * h); }
  std::size_t scratch_bytes() const override {
    return (static_cast<std::size_t>(dirs) * state_floats() + (layers > 1 ? 2 * between_floats() : 0)) * sizeof(float);
  }
  std::string impl() const override { return name; }
  std::size_t packed_weight_bytes() const override { return packed_bytes; }

  void execute(dnnl::stream&, const KernelArgs& args) override {
    auto* states = static_cast<float*>(args.scratch);
    float* between[2] = {states + dirs * state_floats(), states + dirs * state_floats() + between_floats()};
    const auto* h0 = static_cast<const float*>(args.in[1]);
    const auto* c0 = gru ? nullptr : static_cast<const float*>(args.in[2]);
    auto* h_n = static_cast<float*>(args.out[1]);
    auto* c_n = gru ? nullptr : static_cast<float*>(args.out[2]);
    const int team = omp_in_parallel() ? 1 : omp_get_max_threads();
    for (std::int64_t l = 0; l < layers; ++l) {
      const std::int64_t in_ch = l == 0 ? features : dirs * h, out_ch = dirs * h;
      const float* x = l == 0 ? static_cast<const float*>(args.in[0]) : between[(l - 1) % 2];
      float* y = l == layers - 1 ? static_cast<float*>(args.out[0]) : between[l % 2];
      const std::int64_t x_row = batch_first ? t * in_ch : in_ch, x_step = batch_first ? in_ch : n * in_ch;
      const std::int64_t y_row = batch_first ? t * out_ch : out_ch, y_step = batch_first ? out_ch : n * out_ch;
      // Threads: as many as the layer's work pays for, directions first, then ranges of rows.
      const double macs = static_cast<double>(n * t * dirs * (gru ? 3 : 4) * h) * static_cast<double>(in_ch + h);
      const std::int64_t want = std::clamp<std::int64_t>(static_cast<std::int64_t>(macs / kThreadMacs), 1, team);
      const std::int64_t parts = std::max<std::int64_t>(1, std::min((want + dirs - 1) / dirs, n)), items = dirs * parts;
      auto run = [&](std::int64_t item) {
        const std::int64_t d = item / parts, part = item % parts;
        const std::int64_t r0 = n * part / parts, rows = n * (part + 1) / parts - r0;
        const rnn_small::Direction& cell = cells[static_cast<std::size_t>(l * dirs + d)];
        float* hb = states + static_cast<std::size_t>(d) * state_floats() + 2 * r0 * hp;
        float* cb = states + static_cast<std::size_t>(d) * state_floats() + 2 * n * hp + r0 * hp;
        float* proj =
            chunk ? states + static_cast<std::size_t>(d) * state_floats() + 3 * n * hp + r0 * chunk * (gru ? 3 : 4) * hp
                  : nullptr;
        const std::int64_t at = ((l * dirs + d) * n + r0) * h;  // this part's first row of the states
        const std::size_t row_bytes = static_cast<std::size_t>(h) * sizeof(float);
        std::fill(hb, hb + rows * hp, 0.0f);
        std::fill(cb, cb + rows * hp, 0.0f);
        if (has_state)
          for (std::int64_t r = 0; r < rows; ++r) {
            std::memcpy(hb + r * hp, h0 + at + r * h, row_bytes);
            if (c0) std::memcpy(cb + r * hp, c0 + at + r * h, row_bytes);
          }
        const float* last = rnn_small::run(cell, gru, rows, t, x + r0 * x_row, x_row, x_step, y + d * h + r0 * y_row,
                                           y_row, y_step, hb, cb, proj, chunk);
        for (std::int64_t r = 0; r < rows; ++r) {
          std::memcpy(h_n + at + r * h, last + r * hp, row_bytes);
          if (c_n) std::memcpy(c_n + at + r * h, cb + r * hp, row_bytes);
        }
      };
      const int threads = static_cast<int>(std::min<std::int64_t>(items, team));
      if (threads == 1) {
        for (std::int64_t i = 0; i < items; ++i) run(i);
      } else {
#pragma omp parallel for num_threads(threads) schedule(static)
        for (std::int64_t i = 0; i < items; ++i) run(i);
      }
    }
  }
};

std::unique_ptr<Kernel> make_small(const KernelCtx& ctx, const Cell& c, std::int64_t layers, std::int64_t dirs,
                                   std::int64_t features, std::int64_t h) {
  const Node& node = ctx.node;
  auto kernel = std::make_unique<SmallRnnKernel>();
  SmallRnnKernel& k = *kernel;
  const bool batch_first = node.attr_bool("batch_first");
  const auto x = dims_of(ctx.in[0].shape);
  k.layers = layers, k.dirs = dirs, k.features = features, k.h = h, k.hp = rnn_small::padded(h);
  k.n = batch_first ? x[0] : x[1], k.t = batch_first ? x[1] : x[0];
  k.batch_first = batch_first, k.has_state = ctx.has(1);
  k.gru = !c.lstm;
  k.name = rnn_small::variant(k.gru);
  // Batches under 4 rows project the inputs of 24 steps at a time (rnn_small::run) once the weights outgrow
  // 16 KB: one row block per step would read weight_ih at every step. Measured on one Zen 5 core, seq 64,
  // batch 1: LSTM hidden 48 0.036 -> 0.017 ms, hidden 96 0.145 -> 0.091; GRU hidden 40 0.0155 -> 0.0118,
  // hidden 64 0.049 -> 0.024; not for the smallest cells (LSTM hidden 16 0.0032 -> 0.0041 ms), nor at batch
  // 8 (two blocks of 4 rows: nothing gained up to hidden 96, 0.043 -> 0.046 ms at hidden 24).
  const std::int64_t widest = std::max(features, layers > 1 ? dirs * h : 0);
  if (k.n < 4 && c.gates * h * (widest + h) > 4096) k.chunk = std::min<std::int64_t>(k.t, 24);
  const bool bias = ctx.has(weight_index(c, 0, 0, kBih));
  const std::int64_t hp = k.hp;
  // Private floats (biases, peepholes, weights packed now), each block in its own allocation.
  auto own = [&k](std::size_t floats) {
    auto buf = std::make_shared<std::vector<float>>(floats, 0.0f);
    k.held.push_back(buf);
    return buf->data();
  };
  auto packed = [&](int i, std::int64_t cols) -> const float* {
    const ConstData* data = small_weight(ctx, i, c.gates, h, cols);
    k.held.push_back(data->owner);
    if (ctx.in[static_cast<std::size_t>(i)].layout == rnn_small::kLayout) return static_cast<const float*>(data->data);
    const std::size_t floats = rnn_small::packed_floats(c.gates, h, cols);
    float* out = own(floats);
    rnn_small::pack(static_cast<const float*>(data->data), c.gates, h, cols, out);
    k.packed_bytes += floats * sizeof(float);
    ++g_packs_made;
    return out;
  };
  for (std::int64_t l = 0; l < layers; ++l)
    for (std::int64_t d = 0; d < dirs; ++d) {
      const std::int64_t in_ch = l == 0 ? features : dirs * h;
      rnn_small::Direction cell;
      cell.k = in_ch, cell.hidden = h, cell.hp = hp, cell.reverse = d == 1 || c.reverse;
      cell.wx = packed(weight_index(c, l, d, kWih), in_ch);
      cell.wh = packed(weight_index(c, l, d, kWhh), h);
      float* b = own(static_cast<std::size_t>(4 * hp));
      if (bias) {
        const float* bih = const_f32(ctx, weight_index(c, l, d, kBih));
        const float* bhh = const_f32(ctx, weight_index(c, l, d, kBhh));
        // LSTM: i, f, g, o, each b_ih + b_hh. GRU: r and z summed, then b_in and b_hn apart.
        for (std::int64_t g = 0; g < 4; ++g)
          for (std::int64_t o = 0; o < h; ++o)
            b[g * hp + o] = !k.gru || g < 2 ? bih[g * h + o] + bhh[g * h + o]
                            : g == 2        ? bih[g * h + o]
                                            : bhh[2 * h + o];
      }
      cell.bias = b;
      if (c.peephole) {
        float* p = own(static_cast<std::size_t>(3 * hp));
        const float* src = const_f32(ctx, peephole_index(c, l, d));
        for (std::int64_t g = 0; g < 3; ++g) std::copy(src + g * h, src + (g + 1) * h, p + g * hp);
        cell.peephole = p;
      }
      k.cells.push_back(cell);
    }
  return kernel;
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx, const Cell& base) {
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  const Node& node = ctx.node;
  const Cell c = cell_of(node, base);
  const std::int64_t layers = node.attr_int("num_layers");
  const std::int64_t dirs = node.attr_bool("bidirectional") ? 2 : 1;
  const bool batch_first = node.attr_bool("batch_first");
  const auto x = dims_of(ctx.in[0].shape);
  const std::int64_t n = batch_first ? x[0] : x[1], t = batch_first ? x[1] : x[0], features = x[2];
  const std::int64_t h = ctx.in[weight_index(c, 0, 0, kWhh)].shape[1].value;
  const std::int64_t g = c.gates, gb = c.bias_gates;
  if (small_cell(c, features, h, dirs, layers)) {
    // Kiln's kernel, unless the pass packed the weights for oneDNN's primitive (a plan from a CPU without AVX2).
    bool ours = true;
    for (std::int64_t l = 0; l < layers; ++l)
      for (std::int64_t d = 0; d < dirs; ++d)
        for (int which : {kWih, kWhh}) {
          const std::string& layout = ctx.in[static_cast<std::size_t>(weight_index(c, l, d, which))].layout;
          ours = ours && (layout.empty() || layout == rnn_small::kLayout);
        }
    if (ours) return make_small(ctx, c, layers, dirs, features, h);
  }
  const bool has_state = ctx.has(1);
  const bool bias = ctx.has(weight_index(c, 0, 0, kBih));
  constexpr std::size_t kF = sizeof(float);

  auto seq_md = [&](std::int64_t channels, bool user_layout) {
    return dnnl::memory::desc({t, n, channels}, dt::f32, user_layout && batch_first ? tag::ntc : tag::tnc);
  };
  const auto state_md = dnnl::memory::desc({1, dirs, n, h}, dt::f32, tag::ldnc);
  const std::size_t state_bytes = static_cast<std::size_t>(dirs * n * h) * kF;  // one layer's states
  auto kernel = std::make_unique<RnnKernel>(ctx.engine);
  kernel->serial = n * g * h * (std::max(features, h) + h) < RnnKernel::kSerialMacs;
  std::size_t between[2] = {0, 0};  // ping-pong buffers between layers, [T,N,D*H]
  if (layers > 1)
    for (auto& b : between) b = kernel->reserve(static_cast<std::size_t>(t * n * dirs * h) * kF);

  for (std::int64_t l = 0; l < layers; ++l) {
    const std::int64_t in_ch = l == 0 ? features : dirs * h;
    auto src = seq_md(in_ch, l == 0);
    auto dst = seq_md(dirs * h, l == layers - 1);
    auto bias_md = dnnl::memory::desc({1, dirs, gb, h}, dt::f32, tag::ldgo);
    auto pd = layer_pd(c, ctx.engine, dirs, in_ch, h, src, dst, state_md, has_state);
    // Weights the pack-weights pass packed for another shape's choice of layout: ask oneDNN to read them as
    // they are (it can, for the layouts pack_rnn picks), so that plans of every shape share them.
    const auto wl_packed = packed_desc(ctx, c, weight_index(c, l, 0, kWih), dirs, in_ch, h);
    const auto wi_packed = packed_desc(ctx, c, weight_index(c, l, 0, kWhh), dirs, h, h);
    if ((wl_packed && *wl_packed != arg_desc(pd, DNNL_ARG_WEIGHTS_LAYER)) ||
        (wi_packed && *wi_packed != arg_desc(pd, DNNL_ARG_WEIGHTS_ITER))) {
      try {
        pd = layer_pd(c, ctx.engine, dirs, in_ch, h, src, dst, state_md, has_state, wl_packed, wi_packed);
      } catch (const dnnl::error&) {
        // No implementation reads that layout: bind_weights converts a private copy.
      }
    }
    const auto want_wl = arg_desc(pd, DNNL_ARG_WEIGHTS_LAYER), want_wi = arg_desc(pd, DNNL_ARG_WEIGHTS_ITER);
    const auto want_bias = arg_desc(pd, DNNL_ARG_BIAS);
    const int s = kernel->add(pd);

    std::vector<int> w_ih, w_hh, biases;
    for (std::int64_t d = 0; d < dirs; ++d) {
      w_ih.push_back(weight_index(c, l, d, kWih));
      w_hh.push_back(weight_index(c, l, d, kWhh));
      if (bias) biases.insert(biases.end(), {weight_index(c, l, d, kBih), weight_index(c, l, d, kBhh)});
    }
    bind_weights(*kernel, ctx, c, s, DNNL_ARG_WEIGHTS_LAYER, w_ih, in_ch, h, want_wl);
    bind_weights(*kernel, ctx, c, s, DNNL_ARG_WEIGHTS_ITER, w_hh, h, h, want_wi);
    // oneDNN has one bias per gate where PyTorch has two (ih and hh): summed, except lbr_gru's new gate,
    // whose hh bias sits inside r * (W_hn h + b_hn) and gets oneDNN's fourth bias row. A few floats per
    // layer, made with the kernel.
    dnnl::memory bias_mem(want_bias, ctx.engine);
    std::vector<float> summed(bias_md.get_size() / sizeof(float), 0.f);
    for (std::int64_t d = 0; d < dirs && bias; ++d) {
      const float* bih = const_f32(ctx, biases[2 * d]);
      const float* bhh = const_f32(ctx, biases[2 * d + 1]);
      float* dst = summed.data() + d * gb * h;
      for (std::int64_t gate = 0; gate < g; ++gate)
        for (std::int64_t o = 0; o < h; ++o) {
          std::int64_t at = c.perm[gate] * h + o;
          dst[gate * h + o] = bih[at] + (c.kind != Kind::lbr_gru || gate < 2 ? bhh[at] : 0.f);
        }
      if (c.kind == Kind::lbr_gru)
        for (std::int64_t o = 0; o < h; ++o) dst[3 * h + o] = bhh[2 * h + o];
    }
    reorder_into(dnnl::memory(bias_md, ctx.engine, summed.data()), bias_mem);
    kernel->held.push_back(bias_mem);
    kernel->fixed(s, DNNL_ARG_BIAS, bias_mem);
    if (c.peephole) {  // [3*H] per direction, gates i, f, o: oneDNN's ldgo [1, D, 3, H] as it is
      dnnl::memory peephole_mem(dnnl::memory::desc({1, dirs, 3, h}, dt::f32, tag::ldgo), ctx.engine);
      auto* dst = static_cast<float*>(peephole_mem.get_data_handle());
      for (std::int64_t d = 0; d < dirs; ++d)
        std::memcpy(dst + d * 3 * h, const_f32(ctx, peephole_index(c, l, d)), static_cast<std::size_t>(3 * h) * kF);
      kernel->held.push_back(peephole_mem);
      kernel->fixed(s, DNNL_ARG_WEIGHTS_PEEPHOLE, peephole_mem);
    }

    if (l == 0) kernel->input(s, DNNL_ARG_SRC_LAYER, src, 0);
    else kernel->scratch(s, DNNL_ARG_SRC_LAYER, src, between[(l - 1) % 2]);
    if (l == layers - 1) kernel->output(s, DNNL_ARG_DST_LAYER, dst, 0);
    else kernel->scratch(s, DNNL_ARG_DST_LAYER, dst, between[l % 2]);
    const std::size_t at = static_cast<std::size_t>(l) * state_bytes;
    if (has_state) {
      kernel->input(s, DNNL_ARG_SRC_ITER, state_md, 1, at);
      if (c.lstm) kernel->input(s, DNNL_ARG_SRC_ITER_C, state_md, 2, at);
    }
    kernel->output(s, DNNL_ARG_DST_ITER, state_md, 1, at);
    if (c.lstm) kernel->output(s, DNNL_ARG_DST_ITER_C, state_md, 2, at);
  }
  return kernel;
}

std::unique_ptr<Kernel> make_lstm(const KernelCtx& ctx) { return make(ctx, kLstm); }
std::unique_ptr<Kernel> make_gru(const KernelCtx& ctx) { return make(ctx, kGru); }
std::unique_ptr<Kernel> make_vanilla_rnn(const KernelCtx& ctx) { return make(ctx, kRnn); }

std::vector<AttrSpec> rnn_attrs() {
  return {
      AttrSpec{"num_layers", AttrType::Int, Attr{std::int64_t{1}}, "stacked layers, 1..4"},
      AttrSpec{"bidirectional", AttrType::Bool, Attr{false}, "a reverse direction per layer, outputs concatenated"},
      AttrSpec{"batch_first", AttrType::Bool, Attr{true},
               "src and y are [batch, seq, features] (Kiln's convention); false: [seq, batch, features]"},
      AttrSpec{"reverse", AttrType::Bool, Attr{false},
               "one direction, from the last step to the first (ONNX's direction=reverse); not with bidirectional"}};
}

std::vector<AttrSpec> gru_attrs() {
  auto a = rnn_attrs();
  a.push_back(AttrSpec{"linear_before_reset", AttrType::Bool, Attr{true},
                       "nn.GRU's n = tanh(W_in x + b_in + r * (W_hn h + b_hn)); false: the reset applied before the "
                       "product, n = tanh(W_in x + b_in + W_hn (r * h) + b_hn) (ONNX's default)"});
  return a;
}

std::vector<AttrSpec> vanilla_rnn_attrs() {
  auto a = rnn_attrs();
  a.push_back(AttrSpec{"nonlinearity", AttrType::String, Attr{std::string("tanh")}, "tanh or relu, as nn.RNN's"});
  return a;
}

}  // namespace

const OpSchema& op_lstm() {
  static const OpSchema s{
      .name = "lstm",
      .doc = "nn.LSTM: y, h_n, c_n = lstm(src, h0?, c0?) with PyTorch's weight_ih_l{k}[_reverse] etc.",
      .inputs = input_specs(kLstm),
      .num_outputs = 3,
      .attrs = rnn_attrs(),
      .infer = infer_lstm,
      .make_kernel = make_lstm,
      .pack = pack_lstm,
  };
  return s;
}

const OpSchema& op_gru() {
  static const OpSchema s{
      .name = "gru",
      .doc = "nn.GRU: y, h_n = gru(src, h0?) with PyTorch's weight_ih_l{k}[_reverse] etc.",
      .inputs = input_specs(kGru),
      .num_outputs = 2,
      .attrs = gru_attrs(),
      .infer = infer_gru,
      .make_kernel = make_gru,
      .pack = pack_gru,
  };
  return s;
}

const OpSchema& op_rnn() {
  static const OpSchema s{
      .name = "rnn",
      .doc = "nn.RNN: y, h_n = rnn(src, h0?) with PyTorch's weight_ih_l{k}[_reverse] etc. (tanh or relu)",
      .inputs = input_specs(kRnn),
      .num_outputs = 2,
      .attrs = vanilla_rnn_attrs(),
      .infer = infer_rnn,
      .make_kernel = make_vanilla_rnn,
      .pack = pack_vanilla_rnn,
  };
  return s;
}

}  // namespace kiln
