// softmax and log_softmax along one axis (torch.softmax, torch.log_softmax); one shape rule and one kernel
// template serve both. Along the last axis on AVX2 CPUs the kernel is Kiln's row loop (gemm::softmax_rows:
// no oneDNN call, so no per-run allocation inside oneDNN); other axes use oneDNN's softmax and logsoftmax
// primitives, as does KILN_GEMM=onednn.
//   %probs = softmax(%logits) {axis=-1} : (f32[batch,4]) -> f32[batch,4]
//   %logp = log_softmax(%logits) {axis=-1} : (f32[batch,70]) -> f32[batch,70]

#include <type_traits>

#include "ops/common.hpp"
#include "ops/gemm.hpp"

namespace kiln {
namespace {

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, 0);
  if (ctx.in(0).rank() < 1) ctx.fail("expected input of rank >= 1, got " + ctx.in(0).str());
  normalize_axis(ctx, ctx.node().attr_int("axis"), ctx.in(0).rank());
  return {ctx.in(0)};
}

class RowSoftmax : public Kernel {
 public:
  RowSoftmax(std::int64_t rows, std::int64_t n, bool log) : rows_(rows), n_(n), log_(log) {}
  void execute(dnnl::stream&, const KernelArgs& args) override {
    gemm::softmax_rows(static_cast<const float*>(args.in[0]), static_cast<float*>(args.out[0]), rows_, n_, log_);
  }
  std::string impl() const override { return log_ ? "kiln:log_softmax_rows" : "kiln:softmax_rows"; }

 private:
  std::int64_t rows_, n_;
  bool log_;
};

/// Primitive: dnnl::softmax_forward or dnnl::logsoftmax_forward (same descriptor shape in oneDNN 2.6).
template <class Primitive>
std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  auto md = plain_md(ctx.in[0]);
  int rank = ctx.in[0].rank();
  std::int64_t axis = ctx.node.attr_int("axis");
  int a = static_cast<int>(axis < 0 ? axis + rank : axis);
  if (a == rank - 1 && gemm::enabled()) {
    const auto dims = dims_of(ctx.in[0].shape);
    std::int64_t rows = 1;
    for (int i = 0; i + 1 < rank; ++i) rows *= dims[static_cast<std::size_t>(i)];
    return std::make_unique<RowSoftmax>(rows, dims.back(), std::is_same_v<Primitive, dnnl::logsoftmax_forward>);
  }
  typename Primitive::primitive_desc pd(typename Primitive::desc(dnnl::prop_kind::forward_inference, md, a),
                                        user_scratchpad_attr(), ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC, md, 0);
  kernel->output(s, DNNL_ARG_DST, md, 0);
  return kernel;
}

OpSchema schema(std::string name, std::string doc, KernelFn make_kernel) {
  return OpSchema{
      .name = std::move(name),
      .doc = std::move(doc),
      .inputs = {{"src"}},
      .attrs = {AttrSpec{"axis", AttrType::Int, Attr{std::int64_t{-1}}, "axis to normalize"}},
      .infer = infer,
      .make_kernel = make_kernel,
      .in_place = {0},
  };
}

}  // namespace

const OpSchema& op_softmax() {
  static const OpSchema s = schema("softmax", "exp(x) / sum(exp(x)) along `axis`", make<dnnl::softmax_forward>);
  return s;
}

const OpSchema& op_log_softmax() {
  static const OpSchema s =
      schema("log_softmax", "log(softmax(x)) along `axis`, computed stably", make<dnnl::logsoftmax_forward>);
  return s;
}

}  // namespace kiln
