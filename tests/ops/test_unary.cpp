// relu, tanh, sigmoid, gelu (erf and tanh forms) against std:: formulas evaluated in double, on inputs in
// [-6, 6).
// Tolerance: relative 1e-5 with an absolute floor of 1e-6, i.e. |got - want| <= 1e-5 |want| + 1e-6
// (numpy.allclose). The floor is needed for gelu's negative tail: f32 evaluates 0.5 x (1 + erf(x/sqrt 2))
// (and the tanh form) as PyTorch does, and for x << 0 the 1 + erf term cancels, leaving an absolute
// error of ~|x| 2^-24 ~= 4e-7 on results that are themselves tiny (|gelu(-5)| ~= 1.4e-6), so no f32
// kernel meets a pure relative bound there. Wrong formulas or indexing err by >= 1e-3.

#include <set>
#include <sstream>

#include "ops/eltwise.hpp"

#include "tests/ops/op_test_util.hpp"

namespace {

using namespace kiln;
using namespace kiln::test;

constexpr double kRtol = 1e-5;
constexpr double kAtol = 1e-6;

struct Worst {
  double ratio = 0, abs = 0;  // allclose ratio (must be <= 1) and max abs error
  void add(const Worst& o) {
    ratio = std::max(ratio, o.ratio);
    abs = std::max(abs, o.abs);
  }
};

Worst check(Rng& rng, const std::string& op, const std::string& ref, const std::vector<std::int64_t>& shape,
            AttrMap attrs = {}) {
  Tensor x = random_f32(rng, shape, -6.f, 6.f);
  OpResult r = run_op(op, {in(x)}, std::move(attrs));
  Tensor want = ref_unary(ref, x);
  Worst w{allclose_ratio(r.out, want, kRtol, kAtol), max_abs_error(r.out, want)};
  INFO(op, " (", ref, ") ", dims_str(shape), " max abs error ", w.abs, "\n", r.impl);
  CHECK(r.out.shape() == shape);
  CHECK(w.ratio <= 1.0);
  return w;
}

std::string check_shapes(std::uint32_t seed, const std::string& op, const std::string& ref, AttrMap attrs = {}) {
  Rng rng = make_rng(seed);
  Worst worst;
  for (int rank = 1; rank <= 4; ++rank) worst.add(check(rng, op, ref, random_shape(rng, rank), attrs));
  worst.add(check(rng, op, ref, {1}, attrs));
  worst.add(check(rng, op, ref, {17, 1, 3}, attrs));
  // Enough elements (32 x 17 x 17 > 9000) to hit every input range the approximation splits on.
  worst.add(check(rng, op, ref, {32, 17, 17}, attrs));
  std::ostringstream os;
  os << "worst abs error " << worst.abs << ", allclose ratio " << worst.ratio;
  return os.str();
}

}  // namespace

TEST_CASE("relu matches max(x, 0)") { MESSAGE("relu " << check_shapes(11, "relu", "relu")); }

TEST_CASE("tanh matches std::tanh") { MESSAGE("tanh " << check_shapes(12, "tanh", "tanh")); }

TEST_CASE("sigmoid matches 1 / (1 + exp(-x))") {
  MESSAGE("sigmoid " << check_shapes(13, "sigmoid", "sigmoid"));
}

TEST_CASE("gelu (erf form, default) matches 0.5 x (1 + erf(x / sqrt 2))") {
  MESSAGE("gelu erf " << check_shapes(14, "gelu", "gelu"));
  MESSAGE("gelu erf (explicit) "
          << check_shapes(15, "gelu", "gelu", {{"approximate", std::string("none")}}));
}

TEST_CASE("gelu tanh form matches 0.5 x (1 + tanh(sqrt(2/pi) (x + 0.044715 x^3)))") {
  MESSAGE("gelu tanh " << check_shapes(16, "gelu", "gelu_tanh", {{"approximate", std::string("tanh")}}));
}

TEST_CASE("gelu rejects an unknown approximation") {
  Rng rng = make_rng(17);
  std::string msg = error_of([&] { run_op("gelu", {in(random_f32(rng, {2, 3}))}, {{"approximate", std::string("fast")}}); });
  CHECK(msg == "error: gelu 'out': attribute 'approximate' must be \"none\" or \"tanh\", got \"fast\"");
}

// The activation table (graph/activation.hpp) is the one source of these ops and of what linear and conv2d
// fold in.
TEST_CASE("activation table: every row's unary op is registered from it, linear and conv2d accept their sets") {
  std::set<std::string> names;
  for (const ActivationDef* a : activations()) {
    CAPTURE(a->name);
    CHECK(names.insert(a->name).second);  // names are unique
    CHECK(find_activation(a->name) == a);
    const OpSchema* op = find_op(a->op);
    REQUIRE(op != nullptr);
    CHECK(op->doc == a->doc);
    CHECK(op->inputs.size() == 1);
    for (const ActivationParam& p : a->params) CHECK(op->find_attr(p.name) != nullptr);
    if (a->variant_attr) CHECK(op->find_attr(a->variant_attr) != nullptr);
    // A post-op has a oneDNN eltwise (the fallback of every op that absorbs it).
    if (a->post_op) CHECK(eltwise_of(*a, std::vector<double>(a->params.size(), 0.0)).has_value());
    // Kiln's GEMM applies exactly the activations the table marks.
    CHECK((gemm_activation(a) != gemm::Activation::None) == a->gemm_epilogue);
  }
  CHECK(find_activation("none") == nullptr);
  CHECK(activation_names(find_op("linear")->post_ops.activations) == "none, relu, gelu, gelu_tanh, sigmoid, tanh");
  CHECK(activation_names(find_op("conv2d")->post_ops.activations) ==
        "none, relu, clip, silu, sigmoid, tanh, leaky_relu, elu, hard_swish, softplus");
  // Whichever activation an op accepts, its schema has the attributes for the parameters.
  for (const OpSchema* op : all_ops())
    for (const ActivationDef* a : activations())
      if (op->post_ops.accepts(*a))
        for (std::size_t i = 0; i < a->params.size(); ++i) CHECK(op->find_attr(a->param_attr(i)) != nullptr);
}
