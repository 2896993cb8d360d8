// lstm, gru: multi-layer, optionally bidirectional recurrent layers with PyTorch nn.LSTM / nn.GRU weights,
// on oneDNN's RNN primitives (vanilla_lstm; lbr_gru, the linear-before-reset GRU that nn.GRU computes).
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

#include <algorithm>
#include <atomic>

#include "ops/common.hpp"

namespace kiln {

/// How many private weight copies lstm/gru kernels have converted so far (none where the pack-weights pass
/// packed them and the primitive reads them in place).
std::size_t rnn_weight_packs_made();

namespace {

constexpr int kMaxLayers = 4;
constexpr int kWeightsPerDir = 4;  // weight_ih, weight_hh, bias_ih, bias_hh
const char* const kWeightNames[kWeightsPerDir] = {"weight_ih", "weight_hh", "bias_ih", "bias_hh"};
enum { kWih, kWhh, kBih, kBhh };

struct Cell {
  bool lstm;
  int gates;       // gate rows per hidden unit in PyTorch's weights: 4 (LSTM), 3 (GRU)
  int bias_gates;  // oneDNN bias rows: 4 for both (lbr_gru keeps a separate bias for the hh part of n)
  int base;        // index of the first weight input (after src, h0[, c0])
  // oneDNN gate g is PyTorch gate perm[g].
  int perm[4];
};
const Cell kLstm{true, 4, 4, 3, {0, 1, 2, 3}};
const Cell kGru{false, 3, 4, 2, {1, 0, 2, 0}};

int weight_index(const Cell& c, int layer, int dir, int which) {
  return c.base + (layer * 2 + dir) * kWeightsPerDir + which;
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
  return in;
}

std::vector<TensorType> infer(const ShapeCtx& ctx, const Cell& c) {
  const Node& node = ctx.node();
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
                   " (biases are all present or all absent, as with nn." + (c.lstm ? "LSTM" : "GRU") + "(bias=...))");

  const int hh0 = weight_index(c, 0, 0, kWhh);
  if (ctx.in(hh0).rank() != 2)
    ctx.fail("expected weight_hh_l0 of rank 2 ([gates*hidden, hidden]), got " + ctx.in(hh0).str() + " ('" +
             node.inputs[hh0]->name + "')");
  const Dim hidden = ctx.in(hh0).shape[1];
  const Dim rows = Dim::of(c.gates * hidden.value);
  if (!hidden.concrete() || hidden.value < 1) ctx.fail("weight_hh_l0 must have a concrete hidden size, got " + ctx.in(hh0).str());
  if (!features.concrete())
    ctx.fail("the input's feature dim (last axis) must be concrete, got " + ctx.in(0).str());
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

