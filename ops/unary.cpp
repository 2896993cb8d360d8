// relu, gelu, tanh, sigmoid, exp, sqrt, erf, pow: elementwise functions, one oneDNN eltwise primitive
// each (erf, which oneDNN lacks, is a TBB loop).
//   %h1 = relu(%h) : (f32[batch,seq,256]) -> f32[batch,seq,256]
//   %g = gelu(%h) {approximate="tanh"} : ...   (PyTorch's approximate="none" | "tanh")

#include <cmath>

#include <tbb/parallel_for.h>

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

// oneDNN eltwise algorithm and its alpha, beta for this node.
struct Eltwise {
  dnnl::algorithm alg;
  float alpha = 0.f, beta = 0.f;
};

Eltwise algorithm_for(const Node& node) {
  if (node.op == "relu") return {dnnl::algorithm::eltwise_relu};
  if (node.op == "tanh") return {dnnl::algorithm::eltwise_tanh};
  if (node.op == "sigmoid") return {dnnl::algorithm::eltwise_logistic};
  if (node.op == "exp") return {dnnl::algorithm::eltwise_exp};
  if (node.op == "sqrt") return {dnnl::algorithm::eltwise_sqrt};
  if (node.op == "pow") return {dnnl::algorithm::eltwise_pow, 1.f, static_cast<float>(node.attr_float("exponent"))};
  return {node.attr_string("approximate") == "tanh" ? dnnl::algorithm::eltwise_gelu_tanh : dnnl::algorithm::eltwise_gelu_erf};
}

class ErfKernel : public Kernel {
 public:
  explicit ErfKernel(std::int64_t n) : n_(n) {}
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* x = static_cast<const float*>(args.in[0]);
    auto* y = static_cast<float*>(args.out[0]);
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n_, 4096), [&](const tbb::blocked_range<std::int64_t>& r) {
      for (std::int64_t i = r.begin(); i < r.end(); ++i) y[i] = std::erf(x[i]);
    });
  }
  std::string impl() const override { return "kiln:erf"; }

 private:
  std::int64_t n_;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  if (ctx.node.op == "erf") return std::make_unique<ErfKernel>(numel_of(ctx.in[0].shape));
  // Plain tensors run as one flat vector; others in their own layout (padding included).
  auto md = ctx.in[0].plain() ? plain_md({numel_of(ctx.in[0].shape)}) : md_of(ctx.in[0]);
  Eltwise e = algorithm_for(ctx.node);
  dnnl::eltwise_forward::primitive_desc pd(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, e.alg, md, e.alpha, e.beta),
      user_scratchpad_attr(), ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, md, 0);
  kernel->output(s, DNNL_ARG_DST, md, 0);
  return kernel;
}

OpSchema unary_schema(const char* name, const char* doc, std::vector<AttrSpec> attrs = {}) {
  return OpSchema{.name = name, .doc = doc, .inputs = {{"src"}}, .attrs = std::move(attrs), .infer = infer, .make_kernel = make,
                  .in_place = {0}, .layout = layout_of_first_input};
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
const OpSchema& op_exp() {
  static const OpSchema s = unary_schema("exp", "e^x");
  return s;
}
const OpSchema& op_sqrt() {
  static const OpSchema s = unary_schema("sqrt", "√x");
  return s;
}
const OpSchema& op_erf() {
  static const OpSchema s = unary_schema("erf", "the error function");
  return s;
}
const OpSchema& op_pow() {
  static const OpSchema s = unary_schema("pow", "x^exponent (torch.pow with a scalar exponent)",
                                         {AttrSpec{"exponent", AttrType::Float, std::nullopt, "the exponent"}});
  return s;
}
const OpSchema& op_gelu() {
  static const OpSchema s = unary_schema(
      "gelu", "x · Φ(x); approximate=\"tanh\" uses the tanh form (nn.GELU)",
      {AttrSpec{"approximate", AttrType::String, Attr{std::string("none")}, "\"none\" (erf) or \"tanh\""}});
  return s;
}

}  // namespace kiln
