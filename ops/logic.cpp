// Comparisons, logic, where and cast: the ops on non-f32 data that exported graphs use for masks
// (torch exports attention masks as equal/where/cast on i64 ids). bool is one byte, 0 or 1 (any non-zero
// byte reads as true). Kernels are loops over NumPy-broadcast operands (ops/broadcast.hpp).
//   %m = equal(%ids, %pad) : (i64[batch,seq], i64[]) -> bool[batch,seq]
//   %s = where(%m, %neg, %scores) : (bool[batch,1,1,seq], f32[], f32[batch,heads,seq,seq]) -> f32[...]
//   %f = cast(%m) {to="f32"} : (bool[batch,seq]) -> f32[batch,seq]

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>
#include <type_traits>

#include "ops/broadcast.hpp"
#include "ops/common.hpp"

namespace kiln {
namespace {

using Bool = std::uint8_t;

enum class Cmp : std::uint8_t { Eq, Lt, Le, Gt, Ge };
enum class Logic : std::uint8_t { And, Or, Xor };

std::string dtype_list(std::initializer_list<DType> ts) {
  std::string s;
  for (DType t : ts) s += (s.empty() ? "" : ", ") + std::string(dtype_name(t));
  return s;
}

void expect_one_of(const ShapeCtx& ctx, std::size_t i, std::initializer_list<DType> ts) {
  for (DType t : ts)
    if (ctx.in(i).dtype == t) return;
  ctx.fail("expected input " + std::to_string(i) + " of type " + dtype_list(ts) + ", got " + ctx.in(i).str());
}

Broadcast broadcast_of(const KernelCtx& ctx) {
  std::vector<std::vector<std::int64_t>> ins;
  for (const TensorType& t : ctx.in) ins.push_back(dims_of(t.shape));
  return Broadcast(ins, dims_of(ctx.out[0].shape));
}

// ---- comparisons: equal, less, less_equal, greater, greater_equal ----

std::vector<TensorType> infer_compare(const ShapeCtx& ctx) {
  for (std::size_t i : {0, 1}) expect_one_of(ctx, i, {DType::f32, DType::i64, DType::i32, DType::boolean});
  if (ctx.in(0).dtype != ctx.in(1).dtype)
    ctx.fail("expected both inputs of one type, got " + ctx.in(0).str() + " and " + ctx.in(1).str());
  return {TensorType{DType::boolean, broadcast(ctx, ctx.in(0).shape, ctx.in(1).shape)}};
}

template <Cmp C, class T>
struct CmpFn {
  Bool operator()(T x, T z) const {
    if constexpr (std::is_same_v<T, Bool>) {  // bools compare as truth values
      x = x != 0;
      z = z != 0;
    }
    if constexpr (C == Cmp::Eq) return x == z;
    else if constexpr (C == Cmp::Lt) return x < z;
    else if constexpr (C == Cmp::Le) return x <= z;
    else if constexpr (C == Cmp::Gt) return x > z;
    else return x >= z;
  }
};

template <class T, class Y, class F>
class BinaryLoop : public Kernel {
 public:
  BinaryLoop(Broadcast bc, const char* impl) : bc_(std::move(bc)), impl_(impl) {}
  void execute(dnnl::stream&, const KernelArgs& args) override {
    broadcast_binary<T, T, Y>(bc_, args.in[0], args.in[1], args.out[0], F{});
  }
  std::string impl() const override { return impl_; }

