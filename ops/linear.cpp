// linear: y = act(x · weightᵀ + bias) + residual over the last axis (PyTorch nn.Linear; weight stored
// [out, in]). `activation` and `residual` are what the fusion passes fold in; a model may also set them.
//   %h = linear(%x, %l1.weight, %l1.bias) : (f32[batch,seq,64], f32[256,64], f32[256]) -> f32[batch,seq,256]
// Kernel (add_linear, shared with the attention ops' projections), over the flattened leading dims:
//   - Kiln's GEMM (ops/gemm.hpp, AVX2+FMA CPUs) for constant weights: they are packed once into 16-column
//     panels; bias, the activation and the residual are applied as each block is stored;
//   - otherwise (weights given at run time, no AVX2/FMA, KILN_GEMM=onednn) one oneDNN matmul with the activation and residual as post-ops (eltwise, then binary add
//     of an [M,N] operand: both stay on the jit path per docs/onednn.md), reading the weights in place
//     as [N,K] (oneDNN's `ba` for a K x N matrix), 1.8x faster than `ab` on AVX2.
//   - quantized weights (i8 in s8panels16, bf16 in bf16panels16; docs/quantization.md) run on qgemm with the
//     same epilogue; where Kiln's GEMM is not enabled, oneDNN reads their dequantized f32 values.

#include <cmath>
#include <cstdio>

#include "ops/common.hpp"
#include "ops/eltwise.hpp"
#include "ops/gemm.hpp"
#include "ops/qgemm.hpp"

