// attention (nn.MultiheadAttention weights, batch-first) against a naive multi-head reference: split
// in_proj_weight [3E,E] rows into q, k, v projections, softmax(q kᵀ / sqrt(E/H)) v per head, then
// out_proj, with y = x Wᵀ + b throughout. Heads 1, 2 and 8; query = key = value as one value (the
// kernel's fused [E,3E] projection) and distinct query/key/value values (three projections), including a
// key length Sk != Sq; each with and without the optional biases.
// Each case runs twice: with Kiln's kernels (GEMM with packed weights, fused per-head attention steps; on
// AVX2+FMA CPUs; on an AVX-512 host once per GEMM variant, gemm::override_variant) and with oneDNN's
// matmuls and softmax (what KILN_GEMM=onednn selects).
// Tolerance 1e-4 absolute: with |x| <= 1 and weights in [-0.5, 0.5], E <= 16, every stage is an f32
// dot product of at most 17 terms of magnitude ~1 (error ~1e-6 each, see test_matmul), softmax outputs
// are in [0,1], and three such stages in sequence stay well below 1e-4 (measured ~1e-6).

#include "ops/gemm.hpp"
#include "tests/ops/op_test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

constexpr double kTol = 1e-4;

/// Kernels made while this lives use Kiln's own kernels (`kiln`) or oneDNN's.
struct KernelChoice {
  explicit KernelChoice(bool kiln) { gemm::override_enabled(kiln); }
  ~KernelChoice() { gemm::override_enabled(std::nullopt); }
};

/// Kiln's kernel variants this CPU runs under the ISA cap (avx2, and avx512 where isa::effective() has it).
std::vector<isa::Level> variants() {
  std::vector<isa::Level> out{isa::Level::avx2};
  if (isa::has(isa::Level::avx512)) out.push_back(isa::Level::avx512);
  return out;
}

/// Kernels run the GEMM variant of `level` while this lives.
struct VariantChoice {
  explicit VariantChoice(isa::Level level) { gemm::override_variant(level); }
  ~VariantChoice() { gemm::override_variant(std::nullopt); }
};

struct Case {
  std::int64_t batch, sq, sk, e;
  int heads;
};

/// `self`: query, key and value are one value; else three distinct inputs (key and value of length sk).
double check(Rng& rng, const Case& c, bool self, bool in_bias, bool out_bias, bool kiln_kernels) {
  KernelChoice choice(kiln_kernels);
  Tensor q = random_f32(rng, {c.batch, c.sq, c.e});
  Tensor k = self ? q : random_f32(rng, {c.batch, c.sk, c.e});
  Tensor v = self ? q : random_f32(rng, {c.batch, c.sk, c.e});
  Tensor in_w = random_f32(rng, {3 * c.e, c.e}, -0.5f, 0.5f), in_b = random_f32(rng, {3 * c.e}, -0.5f, 0.5f);
  Tensor out_w = random_f32(rng, {c.e, c.e}, -0.5f, 0.5f), out_b = random_f32(rng, {c.e}, -0.5f, 0.5f);
  std::vector<Arg> args;
  if (self) args = {in(q), same(0), same(0)};
  else args = {in(q), in(k), in(v)};
  args.push_back(weight(in_w));
  args.push_back(in_bias ? weight(in_b) : none());
  args.push_back(weight(out_w));
  args.push_back(out_bias ? weight(out_b) : none());
  OpResult r = run_op("attention", args, {{"heads", std::int64_t{c.heads}}});
  Tensor want = ref_attention(q, k, v, in_w, in_bias ? &in_b : nullptr, out_w, out_bias ? &out_b : nullptr, c.heads);
  double err = max_abs_error(r.out, want);
  INFO((kiln_kernels ? gemm::variant() : "oneDNN kernels"), " attention B=", c.batch, " Sq=", c.sq, " Sk=", self ? c.sq : c.sk, " E=", c.e, " H=", c.heads,
       self ? " self" : " q/k/v", in_bias ? " in_bias" : "", out_bias ? " out_bias" : "", "\n", r.impl);
  CHECK(r.out.shape() == want.shape());
  CHECK(err <= kTol);
  // The kernel's steps, joined by " + ": one projection GEMM when fused, three otherwise, then scores,
  // softmax and context (oneDNN: three primitives; Kiln: one step over all heads), and the output projection.
  std::size_t steps = 1;
  for (std::size_t at = r.impl.find(" + "); at != std::string::npos; at = r.impl.find(" + ", at + 1)) ++steps;
  const bool kiln = kiln_kernels && gemm::available();
  CHECK(steps == (self ? 3u : 5u) + (kiln ? 0u : 2u));
  CHECK((r.impl.find("kiln:attention") != std::string::npos) == kiln);
  CHECK((r.impl.find(gemm::variant()) != std::string::npos) == kiln);
  return err;
}

