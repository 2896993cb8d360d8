// Recurrent layers: LSTM, GRU and RNN onto Kiln's lstm, gru and rnn (ops/rnn.cpp), whose weights are
// PyTorch's nn.LSTM / nn.GRU / nn.RNN state_dict. ONNX keeps one tensor per kind for all directions, with other gate orders:
//   W [dirs, G*hidden, input], R [dirs, G*hidden, hidden], B [dirs, 2*G*hidden] = [Wb, Rb]
//   LSTM gates i,o,f,c (PyTorch i,f,g,o); GRU z,r,h (PyTorch r,z,n); RNN one block
//   P [dirs, 3*hidden] (LSTM peepholes) i,o,f -> Kiln's weight_peephole_l0 i,f,o
// so each direction's blocks are reordered once here into new constants (`W/l0`, `R/l0_reverse`, ...).
// Y is [seq, dirs, batch, hidden] (layout 0) or [batch, seq, dirs, hidden] (layout 1) where Kiln's y is
// [seq, batch, dirs*hidden] or [batch, seq, dirs*hidden]: a reshape (and for layout 0 a transpose) follows.
// Y_h, Y_c are Kiln's states as they are (layout 0) or transposed (layout 1: [batch, dirs, hidden]).

#include <cstring>

#include "frontends/onnx/importer.hpp"