 private:
  Broadcast bc_;
  const char* impl_;
};

template <Cmp C>
std::unique_ptr<Kernel> make_compare(const KernelCtx& ctx) {
  constexpr const char* kImpl = "kiln:compare";
  switch (ctx.in[0].dtype) {
    case DType::i64:
      return std::make_unique<BinaryLoop<std::int64_t, Bool, CmpFn<C, std::int64_t>>>(broadcast_of(ctx), kImpl);
    case DType::i32:
      return std::make_unique<BinaryLoop<std::int32_t, Bool, CmpFn<C, std::int32_t>>>(broadcast_of(ctx), kImpl);
    case DType::boolean: return std::make_unique<BinaryLoop<Bool, Bool, CmpFn<C, Bool>>>(broadcast_of(ctx), kImpl);
    default: return std::make_unique<BinaryLoop<float, Bool, CmpFn<C, float>>>(broadcast_of(ctx), kImpl);
  }
}

// ---- logical_and, logical_or, logical_xor, logical_not ----

std::vector<TensorType> infer_logic(const ShapeCtx& ctx) {
  for (std::size_t i = 0; i < ctx.num_inputs(); ++i) expect_one_of(ctx, i, {DType::boolean});
  Shape out = ctx.in(0).shape;
  if (ctx.num_inputs() > 1) out = broadcast(ctx, out, ctx.in(1).shape);
  return {TensorType{DType::boolean, out}};
}

template <Logic L>
struct LogicFn {
  Bool operator()(Bool x, Bool z) const {
    const bool a = x != 0, b = z != 0;
    if constexpr (L == Logic::And) return a && b;
    else if constexpr (L == Logic::Or) return a || b;
    else return a != b;
  }
};

template <Logic L>
std::unique_ptr<Kernel> make_logic(const KernelCtx& ctx) {
  return std::make_unique<BinaryLoop<Bool, Bool, LogicFn<L>>>(broadcast_of(ctx), "kiln:logic");
}

class NotKernel : public Kernel {
 public:
  explicit NotKernel(Broadcast bc) : bc_(std::move(bc)) {}
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* x = static_cast<const Bool*>(args.in[0]);
    auto* y = static_cast<Bool*>(args.out[0]);
    bc_.for_each([&](const std::int64_t* off, const std::int64_t*, std::int64_t d, std::int64_t n) {
      for (std::int64_t j = 0; j < n; ++j) y[d + j] = x[off[0] + j] == 0;
    });
  }
  std::string impl() const override { return "kiln:logic"; }

 private:
  Broadcast bc_;
};

std::unique_ptr<Kernel> make_not(const KernelCtx& ctx) { return std::make_unique<NotKernel>(broadcast_of(ctx)); }

// ---- is_nan, is_inf ----

std::vector<TensorType> infer_float_test(const ShapeCtx& ctx) {
  expect_one_of(ctx, 0, {DType::f32, DType::f64});
  return {TensorType{DType::boolean, ctx.in(0).shape}};
}

template <class T>
class FloatTestKernel : public Kernel {
 public:
  FloatTestKernel(std::int64_t n, bool nan, bool pos, bool neg)
      : bc_(std::vector<std::vector<std::int64_t>>{std::vector<std::int64_t>{n}}, {n}),
        nan_(nan),
        pos_(pos),
        neg_(neg) {}
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* x = static_cast<const T*>(args.in[0]);
    auto* y = static_cast<Bool*>(args.out[0]);
    const bool nan = nan_, pos = pos_, neg = neg_;
    bc_.for_each([&](const std::int64_t*, const std::int64_t*, std::int64_t d, std::int64_t n) {
      for (std::int64_t j = d; j < d + n; ++j) {
        const T v = x[j];
        y[j] = nan ? std::isnan(v) : std::isinf(v) && (v > 0 ? pos : neg);
      }
    });
  }
  std::string impl() const override { return "kiln:float_test"; }

 private:
  Broadcast bc_;
  bool nan_, pos_, neg_;
};

std::unique_ptr<Kernel> make_float_test(const KernelCtx& ctx) {
  const bool nan = ctx.node.op == "is_nan";
  const bool pos = !nan && ctx.node.attr_bool("detect_positive");
  const bool neg = !nan && ctx.node.attr_bool("detect_negative");
  const std::int64_t n = numel_of(ctx.in[0].shape);
  if (ctx.in[0].dtype == DType::f64) return std::make_unique<FloatTestKernel<double>>(n, nan, pos, neg);
  return std::make_unique<FloatTestKernel<float>>(n, nan, pos, neg);
}