// Shapes per head count: E divisible by heads, odd and size-1 dims included.
const std::vector<Case>& cases() {
  static const std::vector<Case> c{
      {1, 1, 1, 1, 1},  {2, 5, 3, 7, 1},  {3, 9, 17, 5, 1},
      {1, 7, 4, 6, 2},  {2, 3, 8, 10, 2}, {3, 13, 1, 2, 2},
      {2, 6, 9, 16, 8}, {1, 17, 5, 8, 8}, {4, 1, 3, 16, 8},
  };
  return c;
}

double run_all(bool self, bool in_bias, bool out_bias, std::uint32_t seed) {
  Rng rng = make_rng(seed);
  double worst = 0;
  for (bool kiln_kernels : {true, false})
    for (isa::Level level : variants()) {
      if (!kiln_kernels && level != variants().front()) continue;  // oneDNN has no Kiln variant
      VariantChoice variant(level);
      for (const Case& c : cases()) worst = std::max(worst, check(rng, c, self, in_bias, out_bias, kiln_kernels));
    }
  return worst;
}

}  // namespace

TEST_CASE("attention self (fused qkv projection) with biases") {
  MESSAGE("attention self+biases worst abs error " << run_all(true, true, true, 101));
}

TEST_CASE("attention self (fused qkv projection) without biases") {
  double worst = run_all(true, false, false, 102);
  worst = std::max(worst, run_all(true, true, false, 103));
  worst = std::max(worst, run_all(true, false, true, 104));
  MESSAGE("attention self, bias subsets worst abs error " << worst);
}

TEST_CASE("attention distinct query/key/value (three projections, Sk != Sq) with biases") {
  MESSAGE("attention q/k/v+biases worst abs error " << run_all(false, true, true, 105));
}

TEST_CASE("attention distinct query/key/value without biases") {
  double worst = run_all(false, false, false, 106);
  worst = std::max(worst, run_all(false, true, false, 107));
  worst = std::max(worst, run_all(false, false, true, 108));
  MESSAGE("attention q/k/v, bias subsets worst abs error " << worst);
}

TEST_CASE("attention with key = value distinct from query (cross-attention)") {
  Rng rng = make_rng(109);
  double worst = 0;
  for (bool kiln_kernels : {true, false})
  for (const Case& c : cases()) {
    KernelChoice choice(kiln_kernels);
    Tensor q = random_f32(rng, {c.batch, c.sq, c.e}), kv = random_f32(rng, {c.batch, c.sk, c.e});
    Tensor in_w = random_f32(rng, {3 * c.e, c.e}, -0.5f, 0.5f), in_b = random_f32(rng, {3 * c.e}, -0.5f, 0.5f);
    Tensor out_w = random_f32(rng, {c.e, c.e}, -0.5f, 0.5f), out_b = random_f32(rng, {c.e}, -0.5f, 0.5f);
    OpResult r = run_op("attention", {in(q), in(kv), same(1), weight(in_w), weight(in_b), weight(out_w), weight(out_b)},
                        {{"heads", std::int64_t{c.heads}}});
    double err = max_abs_error(r.out, ref_attention(q, kv, kv, in_w, &in_b, out_w, &out_b, c.heads));
    INFO((kiln_kernels ? "Kiln kernels" : "oneDNN kernels"), " attention cross B=", c.batch, " Sq=", c.sq, " Sk=", c.sk, " E=", c.e, " H=", c.heads);
    CHECK(err <= kTol);
    worst = std::max(worst, err);
  }
  MESSAGE("attention cross worst abs error " << worst);
}

TEST_CASE("attention shape rule") {
  Rng rng = make_rng(110);
  Tensor x = random_f32(rng, {2, 5, 8});
  Tensor in_w = random_f32(rng, {24, 8}), out_w = random_f32(rng, {8, 8});
  Shape sym{Dim::symbol("batch"), Dim::symbol("seq"), Dim::of(8)};
  OpResult r = run_op("attention", {in(x, sym), same(0), same(0), weight(in_w), none(), weight(out_w), none()},
                      {{"heads", std::int64_t{2}}});
  CHECK(r.inferred.str() == "f32[batch,seq,8]");
  std::string msg = error_of([&] {
    run_op("attention", {in(x), same(0), same(0), weight(in_w), none(), weight(out_w), none()}, {{"heads", std::int64_t{3}}});
  });
  CHECK(msg == "error: attention 'out': attribute 'heads' = 3 must be positive and divide the embedding dim 8");
  msg = error_of([&] {
    run_op("attention", {in(x), in(random_f32(rng, {2, 4, 8})), in(random_f32(rng, {2, 3, 8})), weight(in_w), none(),
                         weight(out_w), none()},
           {{"heads", std::int64_t{2}}});
  });
  CHECK(msg == "error: attention 'out': key and value must have the same length: f32[2,4,8] vs f32[2,3,8]");
}