  Shape y = batch_first ? Shape{batch, seq, Dim::of(dirs * hidden.value)} : Shape{seq, batch, Dim::of(dirs * hidden.value)};
  std::vector<TensorType> out = {TensorType{DType::f32, y}, TensorType{DType::f32, state}};
  if (c.lstm) out.push_back(TensorType{DType::f32, state});
  return out;
}

std::vector<TensorType> infer_lstm(const ShapeCtx& ctx) { return infer(ctx, kLstm); }
std::vector<TensorType> infer_gru(const ShapeCtx& ctx) { return infer(ctx, kGru); }

/// A constant as f32 values (weights are constants when the kernel is made: the shape rule checked them).
const float* const_f32(const KernelCtx& ctx, int i) {
  const ConstData* data = ctx.constant(static_cast<std::size_t>(i));
  if (!data) ctx.node.fail("weight " + ctx.node.schema->inputs.at(i).name + " must be a constant (a weight from the file)");
  return static_cast<const float*>(data->data);
}

// Weights reach oneDNN in its gate-major layout ldigo ([layer, direction, in, gate, hidden]) in its gate
// order. The pack-weights pass does that once, at compile time (pack_rnn): per layer, the weight_ih of both
// directions become one buffer (the forward input holds all of it, the reverse one is a view of its second
// half), likewise weight_hh, so a kernel binds them in place. A kernel made from the weights as written
// (-O0), or whose primitive wants another layout, converts a private copy when it is made.
constexpr const char* kGateLayout = "ldigo";

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

/// The pack rule (OpSchema::pack): weight_ih and weight_hh of each layer, both directions in one buffer.
void pack_rnn(PackCtx& ctx, const Cell& c) {
  const Node& node = ctx.node();
  const std::int64_t layers = node.attr_int("num_layers");
  const int dirs = node.attr_bool("bidirectional") ? 2 : 1;
  for (std::int64_t l = 0; l < layers; ++l)
    for (int which : {kWih, kWhh}) {
      std::vector<PackedInput> parts;
      std::vector<const float*> sources;
      std::int64_t rows = 0, cols = 0;
      for (int d = 0; d < dirs; ++d) {
        const auto i = static_cast<std::size_t>(weight_index(c, static_cast<int>(l), d, which));
        const Value* v = node.inputs.at(i);
        if (!v || !v->is_constant() || !v->type.plain() || v->type.rank() != 2 || !is_concrete(v->type.shape)) return;
        rows = v->type.shape[0].value, cols = v->type.shape[1].value;
        TensorType type = v->type;
        type.layout = kGateLayout;
        const std::size_t bytes = static_cast<std::size_t>(rows * cols) * sizeof(float);
        parts.push_back(PackedInput{i, type, static_cast<std::size_t>(d) * bytes, bytes});
        sources.push_back(static_cast<const float*>(v->constant.data));
      }
      const std::int64_t g = c.gates, h = rows / g;
      ctx.replace(parts, parts.back().offset + parts.back().bytes, [&c, sources, cols, g, h](void* out) {
        for (std::size_t d = 0; d < sources.size(); ++d)
          to_gate_major(c, sources[d], cols, g, h, static_cast<float*>(out) + static_cast<std::int64_t>(d) * cols * g * h);
      });
    }
}

void pack_lstm(PackCtx& ctx) { pack_rnn(ctx, kLstm); }
void pack_gru(PackCtx& ctx) { pack_rnn(ctx, kGru); }

/// A kernel that also holds what it converted itself (private weight copies, the summed biases).
class RnnKernel : public DnnlKernel {
 public:
  using DnnlKernel::DnnlKernel;
  std::vector<dnnl::memory> held;
};

/// Binds `weights` (one input per direction, PyTorch [G*H, cols] each) as argument `arg` of step `s` in the
/// layout `want`: in place when the pass packed them into ldigo, adjacent, and the primitive wants ldigo;
/// otherwise through a private copy converted now.
void bind_weights(RnnKernel& kernel, const KernelCtx& ctx, const Cell& c, int s, int arg, const std::vector<int>& weights,
                  std::int64_t cols, std::int64_t h, const dnnl::memory::desc& want) {
  const std::int64_t g = c.gates, dirs = static_cast<std::int64_t>(weights.size());
  const auto plain = dnnl::memory::desc({1, dirs, cols, g, h}, dnnl::memory::data_type::f32, dnnl::memory::format_tag::ldigo);
  const std::size_t block = static_cast<std::size_t>(cols * g * h) * sizeof(float);
  bool packed = true, adjacent = true;
  for (std::size_t d = 0; d < weights.size(); ++d) {
    const ConstData* data = ctx.constant(static_cast<std::size_t>(weights[d]));
    const TensorType& type = ctx.in[static_cast<std::size_t>(weights[d])];
    if (!data) ctx.node.fail("weight " + ctx.node.schema->inputs.at(weights[d]).name + " must be a constant (a weight from the file)");
    if (!type.plain() && type.layout != kGateLayout)
      ctx.node.fail("weight " + ctx.node.schema->inputs.at(weights[d]).name + " is in layout " + type.layout +
                    "; expected plain or " + kGateLayout);
    packed = packed && type.layout == kGateLayout;
    const ConstData* first = ctx.constant(static_cast<std::size_t>(weights[0]));
    adjacent = adjacent && static_cast<const char*>(data->data) == static_cast<const char*>(first->data) + d * block &&
               first->bytes >= (d + 1) * block;
    if (data->bytes < block)
      ctx.node.fail("weight " + ctx.node.schema->inputs.at(weights[d]).name + " holds " + std::to_string(data->bytes) +
                    " bytes; expected " + std::to_string(block));
  }
  if (packed && adjacent && want == plain) {
    kernel.input(s, arg, plain, weights[0]);
    return;
  }
  std::vector<float> buffer(static_cast<std::size_t>(dirs * cols * g * h));
  for (std::size_t d = 0; d < weights.size(); ++d) {
    const auto* w = static_cast<const float*>(ctx.constant(static_cast<std::size_t>(weights[d]))->data);
    float* dst = buffer.data() + static_cast<std::int64_t>(d) * cols * g * h;
    if (packed) std::copy(w, w + cols * g * h, dst);
    else to_gate_major(c, w, cols, g, h, dst);
  }
  dnnl::memory src(plain, ctx.engine, buffer.data());
  dnnl::memory mem(want, ctx.engine);
  dnnl::stream stream(ctx.engine);
  dnnl::reorder(src, mem).execute(stream, src, mem);
  stream.wait();
  kernel.held.push_back(mem);
  kernel.fixed(s, arg, mem);
  kernel.add_packed_weight_bytes(want.get_size());
  ++g_packs_made;
}

}  // namespace

std::size_t rnn_weight_packs_made() { return g_packs_made.load(); }