// ---- where(cond, x, y) ----

std::vector<TensorType> infer_where(const ShapeCtx& ctx) {
  expect_one_of(ctx, 0, {DType::boolean});
  const DType t = ctx.in(1).dtype;
  if (t != ctx.in(2).dtype)
    ctx.fail("expected x and y (inputs 1 and 2) of one type, got " + ctx.in(1).str() + " and " + ctx.in(2).str());
  const std::size_t size = dtype_size(t);
  if (size != 1 && size != 4 && size != 8)
    ctx.fail("expected x and y of a 1-, 4- or 8-byte type, got " + ctx.in(1).str());
  Shape out = broadcast(ctx, broadcast(ctx, ctx.in(0).shape, ctx.in(1).shape), ctx.in(2).shape);
  return {TensorType{t, out}};
}

// Where moves bytes: one kernel per element size.
template <class T>
class WhereKernel : public Kernel {
 public:
  explicit WhereKernel(Broadcast bc) : bc_(std::move(bc)) {}
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* c = static_cast<const Bool*>(args.in[0]);
    const auto* x = static_cast<const T*>(args.in[1]);
    const auto* z = static_cast<const T*>(args.in[2]);
    auto* y = static_cast<T*>(args.out[0]);
    bc_.for_each([&](const std::int64_t* off, const std::int64_t* step, std::int64_t d, std::int64_t n) {
      const Bool* cc = c + off[0];
      const T* xx = x + off[1];
      const T* zz = z + off[2];
      T* out = y + d;
      // Steps of 0 and 1 (a mask broadcast over rows, a scalar fill value) get loops with constant steps.
      const int pattern =
          (step[0] <= 1 && step[1] <= 1 && step[2] <= 1) ? static_cast<int>(step[0] * 4 + step[1] * 2 + step[2]) : -1;
      switch (pattern) {
        case 7: return run<1, 1, 1>(cc, xx, zz, out, n);
        case 6: return run<1, 1, 0>(cc, xx, zz, out, n);
        case 5: return run<1, 0, 1>(cc, xx, zz, out, n);
        case 4: return run<1, 0, 0>(cc, xx, zz, out, n);
        case 3: return run<0, 1, 1>(cc, xx, zz, out, n);
        case 2: return run<0, 1, 0>(cc, xx, zz, out, n);
        case 1: return run<0, 0, 1>(cc, xx, zz, out, n);
        case 0: return run<0, 0, 0>(cc, xx, zz, out, n);
        default:
          for (std::int64_t j = 0; j < n; ++j) out[j] = cc[j * step[0]] ? xx[j * step[1]] : zz[j * step[2]];
      }
    });
  }
  std::string impl() const override { return "kiln:where"; }

 private:
  template <int C, int X, int Y>
  static void run(const Bool* c, const T* x, const T* y, T* out, std::int64_t n) {
    for (std::int64_t j = 0; j < n; ++j) {  // both loaded: a blend the compiler vectorizes, not a branch
      const T a = x[j * X], b = y[j * Y];
      out[j] = c[j * C] ? a : b;
    }
  }
  Broadcast bc_;
};

std::unique_ptr<Kernel> make_where(const KernelCtx& ctx) {
  switch (dtype_size(ctx.in[1].dtype)) {
    case 1: return std::make_unique<WhereKernel<std::uint8_t>>(broadcast_of(ctx));
    case 4: return std::make_unique<WhereKernel<std::uint32_t>>(broadcast_of(ctx));
    default: return std::make_unique<WhereKernel<std::uint64_t>>(broadcast_of(ctx));
  }
}

// ---- cast ----

constexpr std::initializer_list<DType> kCastTypes = {DType::f32, DType::f64, DType::f16, DType::bf16,   DType::i64,
                                                     DType::i32, DType::i8,  DType::u8,  DType::boolean};

// float16 and bfloat16 as their bits; conversions go through float (IEEE, rounding to nearest even).
struct Half {
  std::uint16_t bits;
};
struct BHalf {
  std::uint16_t bits;
};