namespace kiln {

namespace {

// The activations linear takes: those Kiln's GEMM epilogue applies, so that a fused linear with constant
// weights always runs on Kiln's GEMM (with the oneDNN matmul's eltwise post-op otherwise).
bool linear_accepts(const ActivationDef& a) { return a.post_op && a.gemm_epilogue; }

const char* operand_base(const Operand& o, const KernelArgs& args, char* scratch) {
  switch (o.kind) {
    case Operand::Kind::Input: return static_cast<const char*>(args.in[o.index]);
    case Operand::Kind::Output: return static_cast<const char*>(args.out[o.index]);
    case Operand::Kind::Scratch: return scratch;
  }
  return nullptr;
}

// A linear step's source, destination and epilogue (bias, activation, residual) for one run, as both
// Kiln GEMMs (f32 panels and quantized) take them.
struct StepOperands {
  const float* src;
  float* dst;
  gemm::Epilogue ep;
};

StepOperands step_operands(const LinearStep& step, gemm::Activation act, const KernelArgs& args, char* scratch) {
  StepOperands o{};
  if (step.bias >= 0) o.ep.bias = static_cast<const float*>(args.in[step.bias]) + step.weight_row0;
  o.ep.activation = act;
  if (step.residual >= 0) {
    o.ep.residual = static_cast<const float*>(args.in[step.residual]);
    o.ep.ldr = step.out;
  }
  o.src = reinterpret_cast<const float*>(operand_base(step.src, args, scratch) + step.src.offset);
  o.dst = reinterpret_cast<float*>(const_cast<char*>(operand_base(step.dst, args, scratch)) + step.dst.offset);
  return o;
}

}  // namespace

namespace {

/// The panels of W's rows step.weight_row0.. for Kiln's GEMM: a view into the packed constant (kept alive by
/// its owner), or a private pack of plain W made now (counted in the kernel's packed_weight_bytes).
std::shared_ptr<const float> gemm_panels(DnnlKernel& kernel, const KernelCtx& ctx, const LinearStep& step,
                                         const ConstData& w) {
  const TensorType& type = ctx.in[static_cast<std::size_t>(step.weight)];
  const std::string& name = ctx.node.schema->inputs.at(static_cast<std::size_t>(step.weight)).name;
  if (type.layout == gemm::kPackedLayout) {
    // A plan file's bytes are checked here: the panels read must lie inside the constant.
    const std::size_t need = (gemm::packed_floats(step.weight_row0 + step.out, step.in)) * sizeof(float);
    if (step.weight_row0 % gemm::kPanel != 0 || w.bytes < need)
      ctx.node.fail("weight '" + name + "' in layout " + type.layout + " holds " + std::to_string(w.bytes) +
                    " bytes; rows " + std::to_string(step.weight_row0) + ".." +
                    std::to_string(step.weight_row0 + step.out) + " of " + std::to_string(step.in) + " columns need " +
                    std::to_string(need) + " from a row that is a multiple of " + std::to_string(gemm::kPanel));
    return std::shared_ptr<const float>(w.owner, static_cast<const float*>(w.data) + step.weight_row0 * step.in);
  }
  const std::size_t floats = gemm::packed_floats(step.out, step.in);
  auto* data =
      static_cast<float*>(std::aligned_alloc(64, std::max<std::size_t>((floats * sizeof(float) + 63) / 64 * 64, 64)));
  if (!data) throw std::bad_alloc();
  std::shared_ptr<const float> packed(data, [](const float* p) { std::free(const_cast<float*>(p)); });
  gemm::pack_weights(static_cast<const float*>(w.data) + step.weight_row0 * step.in, step.out, step.in, data);
  kernel.add_packed_weight_bytes(floats * sizeof(float));
  return packed;
}

}  // namespace

std::optional<qgemm::Format> quantized_format(const TensorType& t) {
  if (t.dtype == DType::i8 && t.layout == qgemm::kS8Layout) return qgemm::Format::s8;
  if (t.dtype == DType::bf16 && t.layout == qgemm::kBf16Layout) return qgemm::Format::bf16;
  return std::nullopt;
}

namespace {

// The quantized pack of an [n,k] weight, with a remark on what it did and the error it made (per panel of 16
// rows, so that only 16·k floats are unpacked at a time): ||W - deq(W)|| / ||W|| and max |W - deq(W)|.
void pack_quantized(PackCtx& ctx, std::size_t input, Quantize q) {
  const Value* w = ctx.node().inputs.at(input);
  const qgemm::Format f = q == Quantize::int8 ? qgemm::Format::s8 : qgemm::Format::bf16;
  const std::int64_t n = w->type.shape[0].value, k = w->type.shape[1].value;
  TensorType type = w->type;
  type.dtype = f == qgemm::Format::s8 ? DType::i8 : DType::bf16;
  type.layout = qgemm::layout_name(f);
  const std::size_t bytes = qgemm::packed_bytes(f, n, k);
  const auto* src = static_cast<const float*>(w->constant.data);
  bool measured = false;
  double err2 = 0, ref2 = 0, max_abs = 0;
  ctx.replace({PackedInput{input, type, 0, bytes}}, bytes, [&](void* out) {
    qgemm::pack(f, src, n, k, out);
    std::vector<float> deq(static_cast<std::size_t>(std::min<std::int64_t>(n, qgemm::kPanel) * k));
    for (std::int64_t r0 = 0; r0 < n; r0 += qgemm::kPanel) {
      const std::int64_t rows = std::min<std::int64_t>(qgemm::kPanel, n - r0);
      qgemm::unpack(f, static_cast<const char*>(out) + r0 / qgemm::kPanel * qgemm::panel_bytes(f, k), rows, k,
                    deq.data());
      for (std::int64_t i = 0; i < rows * k; ++i) {
        const double ref = src[r0 * k + i], d = ref - static_cast<double>(deq[static_cast<std::size_t>(i)]);
        err2 += d * d;
        ref2 += ref * ref;
        max_abs = std::max(max_abs, std::fabs(d));
      }
    }
    measured = true;
  });
  const std::size_t f32_bytes = static_cast<std::size_t>(n * k) * sizeof(float);
  char ratio[160];
  std::snprintf(ratio, sizeof ratio, "%zu bytes in f32 -> %zu (%.2fx)", f32_bytes, bytes,
                static_cast<double>(bytes) / static_cast<double>(std::max<std::size_t>(f32_bytes, 1)));
  std::string message =
      "quantized '" + w->name + "' " + (f == qgemm::Format::s8 ? "to s8 per output channel" : "to bf16") + ": " + ratio;
  if (measured) {
    char err[160];
    std::snprintf(err, sizeof err, "; error vs f32: relative %.3g (||W-deq(W)||/||W||), max abs %.3g",
                  ref2 > 0 ? std::sqrt(err2 / ref2) : 0.0, max_abs);
    message += err;
  }
  ctx.note(message);
}

}  // namespace

void pack_gemm_weight(PackCtx& ctx, std::size_t input, const std::vector<std::int64_t>& row0s) {
  const Value* w = ctx.node().inputs.at(input);
  const Quantize q = ctx.quantize();
  if (!w) return;
  if (!w->is_constant()) {
    if (q != Quantize::none) ctx.keep(input, "read at run time (not a constant), so it cannot be packed ahead");
    return;
  }
  if (!w->type.plain() || w->type.dtype != DType::f32 || w->type.rank() != 2 || !is_concrete(w->type.shape)) {
    if (q != Quantize::none) ctx.keep(input, "not a plain f32 matrix of known shape (" + w->type.str() + ")");
    return;
  }
  if (q == Quantize::none && !gemm::enabled()) {
    ctx.keep(input,
             "oneDNN runs the products here (" +
                 std::string(gemm::available() ? "KILN_GEMM=onednn" : "no AVX2/FMA under the instruction-set cap") +
                 ")");
    return;
  }
  for (std::int64_t r : row0s)
    if (r % gemm::kPanel != 0) {
      ctx.keep(input, "a step reads it from row " + std::to_string(r) + ", not a multiple of " +
                          std::to_string(gemm::kPanel) + "; each kernel packs its rows itself");
      return;
    }
  if (q != Quantize::none) {
    pack_quantized(ctx, input, q);
    return;
  }
  const std::int64_t n = w->type.shape[0].value, k = w->type.shape[1].value;
  TensorType type = w->type;
  type.layout = gemm::kPackedLayout;
  const std::size_t bytes = gemm::packed_floats(n, k) * sizeof(float);
  const auto* src = static_cast<const float*>(w->constant.data);
  ctx.replace({PackedInput{input, type, 0, bytes}}, bytes,
              [src, n, k](void* out) { gemm::pack_weights(src, n, k, static_cast<float*>(out)); });
}

void add_linear(DnnlKernel& kernel, const KernelCtx& ctx, const LinearStep& step) {
  constexpr std::size_t kF = sizeof(float);
  const ConstData* w = ctx.constant(static_cast<std::size_t>(step.weight));
  const TensorType& wtype = ctx.in[static_cast<std::size_t>(step.weight)];
  const bool packed_weight = wtype.layout == gemm::kPackedLayout;
  const std::optional<qgemm::Format> quantized = quantized_format(wtype);
  if ((packed_weight || quantized) && !w) ctx.node.fail("internal: weights in " + wtype.layout + " must be a constant");
  // Quantized weights (docs/quantization.md): rows weight_row0.. of the panels, checked to lie inside the
  // constant (a plan file's bytes).
  const void* qpanels = nullptr;
  if (quantized) {
    const std::string& name = ctx.node.schema->inputs.at(static_cast<std::size_t>(step.weight)).name;
    const std::size_t need = qgemm::packed_bytes(*quantized, step.weight_row0 + step.out, step.in);
    if (step.weight_row0 % qgemm::kPanel != 0 || w->bytes < need)
      ctx.node.fail("weight '" + name + "' in layout " + wtype.layout + " holds " + std::to_string(w->bytes) +
                    " bytes; rows " + std::to_string(step.weight_row0) + ".." +
                    std::to_string(step.weight_row0 + step.out) + " of " + std::to_string(step.in) + " columns need " +
                    std::to_string(need) + " from a row that is a multiple of " + std::to_string(qgemm::kPanel));
    qpanels = static_cast<const char*>(w->data) +
              static_cast<std::size_t>(step.weight_row0 / qgemm::kPanel) * qgemm::panel_bytes(*quantized, step.in);
  }
  if (quantized && gemm::enabled() && qgemm::available(*quantized)) {
    const std::shared_ptr<const void> panels(w->owner, qpanels);
    const gemm::Activation act = gemm_activation(find_activation(step.activation));
    const qgemm::Format f = *quantized;
    kernel.add_step(
        [step, panels, act, f](const KernelArgs& args, char* scratch) {
          const StepOperands o = step_operands(step, act, args, scratch);
          qgemm::multiply(f, o.src, step.in, panels.get(), o.dst, step.out, step.rows, step.out, step.in, o.ep);
        },
        qgemm::variant(f));
    return;
  }
  if (w && !quantized && gemm::enabled()) {
    std::shared_ptr<const float> packed = gemm_panels(kernel, ctx, step, *w);
    const gemm::Activation act = gemm_activation(find_activation(step.activation));
    kernel.add_step(
        [step, packed, act](const KernelArgs& args, char* scratch) {
          const StepOperands o = step_operands(step, act, args, scratch);
          gemm::multiply(o.src, step.in, packed.get(), o.dst, step.out, step.rows, step.out, step.in, o.ep);
        },
        gemm::variant());
    return;
  }
  auto src = plain_md({step.rows, step.in});
  auto wei = strided_md({step.in, step.out}, {1, step.in});
  auto dst = plain_md({step.rows, step.out});
  auto bias = plain_md({1, step.out});
  dnnl::post_ops ops;
  if (const ActivationDef* a = find_activation(step.activation)) {
    Eltwise e = *eltwise_of(*a, {});
    ops.append_eltwise(1.0f, e.alg, e.alpha, e.beta);
  }
  if (step.residual >= 0) ops.append_binary(dnnl::algorithm::binary_add, dst);
  auto attr = user_scratchpad_attr();
  attr.set_post_ops(ops);
  auto desc = step.bias >= 0 ? dnnl::matmul::desc(src, wei, bias, dst) : dnnl::matmul::desc(src, wei, dst);
  dnnl::matmul::primitive_desc pd(desc, attr, ctx.engine);
  int s = kernel.add(pd);
  auto bind = [&](int arg, const dnnl::memory::desc& md, const Operand& o) {
    switch (o.kind) {
      case Operand::Kind::Input: kernel.input(s, arg, md, o.index, o.offset); break;
      case Operand::Kind::Output: kernel.output(s, arg, md, o.index, o.offset); break;
      case Operand::Kind::Scratch: kernel.scratch(s, arg, md, o.offset); break;
    }
  };
  bind(DNNL_ARG_SRC, src, step.src);
  if (packed_weight || quantized) {
    // Packed for Kiln's GEMM (a plan file from a machine that runs it) or quantized, where oneDNN runs the
    // products (no AVX2/FMA under the cap, KILN_GEMM=onednn): oneDNN reads a private f32 copy of the rows
    // it needs, made once here (the dequantized values of quantized weights).
    auto plain = std::shared_ptr<float>(
        static_cast<float*>(std::malloc(static_cast<std::size_t>(step.out * step.in) * kF)), std::free);
    if (!plain) throw std::bad_alloc();
    if (quantized) {
      qgemm::unpack(*quantized, qpanels, step.out, step.in, plain.get());
    } else {
      const std::shared_ptr<const float> panels = gemm_panels(kernel, ctx, step, *w);
      gemm::unpack_weights(panels.get(), step.out, step.in, plain.get());
    }
    kernel.fixed(s, DNNL_ARG_WEIGHTS, dnnl::memory(wei, ctx.engine, plain.get()));
    kernel.hold(std::move(plain));
    kernel.add_packed_weight_bytes(static_cast<std::size_t>(step.out * step.in) * kF);
  } else {
    kernel.input(s, DNNL_ARG_WEIGHTS, wei, step.weight, static_cast<std::size_t>(step.weight_row0 * step.in) * kF);
  }
  if (step.bias >= 0) kernel.input(s, DNNL_ARG_BIAS, bias, step.bias, static_cast<std::size_t>(step.weight_row0) * kF);
  if (step.residual >= 0)
    kernel.input(s, DNNL_ARG_ATTR_MULTIPLE_POST_OP(ops.len() - 1) | DNNL_ARG_SRC_1, dst, step.residual);
  bind(DNNL_ARG_DST, dst, step.dst);
}

namespace {

enum { kSrc, kWeight, kBias, kResidual };

std::vector<TensorType> infer(const ShapeCtx& ctx) {
  expect_f32(ctx, kSrc);
  expect_gemm_weight_type(ctx, kWeight);
  const TensorType& x = ctx.in(kSrc);
  if (x.rank() < 1) ctx.fail("expected input 'src' of rank >= 1, got " + x.str());
  ctx.expect_rank(kWeight, 2);
  const Shape& w = ctx.in(kWeight).shape;
  const Dim& k = x.shape.back();
  if (!same_dim(w[1], k))
    ctx.fail("expected weight of shape [*," + k.str() + "] for input " + x.str() + ", got " + shape_str(w));
  if (ctx.has(kBias)) {
    expect_f32(ctx, kBias);
    expect_weight_shape(ctx, kBias, {w[0]});
  }
  Shape out = x.shape;
  out.back() = w[0];
  if (ctx.has(kResidual)) {
    expect_f32(ctx, kResidual);
    if (ctx.in(kResidual).shape != out)
      ctx.fail("expected residual of shape " + shape_str(out) + ", got " + ctx.in(kResidual).str());
  }
  check_activation_attr(ctx);
  return {TensorType{DType::f32, out}};
}

std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  auto dims = dims_of(ctx.in[kSrc].shape);
  LinearStep step;
  step.in = dims.back();
  step.out = ctx.in[kWeight].shape[0].value;
  step.rows = 1;
  for (std::size_t i = 0; i + 1 < dims.size(); ++i) step.rows *= dims[i];
  step.src = Operand::input(kSrc);
  step.dst = Operand::output(0);
  step.weight = kWeight;
  step.bias = ctx.has(kBias) ? kBias : -1;
  step.activation = ctx.node.attr_string("activation");
  step.residual = ctx.has(kResidual) ? kResidual : -1;
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  add_linear(*kernel, ctx, step);
  return kernel;
}

void pack(PackCtx& ctx) { pack_gemm_weight(ctx, kWeight, {0}); }

}  // namespace

const OpSchema& op_linear() {
  static const OpSchema s{
      .name = "linear",
      .doc = "act(x · weightᵀ + bias) + residual over the last axis; weight [out_features, in_features] (nn.Linear)",
      .inputs = {{"src"}, {"weight", false, "weight"}, {"bias", true, "bias"}, {"residual", true}},
      .attrs = activation_attrs(linear_accepts, "applied before the residual"),
      .infer = infer,
      .make_kernel = make,
      .post_ops = {.activations = linear_accepts, .residual = kResidual, .activation_first = true},
      .pack = pack,
  };
  return s;
}

}  // namespace kiln