namespace {

std::unique_ptr<Kernel> make(const KernelCtx& ctx, const Cell& c) {
  using tag = dnnl::memory::format_tag;
  using dt = dnnl::memory::data_type;
  const Node& node = ctx.node;
  const std::int64_t layers = node.attr_int("num_layers");
  const std::int64_t dirs = node.attr_bool("bidirectional") ? 2 : 1;
  const bool batch_first = node.attr_bool("batch_first");
  const auto x = dims_of(ctx.in[0].shape);
  const std::int64_t n = batch_first ? x[0] : x[1], t = batch_first ? x[1] : x[0], features = x[2];
  const std::int64_t h = ctx.in[weight_index(c, 0, 0, kWhh)].shape[1].value;
  const std::int64_t g = c.gates, gb = c.bias_gates;
  const bool has_state = ctx.has(1);
  const bool bias = ctx.has(weight_index(c, 0, 0, kBih));
  const auto direction = dirs == 2 ? dnnl::rnn_direction::bidirectional_concat : dnnl::rnn_direction::unidirectional_left2right;
  constexpr std::size_t f = sizeof(float);

  auto seq_md = [&](std::int64_t channels, bool user_layout) {
    return dnnl::memory::desc({t, n, channels}, dt::f32, user_layout && batch_first ? tag::ntc : tag::tnc);
  };
  const auto state_md = dnnl::memory::desc({1, dirs, n, h}, dt::f32, tag::ldnc);
  const std::size_t state_bytes = static_cast<std::size_t>(dirs * n * h) * f;  // one layer's states
  auto kernel = std::make_unique<RnnKernel>(ctx.engine);
  std::size_t between[2] = {0, 0};  // ping-pong buffers between layers, [T,N,D*H]
  if (layers > 1)
    for (auto& b : between) b = kernel->reserve(static_cast<std::size_t>(t * n * dirs * h) * f);

  for (std::int64_t l = 0; l < layers; ++l) {
    const std::int64_t in_ch = l == 0 ? features : dirs * h;
    auto src = seq_md(in_ch, l == 0);
    auto dst = seq_md(dirs * h, l == layers - 1);
    auto wl_any = dnnl::memory::desc({1, dirs, in_ch, g, h}, dt::f32, tag::any);
    auto wi_any = dnnl::memory::desc({1, dirs, h, g, h}, dt::f32, tag::any);
    auto bias_md = dnnl::memory::desc({1, dirs, gb, h}, dt::f32, tag::ldgo);
    auto src_iter = has_state ? state_md : dnnl::memory::desc();
    const auto prop = dnnl::prop_kind::forward_inference;

    dnnl::memory::desc want_wl, want_wi, want_bias;
    int s;
    if (c.lstm) {
      dnnl::lstm_forward::desc desc(prop, direction, src, src_iter, src_iter, wl_any, wi_any, bias_md, dst, state_md, state_md);
      dnnl::lstm_forward::primitive_desc pd(desc, user_scratchpad_attr(), ctx.engine);
      want_wl = pd.weights_layer_desc(), want_wi = pd.weights_iter_desc(), want_bias = pd.bias_desc();
      s = kernel->add(pd);
    } else {
      dnnl::lbr_gru_forward::desc desc(prop, direction, src, src_iter, wl_any, wi_any, bias_md, dst, state_md);
      dnnl::lbr_gru_forward::primitive_desc pd(desc, user_scratchpad_attr(), ctx.engine);
      want_wl = pd.weights_layer_desc(), want_wi = pd.weights_iter_desc(), want_bias = pd.bias_desc();
      s = kernel->add(pd);
    }

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
          dst[gate * h + o] = bih[at] + (c.lstm || gate < 2 ? bhh[at] : 0.f);
        }
      if (!c.lstm)
        for (std::int64_t o = 0; o < h; ++o) dst[3 * h + o] = bhh[2 * h + o];
    }
    {
      dnnl::memory src_bias(bias_md, ctx.engine, summed.data());
      dnnl::stream stream(ctx.engine);
      dnnl::reorder(src_bias, bias_mem).execute(stream, src_bias, bias_mem);
      stream.wait();
    }
    kernel->held.push_back(bias_mem);
    kernel->fixed(s, DNNL_ARG_BIAS, bias_mem);

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

std::vector<AttrSpec> rnn_attrs() {
  return {AttrSpec{"num_layers", AttrType::Int, Attr{std::int64_t{1}}, "stacked layers, 1..4"},
          AttrSpec{"bidirectional", AttrType::Bool, Attr{false}, "a reverse direction per layer, outputs concatenated"},
          AttrSpec{"batch_first", AttrType::Bool, Attr{true},
                   "src and y are [batch, seq, features] (Kiln's convention); false: [seq, batch, features]"}};
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
      .attrs = rnn_attrs(),
      .infer = infer_gru,
      .make_kernel = make_gru,
      .pack = pack_gru,
  };
  return s;
}

}  // namespace kiln
