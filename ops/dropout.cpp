// dropout: the identity at inference (nn.Dropout in eval mode); kept so that models written with it
// load, and removed by the remove-noops pass. A view: no kernel runs even at -O0.
//   %d = dropout(%x) {p=0.1} : (f32[batch,seq,64]) -> f32[batch,seq,64]

#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  double p = ctx.node().attr_float("p");
  if (p < 0 || p > 1) ctx.fail("attribute 'p' must be in [0, 1], got " + attr_str(Attr{p}));
  return {ctx.in(0)};
}

}  // namespace

const OpSchema& op_dropout() {
  static const OpSchema s{
      .name = "dropout",
      .doc = "identity at inference (nn.Dropout in eval mode)",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"p", AttrType::Float, Attr{0.0}, "drop probability in training; unused at inference"}},
      .infer = infer,
      .view_of = 0,
      .layout = layout_of_first_input,
  };
  return s;
}

}  // namespace kiln
