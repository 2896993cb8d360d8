// relu, gelu, tanh, sigmoid: elementwise activations, one oneDNN eltwise primitive each.
//   %h1 = relu(%h) : (f32[batch,seq,256]) -> f32[batch,seq,256]
//   %g = gelu(%h) {approximate="tanh"} : ...   (PyTorch's approximate="none" | "tanh")

#include "ops/common.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  if (ctx.node().op == "gelu") {
    const std::string& a = ctx.node().attr_string("approximate");
    if (a != "none" && a != "tanh") ctx.fail("attribute 'approximate' must be \"none\" or \"tanh\", got \"" + a + "\"");
  }
  return {ctx.in(0)};
}

dnnl::algorithm algorithm_for(const Node& node) {
  if (node.op == "relu") return dnnl::algorithm::eltwise_relu;
  if (node.op == "tanh") return dnnl::algorithm::eltwise_tanh;
  if (node.op == "sigmoid") return dnnl::algorithm::eltwise_logistic;
  return node.attr_string("approximate") == "tanh" ? dnnl::algorithm::eltwise_gelu_tanh
                                                    : dnnl::algorithm::eltwise_gelu_erf;
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  auto md = plain_md({numel_of(ctx.in[0].shape)});
  dnnl::eltwise_forward::primitive_desc pd(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, algorithm_for(ctx.node), md, 0.f, 0.f),
      user_scratchpad_attr(), ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, md, 0);
  kernel->output(s, DNNL_ARG_DST, md, 0);
  return kernel;
}

OpSchema unary_schema(const char* name, const char* doc, std::vector<AttrSpec> attrs = {}) {
  return OpSchema{.name = name, .doc = doc, .inputs = {{"src"}}, .attrs = std::move(attrs), .infer = infer, .make_kernel = make};
}

}  // namespace

const OpSchema& op_relu() {
  static const OpSchema s = unary_schema("relu", "max(x, 0)");
  return s;
}
const OpSchema& op_tanh() {
  static const OpSchema s = unary_schema("tanh", "tanh(x)");
  return s;
}
const OpSchema& op_sigmoid() {
  static const OpSchema s = unary_schema("sigmoid", "1 / (1 + exp(-x))");
  return s;
}
const OpSchema& op_gelu() {
  static const OpSchema s = unary_schema(
      "gelu", "x · Φ(x); approximate=\"tanh\" uses the tanh form (nn.GELU)",
      {AttrSpec{"approximate", AttrType::String, Attr{std::string("none")}, "\"none\" (erf) or \"tanh\""}});
  return s;
}

}  // namespace kiln
