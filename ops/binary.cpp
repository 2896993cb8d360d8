// add, sub, mul, div, min, max, prelu, pow_tensor: elementwise with NumPy broadcasting.
//   %r = add(%x, %a) : (f32[batch,seq,64], f32[batch,seq,64]) -> f32[batch,seq,64]
//   %m = max(%i, %j) : (i64[batch,seq], i64[1]) -> i64[batch,seq]
// f32 add/sub/mul/div/min/max: oneDNN binary, which broadcasts its second operand only; when the first
// operand is the one broadcast, the commutative ops swap operands, and sub and div use a strided loop
// (ops/broadcast.hpp). i64 and i32 operands (index arithmetic in exported graphs), prelu and pow_tensor
// run that loop. Both operands have one dtype; pow_tensor's exponent may differ from its base.

#include <cmath>
#include <limits>
#include <type_traits>

#include "ops/broadcast.hpp"
#include "ops/common.hpp"

namespace kiln {
namespace {

enum class BinOp : std::uint8_t { Add, Sub, Mul, Div, Min, Max, Prelu, Pow, ModFloor, ModTrunc };

// The dtypes each op computes in: f32 for all; prelu f32 only; pow_tensor f32, i64, i32; the others also
// f64, i64, i32, i8 and u8 (a loop).
template <BinOp Op>
bool supported(DType t) {
  if (t == DType::f32) return true;
  if (Op == BinOp::Prelu) return false;
  if (t == DType::i64 || t == DType::i32) return true;
  return Op != BinOp::Pow && (t == DType::f64 || t == DType::i8 || t == DType::u8);
}

template <BinOp Op>
std::vector<TensorType> infer(const ShapeCtx& ctx) {
  const TensorType& a = ctx.in(0);
  const TensorType& b = ctx.in(1);
  const char* want = Op == BinOp::Prelu ? "f32" : Op == BinOp::Pow ? "f32, i64 or i32" : "f32, f64, i64, i32, i8 or u8";
  if (!supported<Op>(a.dtype)) ctx.fail("expected input 0 of type " + std::string(want) + ", got " + a.str());
  if (!supported<Op>(b.dtype)) ctx.fail("expected input 1 of type " + std::string(want) + ", got " + b.str());
  if (Op != BinOp::Pow && a.dtype != b.dtype)
    ctx.fail("expected both inputs of one type, got " + a.str() + " and " + b.str());
  Shape out = broadcast(ctx, a.shape, b.shape);
  if (Op == BinOp::Prelu && out != a.shape)
    ctx.fail("expected a slope that broadcasts to the input's shape " + shape_str(a.shape) + ", got " +
             shape_str(b.shape));
  // Same shapes and layouts: computed in that layout. Otherwise plain (broadcasting is done on plain data).
  std::string layout = a.shape == b.shape && a.layout == b.layout ? a.layout : std::string();
  return {TensorType{a.dtype, out, layout}};
}

// Integer division truncates (C++'s and ONNX Runtime's); by zero it gives 0 instead of trapping, and
// INT_MIN / -1 wraps.
template <class T>
T int_div(T x, T z) {
  if (z == 0) return 0;
  if (z == -1) return static_cast<T>(-static_cast<std::make_unsigned_t<T>>(x));
  return x / z;
}

// Integer power by squaring (exact, wrapping like the C++ product); a negative exponent gives 1/x^n
// truncated: 1 for x = 1, ±1 for x = -1, else 0 (x = 0: 0, as for division by zero above).
template <class T>
T int_pow(T x, std::int64_t n) {
  if (n < 0) return x == 1 ? 1 : x == -1 ? (n % 2 ? -1 : 1) : 0;
  using U = std::make_unsigned_t<T>;
  U r = 1, base = static_cast<U>(x);
  for (; n; n >>= 1, base *= base)
    if (n & 1) r *= base;
  return static_cast<T>(r);
}

// mod: the remainder of x / z with the sign of z (floor: Python's %, ONNX Mod's fmod = 0) or of x (trunc: C's
// fmod, fmod = 1). Integers by zero give 0, as div does.
template <bool Floor, class T>
T mod(T x, T z) {
  T r;
  if constexpr (std::is_floating_point_v<T>) {
    r = std::fmod(x, z);
  } else {
    if (z == 0) return 0;
    if constexpr (std::is_signed_v<T>) {
      if (z == -1) return 0;  // INT_MIN % -1 would trap
    }
    r = static_cast<T>(x % z);
  }
  if constexpr (Floor && std::is_signed_v<T>) {
    if (r != 0 && ((r < 0) != (z < 0))) r = static_cast<T>(r + z);
  }
  return r;
}

template <BinOp Op, class T>
struct Fn {
  T operator()(T x, T z) const {
    if constexpr (std::is_integral_v<T> && (Op == BinOp::Add || Op == BinOp::Sub || Op == BinOp::Mul)) {
      using U = std::make_unsigned_t<T>;  // wraps on overflow instead of undefined behaviour
      const U u = static_cast<U>(x), v = static_cast<U>(z);
      return static_cast<T>(Op == BinOp::Add ? u + v : Op == BinOp::Sub ? u - v : u * v);
    } else if constexpr (Op == BinOp::Add) return x + z;
    else if constexpr (Op == BinOp::Sub) return x - z;
    else if constexpr (Op == BinOp::Mul) return x * z;
    else if constexpr (Op == BinOp::Div) {
      if constexpr (std::is_floating_point_v<T>) return x / z;
      else return int_div(x, z);
    } else if constexpr (Op == BinOp::ModFloor || Op == BinOp::ModTrunc) {
      return mod<Op == BinOp::ModFloor>(x, z);
    } else if constexpr (Op == BinOp::Min) return z < x ? z : x;
    else if constexpr (Op == BinOp::Max) return z > x ? z : x;
    else return x < 0 ? x * z : x;  // Prelu
  }
};

// pow_tensor: x^y in the base's type. A float exponent on an integer base is computed in double and
// truncated (ONNX's Pow with int base and float exponent); an integer exponent on an integer base is exact.
template <class T, class E>
struct PowFn {
  T operator()(T x, E y) const {
    if constexpr (std::is_integral_v<T> && std::is_integral_v<E>) return int_pow(x, static_cast<std::int64_t>(y));
    else if constexpr (std::is_integral_v<T>) {
      const double v = std::pow(static_cast<double>(x), static_cast<double>(y));
      // Out of range (and NaN) would be undefined as a cast: clamp.
      if (!(v >= static_cast<double>(std::numeric_limits<T>::min()))) return std::numeric_limits<T>::min();
      if (!(v < static_cast<double>(std::numeric_limits<T>::max()))) return std::numeric_limits<T>::max();
      return static_cast<T>(v);
    } else if constexpr (std::is_integral_v<E>) {
      const double v = std::pow(static_cast<double>(x), static_cast<double>(y));
      constexpr double kMax = std::numeric_limits<float>::max();  // beyond it the cast is undefined: ±inf
      return v > kMax    ? std::numeric_limits<float>::infinity()
             : v < -kMax ? -std::numeric_limits<float>::infinity()
                         : static_cast<float>(v);
    } else {
      return std::pow(x, y);
    }
  }
};

template <class A, class B, class F>
class LoopKernel : public Kernel {
 public:
  LoopKernel(Broadcast bc, const char* impl) : bc_(std::move(bc)), impl_(impl) {}
  void execute(dnnl::stream&, const KernelArgs& args) override {
    broadcast_binary<A, B, A>(bc_, args.in[0], args.in[1], args.out[0], F{});
  }
  std::string impl() const override { return impl_; }