float half_to_float(std::uint16_t h) {
  const std::uint32_t sign = static_cast<std::uint32_t>(h & 0x8000u) << 16;
  const std::uint32_t exp = (h >> 10) & 0x1fu;
  std::uint32_t mant = h & 0x3ffu;
  std::uint32_t x = 0;
  if (exp == 0x1f) {
    x = sign | 0x7f800000u | (mant << 13);  // inf, NaN
  } else if (exp == 0) {
    if (mant == 0) {
      x = sign;
    } else {  // subnormal: normalized into float's range
      std::uint32_t e = 113;
      while (!(mant & 0x400u)) {
        mant <<= 1;
        --e;
      }
      x = sign | (e << 23) | ((mant & 0x3ffu) << 13);
    }
  } else {
    x = sign | ((exp + 112) << 23) | (mant << 13);
  }
  float f = 0;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

std::uint16_t float_to_half(float f) {
  std::uint32_t x = 0;
  std::memcpy(&x, &f, sizeof x);
  const auto sign = static_cast<std::uint16_t>((x >> 16) & 0x8000u);
  const std::uint32_t exp = (x >> 23) & 0xffu;
  std::uint32_t mant = x & 0x7fffffu;
  if (exp == 0xff) return static_cast<std::uint16_t>(sign | 0x7c00u | (mant ? 0x200u | (mant >> 13) : 0u));
  const int e = static_cast<int>(exp) - 127 + 15;
  if (e >= 0x1f) return static_cast<std::uint16_t>(sign | 0x7c00u);  // overflow: inf
  if (e <= 0) {                                                      // a subnormal half, or zero
    if (e < -10) return sign;
    mant |= 0x800000u;
    const auto shift = static_cast<std::uint32_t>(14 - e);
    std::uint32_t h = mant >> shift;
    const std::uint32_t rem = mant & ((1u << shift) - 1), halfway = 1u << (shift - 1);
    if (rem > halfway || (rem == halfway && (h & 1u))) ++h;
    return static_cast<std::uint16_t>(sign | h);
  }
  std::uint32_t h = (static_cast<std::uint32_t>(e) << 10) | (mant >> 13);
  const std::uint32_t rem = mant & 0x1fffu;
  if (rem > 0x1000u || (rem == 0x1000u && (h & 1u))) ++h;  // a carry into the exponent is right (up to inf)
  return static_cast<std::uint16_t>(sign | h);
}

float bhalf_to_float(std::uint16_t h) {
  const std::uint32_t x = static_cast<std::uint32_t>(h) << 16;
  float f = 0;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

std::uint16_t float_to_bhalf(float f) {
  std::uint32_t x = 0;
  std::memcpy(&x, &f, sizeof x);
  if (std::isnan(f)) return static_cast<std::uint16_t>((x >> 16) | 0x40u);  // stays a NaN
  x += 0x7fffu + ((x >> 16) & 1u);
  return static_cast<std::uint16_t>(x >> 16);
}

DType cast_target(const ShapeCtx& ctx) {
  const std::string& to = ctx.node().attr_string("to");
  DType t{};
  if (!parse_dtype(to, &t) || std::find(kCastTypes.begin(), kCastTypes.end(), t) == kCastTypes.end())
    ctx.fail("attribute 'to' must be one of " + dtype_list(kCastTypes) + ", got \"" + to + "\"");
  return t;
}

std::vector<TensorType> infer_cast(const ShapeCtx& ctx) {
  expect_one_of(ctx, 0, kCastTypes);
  return {TensorType{cast_target(ctx), ctx.in(0).shape}};
}

// Float to integer truncates toward zero; NaN gives 0 and values outside the target's range its nearest
// bound (C++ leaves both undefined); integers narrow by wrapping. Anything to bool: non-zero (NaN included)
// is true. bool and u8 share a C++ type, so flags tell them apart.
template <class To, bool ToBool, class From, bool FromBool>
To convert(From x) {
  if constexpr (std::is_same_v<From, Half>) {
    return convert<To, ToBool, float, false>(half_to_float(x.bits));
  } else if constexpr (std::is_same_v<From, BHalf>) {
    return convert<To, ToBool, float, false>(bhalf_to_float(x.bits));
  } else if constexpr (std::is_same_v<To, Half>) {
    return Half{float_to_half(convert<float, false, From, FromBool>(x))};
  } else if constexpr (std::is_same_v<To, BHalf>) {
    return BHalf{float_to_bhalf(convert<float, false, From, FromBool>(x))};
  } else if constexpr (ToBool) {
    return x != From(0);
  } else if constexpr (FromBool) {
    return static_cast<To>(x != 0);
  } else if constexpr (std::is_same_v<From, double> && std::is_same_v<To, float>) {
    // Beyond float's range the C++ cast is undefined: ±inf, as IEEE rounding gives (NaN stays NaN).
    constexpr double kMax = std::numeric_limits<float>::max();
    if (x > kMax) return std::numeric_limits<float>::infinity();
    if (x < -kMax) return -std::numeric_limits<float>::infinity();
    return static_cast<float>(x);
  } else if constexpr (std::is_floating_point_v<From> && std::is_integral_v<To>) {
    if (std::isnan(x)) return 0;
    if (x <= static_cast<From>(std::numeric_limits<To>::min())) return std::numeric_limits<To>::min();
    if (x >= static_cast<From>(std::numeric_limits<To>::max())) return std::numeric_limits<To>::max();
    return static_cast<To>(x);
  } else {
    return static_cast<To>(x);
  }
}

template <class To, bool ToBool, class From, bool FromBool>
class CastKernel : public Kernel {
 public:
  explicit CastKernel(std::int64_t n)
      : bc_(std::vector<std::vector<std::int64_t>>{std::vector<std::int64_t>{n}}, {n}) {}
  void execute(dnnl::stream&, const KernelArgs& args) override {
    const auto* x = static_cast<const From*>(args.in[0]);
    auto* y = static_cast<To*>(args.out[0]);
    bc_.for_each([&](const std::int64_t*, const std::int64_t*, std::int64_t d, std::int64_t n) {
      for (std::int64_t j = d; j < d + n; ++j) y[j] = convert<To, ToBool, From, FromBool>(x[j]);
    });
  }
  std::string impl() const override { return "kiln:cast"; }

 private:
  Broadcast bc_;  // one flat operand: the parallel split
};

template <class From, bool FromBool>
std::unique_ptr<Kernel> cast_from(DType to, std::int64_t n) {
  switch (to) {
    case DType::f32: return std::make_unique<CastKernel<float, false, From, FromBool>>(n);
    case DType::f64: return std::make_unique<CastKernel<double, false, From, FromBool>>(n);
    case DType::f16: return std::make_unique<CastKernel<Half, false, From, FromBool>>(n);
    case DType::bf16: return std::make_unique<CastKernel<BHalf, false, From, FromBool>>(n);
    case DType::i64: return std::make_unique<CastKernel<std::int64_t, false, From, FromBool>>(n);
    case DType::i32: return std::make_unique<CastKernel<std::int32_t, false, From, FromBool>>(n);
    case DType::i8: return std::make_unique<CastKernel<std::int8_t, false, From, FromBool>>(n);
    case DType::u8: return std::make_unique<CastKernel<std::uint8_t, false, From, FromBool>>(n);
    default: return std::make_unique<CastKernel<Bool, true, From, FromBool>>(n);
  }
}

std::unique_ptr<Kernel> make_cast(const KernelCtx& ctx) {
  const DType to = ctx.out[0].dtype;
  const std::int64_t n = numel_of(ctx.in[0].shape);
  switch (ctx.in[0].dtype) {
    case DType::f32: return cast_from<float, false>(to, n);
    case DType::f64: return cast_from<double, false>(to, n);
    case DType::f16: return cast_from<Half, false>(to, n);
    case DType::bf16: return cast_from<BHalf, false>(to, n);
    case DType::i64: return cast_from<std::int64_t, false>(to, n);
    case DType::i32: return cast_from<std::int32_t, false>(to, n);
    case DType::i8: return cast_from<std::int8_t, false>(to, n);
    case DType::u8: return cast_from<std::uint8_t, false>(to, n);
    default: return cast_from<Bool, true>(to, n);
  }
}

OpSchema schema(const char* name, const char* doc, std::vector<InputSpec> inputs, InferFn infer, KernelFn make,
                std::vector<int> in_place = {}) {
  return OpSchema{.name = name,
                  .doc = doc,
                  .inputs = std::move(inputs),
                  .infer = infer,
                  .make_kernel = make,
                  .in_place = std::move(in_place)};
}

}  // namespace

#define KILN_COMPARE_OP(name, C, doc)                                                                  \
  const OpSchema& op_##name() {                                                                        \
    static const OpSchema s = schema(#name, doc, {{"a"}, {"b"}}, infer_compare, make_compare<Cmp::C>); \
    return s;                                                                                          \
  }
KILN_COMPARE_OP(equal, Eq, "a == b, broadcast (f32, i64, i32 or bool; both one type) -> bool")
KILN_COMPARE_OP(less, Lt, "a < b, broadcast -> bool")
KILN_COMPARE_OP(less_equal, Le, "a <= b, broadcast -> bool")
KILN_COMPARE_OP(greater, Gt, "a > b, broadcast -> bool")
KILN_COMPARE_OP(greater_equal, Ge, "a >= b, broadcast -> bool")
#undef KILN_COMPARE_OP

const OpSchema& op_logical_and() {
  static const OpSchema s =
      schema("logical_and", "a and b (bool), broadcast", {{"a"}, {"b"}}, infer_logic, make_logic<Logic::And>, {0});
  return s;
}
const OpSchema& op_logical_or() {
  static const OpSchema s =
      schema("logical_or", "a or b (bool), broadcast", {{"a"}, {"b"}}, infer_logic, make_logic<Logic::Or>, {0});
  return s;
}
const OpSchema& op_logical_xor() {
  static const OpSchema s =
      schema("logical_xor", "a xor b (bool), broadcast", {{"a"}, {"b"}}, infer_logic, make_logic<Logic::Xor>, {0});
  return s;
}
const OpSchema& op_logical_not() {
  static const OpSchema s = schema("logical_not", "not a (bool)", {{"a"}}, infer_logic, make_not, {0});
  return s;
}
const OpSchema& op_is_nan() {
  static const OpSchema s =
      schema("is_nan", "whether src is NaN (f32, f64) -> bool", {{"src"}}, infer_float_test, make_float_test);
  return s;
}
const OpSchema& op_is_inf() {
  static const OpSchema s = [] {
    OpSchema o = schema("is_inf", "whether src is +inf or -inf (f32, f64) -> bool", {{"src"}}, infer_float_test,
                        make_float_test);
    o.attrs = {AttrSpec{"detect_positive", AttrType::Bool, Attr{true}, "true for +inf"},
               AttrSpec{"detect_negative", AttrType::Bool, Attr{true}, "true for -inf"}};
    return o;
  }();
  return s;
}
const OpSchema& op_where() {
  static const OpSchema s = schema("where", "x where cond else y, broadcast (cond bool; x, y one type)",
                                   {{"cond"}, {"x"}, {"y"}}, infer_where, make_where);
  return s;
}
const OpSchema& op_cast() {
  static const OpSchema s = [] {
    OpSchema o = schema("cast", "src converted to `to` (floats to integers truncate, saturating; to bool: != 0)",
                        {{"src"}}, infer_cast, make_cast);
    o.attrs = {AttrSpec{"to", AttrType::String, std::nullopt, "the target type: " + dtype_list(kCastTypes)}};
    return o;
  }();
  return s;
}

}  // namespace kiln
