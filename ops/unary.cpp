// The unary ops of the activation table (graph/activation.hpp): relu, gelu, clip, silu, sigmoid, tanh, exp,
// sqrt, pow, erf, abs, neg, log, reciprocal, leaky_relu, elu, selu, hard_sigmoid, hard_swish, softplus, and
// ONNX's other element-wise functions (sin ... shrink). Each is one oneDNN eltwise primitive (those oneDNN
// lacks, or computes less exactly than ONNX's tests ask: erf, log, selu, hard_sigmoid, sin, ...: a TBB loop), run in
// whatever layout src has; their schemas (doc, variant attribute, parameters) come from the table. At -O2
// the post-op ones fold into a preceding linear or conv2d (fuse-activation).
//   %h1 = relu(%h) : (f32[batch,seq,256]) -> f32[batch,seq,256]
//   %g = gelu(%h) {approximate="tanh"} : ...   (PyTorch's approximate="none" | "tanh")
//   %r = clip(%x) {min=0.0, max=6.0} : (f32[batch,32,h,w]) -> f32[batch,32,h,w]     (nn.ReLU6, nn.Hardtanh)

#include <cmath>

#include <tbb/parallel_for.h>

#include "ops/common.hpp"
#include "ops/eltwise.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  const Node& n = ctx.node();
  const ActivationDef* a = activation_of(n);
  if (!a) {  // a variant the table lacks: list the op's
    const char* attr = nullptr;
    std::string values;
    for (const ActivationDef* v : activations())
      if (n.op == v->op && v->variant_attr) {
        attr = v->variant_attr;
        values += (values.empty() ? "\"" : " or \"") + std::string(v->variant) + "\"";
      }
    ctx.fail("attribute '" + std::string(attr ? attr : "?") + "' must be " + values + ", got \"" +
             (attr ? n.attr_string(attr) : std::string()) + "\"");
  }
  if (a->ordered_params) {
    const char* lo = a->params[0].name;
    const char* hi = a->params[1].name;
    if (!(n.attr_float(lo) <= n.attr_float(hi)))
      ctx.fail("attribute '" + std::string(lo) + "' (" + attr_str(n.attr(lo)) + ") must be <= '" + hi + "' (" +
               attr_str(n.attr(hi)) + ")");
  }
  return {ctx.in(0)};
}

// The activations oneDNN lacks: f(x, alpha, beta) over the buffer (padding included in a blocked layout).
class LoopKernel : public Kernel {
 public:
  LoopKernel(std::int64_t n, LoopActivation f, std::string name) : n_(n), f_(f), impl_("kiln:" + std::move(name)) {}
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* x = static_cast<const float*>(args.in[0]);
    auto* y = static_cast<float*>(args.out[0]);
    const LoopActivation f = f_;
    auto body = [&](std::int64_t b, std::int64_t e) { f.fn(x + b, y + b, e - b, f.alpha, f.beta); };
    if (n_ < 16384) return body(0, n_);
    tbb::parallel_for(tbb::blocked_range<std::int64_t>(0, n_, 4096),
                      [&](const tbb::blocked_range<std::int64_t>& r) { body(r.begin(), r.end()); });
  }
  std::string impl() const override { return impl_; }

 private:
  std::int64_t n_;
  LoopActivation f_;
  std::string impl_;
};

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  const ActivationDef& a = *activation_of(ctx.node);
  const std::vector<double> params = activation_params(a, ctx.node, false);
  std::optional<Eltwise> e = eltwise_of(a, params);
  if (!e) return std::make_unique<LoopKernel>(numel_of(ctx.in[0].shape), loop_of(a, params), a.name);  // plain
  // Plain tensors run as one flat vector; others in their own layout (padding included).
  auto md = ctx.in[0].plain() ? plain_md({numel_of(ctx.in[0].shape)}) : md_of(ctx.in[0]);
  dnnl::eltwise_forward::primitive_desc pd(
      dnnl::eltwise_forward::desc(dnnl::prop_kind::forward_inference, e->alg, md, e->alpha, e->beta),
      user_scratchpad_attr(), ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, md, 0);
  kernel->output(s, DNNL_ARG_DST, md, 0);
  return kernel;
}

// The schema of unary op `op`, from its rows of the table.
OpSchema unary_schema(std::string_view op) {
  const ActivationDef* first = nullptr;
  for (const ActivationDef* a : activations())
    if (op == a->op) {
      first = a;
      break;
    }
  if (!first) fail("unary op '" + std::string(op) + "' is not in the activation table");
  std::vector<AttrSpec> attrs;
  if (first->variant_attr)
    attrs.push_back(
        AttrSpec{first->variant_attr, AttrType::String, Attr{std::string(first->variant)}, first->variant_doc});
  for (const ActivationParam& p : first->params)
    attrs.push_back(AttrSpec{p.name, AttrType::Float,
                             p.default_value ? std::optional<Attr>(Attr{*p.default_value}) : std::nullopt, p.doc});
  return OpSchema{
      .name = std::string(op),
      .doc = first->doc,
      .inputs = {{"src"}},
      .attrs = std::move(attrs),
      .infer = infer,
      .make_kernel = make,
      .in_place = {0},
      // A loop of Kiln's runs on plain data only: in a blocked layout it would also compute the
      // padding, where f(0) may be non-zero (cos, hard_sigmoid) or not finite (log, acosh).
      .layout = eltwise_of(*first, std::vector<double>(first->params.size(), 1.0)) ? layout_of_first_input : nullptr};
}

}  // namespace

// One per op of the table (ops/op_list.inc registers them by these names).
#define KILN_UNARY_OP(name)                        \
  const OpSchema& op_##name() {                    \
    static const OpSchema s = unary_schema(#name); \
    return s;                                      \
  }
KILN_UNARY_OP(relu)
KILN_UNARY_OP(gelu)
KILN_UNARY_OP(clip)
KILN_UNARY_OP(silu)
KILN_UNARY_OP(sigmoid)
KILN_UNARY_OP(tanh)
KILN_UNARY_OP(exp)
KILN_UNARY_OP(sqrt)
KILN_UNARY_OP(pow)
KILN_UNARY_OP(erf)
KILN_UNARY_OP(abs)
KILN_UNARY_OP(neg)
KILN_UNARY_OP(log)
KILN_UNARY_OP(reciprocal)
KILN_UNARY_OP(leaky_relu)
KILN_UNARY_OP(elu)
KILN_UNARY_OP(selu)
KILN_UNARY_OP(hard_sigmoid)
KILN_UNARY_OP(hard_swish)
KILN_UNARY_OP(softplus)
KILN_UNARY_OP(sin)
KILN_UNARY_OP(cos)
KILN_UNARY_OP(tan)
KILN_UNARY_OP(asin)
KILN_UNARY_OP(acos)
KILN_UNARY_OP(atan)
KILN_UNARY_OP(sinh)
KILN_UNARY_OP(cosh)
KILN_UNARY_OP(asinh)
KILN_UNARY_OP(acosh)
KILN_UNARY_OP(atanh)
KILN_UNARY_OP(floor)
KILN_UNARY_OP(ceil)
KILN_UNARY_OP(round)
KILN_UNARY_OP(sign)
KILN_UNARY_OP(softsign)
KILN_UNARY_OP(celu)
KILN_UNARY_OP(thresholded_relu)
KILN_UNARY_OP(shrink)
#undef KILN_UNARY_OP

}  // namespace kiln