 private:
  Broadcast bc_;
  const char* impl_;
};

Broadcast broadcast_of(const KernelCtx& ctx) {
  return Broadcast({dims_of(ctx.in[0].shape), dims_of(ctx.in[1].shape)}, dims_of(ctx.out[0].shape));
}

template <BinOp Op>
std::unique_ptr<Kernel> loop_kernel(const KernelCtx& ctx, const char* impl) {
  switch (ctx.in[0].dtype) {
    case DType::f64: return std::make_unique<LoopKernel<double, double, Fn<Op, double>>>(broadcast_of(ctx), impl);
    case DType::i8:
      return std::make_unique<LoopKernel<std::int8_t, std::int8_t, Fn<Op, std::int8_t>>>(broadcast_of(ctx), impl);
    case DType::u8:
      return std::make_unique<LoopKernel<std::uint8_t, std::uint8_t, Fn<Op, std::uint8_t>>>(broadcast_of(ctx), impl);
    case DType::i64:
      return std::make_unique<LoopKernel<std::int64_t, std::int64_t, Fn<Op, std::int64_t>>>(broadcast_of(ctx), impl);
    case DType::i32:
      return std::make_unique<LoopKernel<std::int32_t, std::int32_t, Fn<Op, std::int32_t>>>(broadcast_of(ctx), impl);
    default: return std::make_unique<LoopKernel<float, float, Fn<Op, float>>>(broadcast_of(ctx), impl);
  }
}

template <class T>
std::unique_ptr<Kernel> pow_kernel(const KernelCtx& ctx) {
  constexpr const char* kImpl = "kiln:pow_loop";
  switch (ctx.in[1].dtype) {
    case DType::i64:
      return std::make_unique<LoopKernel<T, std::int64_t, PowFn<T, std::int64_t>>>(broadcast_of(ctx), kImpl);
    case DType::i32:
      return std::make_unique<LoopKernel<T, std::int32_t, PowFn<T, std::int32_t>>>(broadcast_of(ctx), kImpl);
    default: return std::make_unique<LoopKernel<T, float, PowFn<T, float>>>(broadcast_of(ctx), kImpl);
  }
}

std::unique_ptr<Kernel> make_pow(const KernelCtx& ctx) {
  switch (ctx.in[0].dtype) {
    case DType::i64: return pow_kernel<std::int64_t>(ctx);
    case DType::i32: return pow_kernel<std::int32_t>(ctx);
    default: return pow_kernel<float>(ctx);
  }
}

std::unique_ptr<Kernel> make_prelu(const KernelCtx& ctx) {
  return std::make_unique<LoopKernel<float, float, Fn<BinOp::Prelu, float>>>(broadcast_of(ctx), "kiln:prelu_loop");
}

template <BinOp Op>
constexpr dnnl::algorithm kAlg = Op == BinOp::Add   ? dnnl::algorithm::binary_add
                                 : Op == BinOp::Sub ? dnnl::algorithm::binary_sub
                                 : Op == BinOp::Mul ? dnnl::algorithm::binary_mul
                                 : Op == BinOp::Div ? dnnl::algorithm::binary_div
                                 : Op == BinOp::Min ? dnnl::algorithm::binary_min
                                                    : dnnl::algorithm::binary_max;

template <BinOp Op>
std::unique_ptr<Kernel> make(const KernelCtx& ctx) {
  if (ctx.in[0].dtype != DType::f32) return loop_kernel<Op>(ctx, "kiln:typed_broadcast");
  constexpr dnnl::algorithm kA = kAlg<Op>;
  if (!ctx.out[0].plain()) {  // same shapes, one shared non-plain layout
    auto md = md_of(ctx.out[0]);
    dnnl::binary::primitive_desc pd(dnnl::binary::desc(kA, md, md, md), user_scratchpad_attr(), ctx.engine);
    auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
    int s = kernel->add(pd);
    kernel->input(s, DNNL_ARG_SRC_0, md, 0);
    kernel->input(s, DNNL_ARG_SRC_1, md, 1);
    kernel->output(s, DNNL_ARG_DST, md, 0);
    return kernel;
  }
  auto out = dims_of(ctx.out[0].shape);
  auto a = padded_dims(dims_of(ctx.in[0].shape), out.size());
  auto b = padded_dims(dims_of(ctx.in[1].shape), out.size());
  int src0 = 0, src1 = 1;
  if (a != out) {
    constexpr bool kCommutative = Op != BinOp::Sub && Op != BinOp::Div;
    if (!kCommutative || b != out) return loop_kernel<Op>(ctx, "kiln:tbb_broadcast");
    std::swap(a, b);
    std::swap(src0, src1);
  }
  auto md0 = plain_md(a), md1 = plain_md(b), dst = plain_md(out);
  dnnl::binary::primitive_desc pd(dnnl::binary::desc(kA, md0, md1, dst), user_scratchpad_attr(), ctx.engine);
  auto kernel = std::make_unique<DnnlKernel>(ctx.engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_SRC_0, md0, src0);
  kernel->input(s, DNNL_ARG_SRC_1, md1, src1);
  kernel->output(s, DNNL_ARG_DST, dst, 0);
  return kernel;
}

OpSchema binary_schema(const char* name, const char* doc, InferFn infer, KernelFn fn, bool layouts = true) {
  return OpSchema{.name = name,
                  .doc = doc,
                  .inputs = {{"a"}, {"b"}},
                  .infer = infer,
                  .make_kernel = fn,
                  .in_place = {0},
                  .layout = layouts ? layout_of_first_input : nullptr};
}

std::unique_ptr<Kernel> make_mod(const KernelCtx& ctx) {
  return ctx.node.attr_bool("fmod") ? loop_kernel<BinOp::ModTrunc>(ctx, "kiln:mod_loop")
                                    : loop_kernel<BinOp::ModFloor>(ctx, "kiln:mod_loop");
}

}  // namespace

const OpSchema& op_add() {
  static const OpSchema s = binary_schema("add", "a + b, broadcast", infer<BinOp::Add>, make<BinOp::Add>);
  return s;
}
const OpSchema& op_sub() {
  static const OpSchema s = binary_schema("sub", "a - b, broadcast", infer<BinOp::Sub>, make<BinOp::Sub>);
  return s;
}
const OpSchema& op_mul() {
  static const OpSchema s = binary_schema("mul", "a * b, broadcast", infer<BinOp::Mul>, make<BinOp::Mul>);
  return s;
}
const OpSchema& op_div() {
  static const OpSchema s =
      binary_schema("div", "a / b, broadcast (integers: truncated; by zero: 0)", infer<BinOp::Div>, make<BinOp::Div>);
  return s;
}
const OpSchema& op_min() {
  static const OpSchema s = binary_schema("min", "min(a, b), broadcast", infer<BinOp::Min>, make<BinOp::Min>);
  return s;
}
const OpSchema& op_max() {
  static const OpSchema s = binary_schema("max", "max(a, b), broadcast", infer<BinOp::Max>, make<BinOp::Max>);
  return s;
}
const OpSchema& op_prelu() {
  static const OpSchema s = binary_schema("prelu", "a if a >= 0 else slope * a; the slope b broadcasts to a",
                                          infer<BinOp::Prelu>, make_prelu, false);
  return s;
}
const OpSchema& op_pow_tensor() {
  static const OpSchema s =
      binary_schema("pow_tensor", "a ** b elementwise, broadcast, in a's type (a, b: f32, i64 or i32)",
                    infer<BinOp::Pow>, make_pow, false);
  return s;
}

const OpSchema& op_mod() {
  static const OpSchema s = [] {
    OpSchema o = binary_schema("mod", "the remainder of a / b, broadcast: with b's sign (Python's %), or a's (fmod)",
                               infer<BinOp::ModFloor>, make_mod, false);
    o.attrs = {AttrSpec{"fmod", AttrType::Bool, Attr{false}, "C's fmod: the remainder takes a's sign"}};
    return o;
  }();
  return s;
}

}  // namespace kiln
