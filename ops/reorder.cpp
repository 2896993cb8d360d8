// reorder: the same tensor in another memory layout (plain row-major when `to` is "plain").
//   %y = reorder(%x) {to="nChw8c"} : (f32[1,16,8,8]) -> f32[1,16,8,8]{nChw8c}
// The assign-layouts pass inserts these where a producer's layout differs from what a consumer needs
// (and removes pairs that cancel); a model may also write them.

#include "ops/common.hpp"

namespace kiln {
namespace {

std::string target(const Node& n) {
  const std::string& to = n.attr_string("to");
  return to == "plain" ? std::string() : to;
}

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  TensorType out = ctx.in(0);
  out.layout = target(ctx.node());
  std::string known;
  if (!valid_layout(out.layout, out.rank(), &known))
    ctx.fail("unknown layout \"" + out.layout + "\" for a rank-" + std::to_string(out.rank()) +
             " tensor (expected plain or one of: " + known + ")");
  return {out};
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  return reorder_kernel(ctx.engine, md_of(ctx.in[0]), md_of(ctx.out[0]));
}

// A reorder reads any layout.
std::string any_layout(const Node& n) { return n.inputs.at(0)->type.layout; }

}  // namespace

const OpSchema& op_reorder() {
  static const OpSchema s{
      .name = "reorder",
      .doc = "the same tensor in layout `to` (\"plain\" for row-major)",
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"to", AttrType::String, std::nullopt, "target layout: plain, nhwc, nChw8c, ..."}},
      .infer = infer,
      .make_kernel = make,
      .layout = any_layout,
  };
  return s;
}

}  // namespace kiln