namespace kiln::onnx_import {
namespace {

struct Recurrent {
  const char* kiln_op;
  int gates;
  int states;                   // 2 for LSTM (h, c), 1 for GRU and RNN
  int torch_from_onnx[4];       // PyTorch gate block t is ONNX block torch_from_onnx[t]
  const char* default_acts[3];  // ONNX's default activations, per direction
  int num_acts;
};
// LSTM: PyTorch i,f,g,o from ONNX i,o,f,c. GRU: PyTorch r,z,n from ONNX z,r,h.
const Recurrent kLstm{"lstm", 4, 2, {0, 2, 3, 1}, {"Sigmoid", "Tanh", "Tanh"}, 3};
const Recurrent kGru{"gru", 3, 1, {1, 0, 2, 0}, {"Sigmoid", "Tanh", nullptr}, 2};
const Recurrent kRnn{"rnn", 1, 1, {0, 0, 0, 0}, {"Tanh", nullptr, nullptr}, 1};

/// A constant f32 weight input of rank `rank`; fails naming it otherwise.
const ConstTensor& weight(Importer& im, const OnnxNode& n, int i, const char* what, std::size_t rank) {
  const ConstTensor* c = im.constant(n, i);
  if (!c)
    im.fail(n, std::string("expected ") + what + " (input " + std::to_string(i) +
                   ") to be a constant (an initializer): Kiln's recurrent ops take their weights from the model");
  if (c->dtype != DType::f32)
    im.fail(n, std::string("expected ") + what + " of type float, got " + std::string(dtype_name(c->dtype)));
  if (c->dims.size() != rank)
    im.fail(n, std::string("expected ") + what + " of rank " + std::to_string(rank) + ", got " +
                   shape_str(concrete_shape(c->dims)));
  return *c;
}

/// Rows [offset, offset + G*hidden) of direction d of `c` (each row `cols` wide), gate block t taken from
/// block from[t], as a new constant [G*hidden, cols] (cols 0: a vector, [G*hidden]).
Value* reordered(Importer& im, int gates, const int* from, const ConstTensor& c, const std::string& name,
                 std::int64_t d, std::int64_t offset, std::int64_t hidden, std::int64_t cols) {
  const std::int64_t width = cols ? cols : 1, block = hidden * width;
  const std::int64_t per_dir = c.numel() / c.dims[0];
  const std::size_t bytes = static_cast<std::size_t>(gates * block) * sizeof(float);
  auto buf = aligned_buffer(bytes);
  const float* src = static_cast<const float*>(c.data.data) + d * per_dir + offset;
  for (int t = 0; t < gates; ++t)
    std::memcpy(static_cast<float*>(buf.get()) + t * block, src + from[t] * block,
                static_cast<std::size_t>(block) * sizeof(float));
  Shape shape = cols ? concrete_shape({gates * hidden, cols}) : concrete_shape({gates * hidden});
  return im.add_constant(name, TensorType{DType::f32, shape},
                         ConstData{buf.get(), bytes, std::shared_ptr<const void>(buf)});
}

void map_recurrent(Importer& im, const OnnxNode& n, const Recurrent& r) {
  const bool lstm = r.states == 2, gru = r.gates == 3, rnn = r.gates == 1;
  if (lstm)
    im.only_attrs(n, {"activation_alpha", "activation_beta", "activations", "clip", "direction", "hidden_size",
                      "input_forget", "layout"});
  else if (gru)
    im.only_attrs(n, {"activation_alpha", "activation_beta", "activations", "clip", "direction", "hidden_size",
                      "layout", "linear_before_reset"});
  else
    im.only_attrs(n,
                  {"activation_alpha", "activation_beta", "activations", "clip", "direction", "hidden_size", "layout"});
  const std::string direction = im.attr_string(n, "direction", "forward");
  if (direction != "forward" && direction != "reverse" && direction != "bidirectional")
    im.fail(n, "expected direction forward, reverse or bidirectional, got '" + direction + "'");
  const std::int64_t dirs = direction == "bidirectional" ? 2 : 1;
  const std::int64_t layout = im.attr_int(n, "layout", 0);
  if (layout != 0 && layout != 1) im.fail(n, "expected layout 0 or 1, got " + std::to_string(layout));
  if (im.attr(n, "clip")) im.fail(n, "attribute 'clip' (cell clipping) is not supported");
  if (lstm && im.attr_int(n, "input_forget", 0) != 0)
    im.fail(n, "input_forget = 1 (coupled input and forget gates) is not supported");
  const std::int64_t lbr = gru ? im.attr_int(n, "linear_before_reset", 0) : 1;
  if (lbr != 0 && lbr != 1) im.fail(n, "expected linear_before_reset 0 or 1, got " + std::to_string(lbr));
  for (const char* key : {"activation_alpha", "activation_beta"})
    if (const auto* a = im.attr(n, key); a && a->floats_size() > 0)
      im.fail(n, std::string("attribute '") + key + "' is not supported (only the default activations are)");
  if (const auto* a = im.attr(n, "activations")) {
    if (a->type() != onnx::AttributeProto_AttributeType_STRINGS)
      im.fail(n, "expected attribute 'activations' to be a list of strings");
    std::string want, got, relu;
    for (std::int64_t d = 0; d < dirs; ++d) {
      for (int k = 0; k < r.num_acts; ++k) want += (want.empty() ? "" : ", ") + std::string(r.default_acts[k]);
      relu += relu.empty() ? "Relu" : ", Relu";
    }
    for (const auto& s : a->strings()) got += (got.empty() ? "" : ", ") + s;
    if (got != want && !(rnn && got == relu))
      im.fail(n, "expected the default activations (" + want + ")" + (rnn ? " or (" + relu + ")" : "") + ", got (" +
                     got + ")");
  }
  const bool relu = rnn && im.attr(n, "activations") && im.attr(n, "activations")->strings(0) == "Relu";

  Value* x = im.input(n, 0);
  if (rank_of(x) != 3) im.fail(n, "expected X of rank 3, got " + x->type.str());
  const ConstTensor& w = weight(im, n, 1, "W", 3);
  const ConstTensor& rr = weight(im, n, 2, "R", 3);
  const std::int64_t hidden = rr.dims[2];
  if (hidden < 1) im.fail(n, "expected a hidden size of at least 1, got R " + shape_str(concrete_shape(rr.dims)));
  if (auto hs = im.attr_int(n, "hidden_size", hidden); hs != hidden)
    im.fail(n, "hidden_size " + std::to_string(hs) + " differs from R's " + shape_str(concrete_shape(rr.dims)));
  const std::int64_t rows = r.gates * hidden;
  const Dim features = x->type.shape[2];
  if (!features.concrete() || features.value < 1)
    im.fail(n, "expected X's last dim (input size) concrete and at least 1, got " + x->type.str());
  if (w.dims != std::vector<std::int64_t>{dirs, rows, features.value})
    im.fail(n, "expected W of shape " + shape_str(concrete_shape({dirs, rows, features.value})) +
                   " ([num_directions, " + std::to_string(r.gates) + "*hidden_size, input_size]), got " +
                   shape_str(concrete_shape(w.dims)));
  if (rr.dims != std::vector<std::int64_t>{dirs, rows, hidden})
    im.fail(n, "expected R of shape " + shape_str(concrete_shape({dirs, rows, hidden})) + ", got " +
                   shape_str(concrete_shape(rr.dims)));
  const ConstTensor* b = im.has_input(n, 3) ? &weight(im, n, 3, "B", 2) : nullptr;
  if (b && b->dims != std::vector<std::int64_t>{dirs, 2 * rows})
    im.fail(n, "expected B of shape " + shape_str(concrete_shape({dirs, 2 * rows})) + ", got " +
                   shape_str(concrete_shape(b->dims)));

  // sequence_lens: only when every sequence is full length (Kiln's ops have no per-entry lengths).
  if (im.has_input(n, 4)) {
    const ConstTensor* s = im.constant(n, 4);
    const Dim seq = x->type.shape[layout ? 1 : 0];
    bool full = s && seq.concrete();
    if (full)
      for (auto v : const_ints(im, n, *s, "sequence_lens")) full = full && v == seq.value;
    if (!full)
      im.fail(n,
              "sequence_lens is supported only as a constant whose every entry is the (concrete) sequence "
              "length of X " +
                  x->type.str() + ": Kiln's " + std::string(r.kiln_op) + " has no per-sequence lengths");
  }
  // P (LSTM): [dirs, 3*hidden], gates i, o, f; Kiln's weight_peephole_l0 is i, f, o.
  const ConstTensor* p = lstm && im.has_input(n, 7) ? &weight(im, n, 7, "P", 2) : nullptr;
  if (p && p->dims != std::vector<std::int64_t>{dirs, 3 * hidden})
    im.fail(n, "expected P of shape " + shape_str(concrete_shape({dirs, 3 * hidden})) + ", got " +
                   shape_str(concrete_shape(p->dims)));

  // Initial states: [dirs, batch, hidden], or [batch, dirs, hidden] with layout 1.
  std::vector<Value*> states;
  for (int s = 0; s < r.states; ++s) {
    Value* v = im.input(n, 5 + s, false);
    if (v && layout == 1) {
      Value* t = im.temp_value(n, s ? "c0" : "h0");
      im.emit_node(n, "transpose", s ? "c0" : "h0", {v}, {t}, {{"perm", std::vector<std::int64_t>{1, 0, 2}}});
      v = t;
    }
    states.push_back(v);
  }
  if (lstm && (states[0] == nullptr) != (states[1] == nullptr))
    im.fail(n, "expected initial_h and initial_c both given or both absent (Kiln's lstm takes both or neither)");

  std::vector<Value*> ins = {x};
  ins.insert(ins.end(), states.begin(), states.end());
  for (std::int64_t d = 0; d < dirs; ++d) {
    const std::string suffix = d ? "/l0_reverse" : "/l0";
    ins.push_back(
        reordered(im, r.gates, r.torch_from_onnx, w, n.proto.input(1) + suffix, d, 0, hidden, features.value));
    ins.push_back(reordered(im, r.gates, r.torch_from_onnx, rr, n.proto.input(2) + suffix, d, 0, hidden, hidden));
    if (b) {
      ins.push_back(reordered(im, r.gates, r.torch_from_onnx, *b, n.proto.input(3) + suffix + "_ih", d, 0, hidden, 0));
      ins.push_back(
          reordered(im, r.gates, r.torch_from_onnx, *b, n.proto.input(3) + suffix + "_hh", d, rows, hidden, 0));
    } else {
      ins.insert(ins.end(), {nullptr, nullptr});
    }
  }
  if (p) {  // after the four weights of every layer Kiln's lstm can hold (ops/rnn.cpp: 4 layers, 2 directions)
    constexpr std::size_t kPeepholeInput = 3 + 4 * 2 * 4;
    static constexpr int kPeepholeFromOnnx[3] = {0, 2, 1};  // i, f, o from ONNX's i, o, f
    ins.resize(kPeepholeInput, nullptr);
    for (std::int64_t d = 0; d < dirs; ++d)
      ins.push_back(
          reordered(im, 3, kPeepholeFromOnnx, *p, n.proto.input(7) + (d ? "/l0_reverse" : "/l0"), d, 0, hidden, 0));
  }
  while (ins.back() == nullptr) ins.pop_back();

  // Kiln's outputs: y, then the states. Those ONNX names as they are, or temporaries that a reshape or
  // transpose turns into the ONNX outputs.
  auto wanted = [&](int i) { return i < n.proto.output_size() && !n.proto.output(i).empty(); };
  const bool direct_states = layout == 0;
  std::vector<Value*> outs;
  outs.push_back(im.temp_value(n, "y"));
  for (int s = 0; s < r.states; ++s)
    outs.push_back(wanted(1 + s) && direct_states ? im.define_output(n, 1 + s) : im.temp_value(n, s ? "c_n" : "h_n"));
  for (int i = 1 + r.states; i < n.proto.output_size(); ++i)
    if (wanted(i)) im.fail(n, "unexpected output " + std::to_string(i));
  AttrMap attrs = {{"batch_first", layout == 1},
                   {"bidirectional", dirs == 2},
                   {"num_layers", std::int64_t{1}},
                   {"reverse", direction == "reverse"}};
  if (gru) attrs["linear_before_reset"] = lbr == 1;
  if (rnn) attrs["nonlinearity"] = std::string(relu ? "relu" : "tanh");
  im.emit_node(n, r.kiln_op, "", std::move(ins), outs, std::move(attrs));

  if (wanted(0)) {
    const std::vector<std::int64_t> split = {0, 0, dirs, hidden};
    if (layout == 1) {
      im.emit_node(n, "reshape", "Y", {outs[0]}, {im.define_output(n, 0)}, {{"shape", split}});
    } else {
      Value* four = im.temp_value(n, "y4");
      im.emit_node(n, "reshape", "y4", {outs[0]}, {four}, {{"shape", split}});
      im.emit_node(n, "transpose", "Y", {four}, {im.define_output(n, 0)},
                   {{"perm", std::vector<std::int64_t>{0, 2, 1, 3}}});
    }
  }
  if (!direct_states)
    for (int s = 0; s < r.states; ++s)
      if (wanted(1 + s))
        im.emit_node(n, "transpose", s ? "Y_c" : "Y_h", {outs[1 + s]}, {im.define_output(n, 1 + s)},
                     {{"perm", std::vector<std::int64_t>{1, 0, 2}}});
}

void map_lstm(Importer& im, const OnnxNode& n) { map_recurrent(im, n, kLstm); }
void map_gru(Importer& im, const OnnxNode& n) { map_recurrent(im, n, kGru); }
void map_rnn(Importer& im, const OnnxNode& n) { map_recurrent(im, n, kRnn); }

}  // namespace

std::vector<OpRow> rnn_rows() {
  return {
      {"LSTM", kMinOpset, kMaxOpset, map_lstm},  // opset 14 added `layout`; 7-13 have none (layout 0)
      {"GRU", kMinOpset, kMaxOpset, map_gru},
      {"RNN", kMinOpset, kMaxOpset, map_rnn},
  };
}

}  // namespace kiln::onnx_import
