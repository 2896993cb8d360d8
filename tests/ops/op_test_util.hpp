#pragma once
// Helpers for the per-op kernel tests: build a one-node graph programmatically, compile it into a Plan
// and run it on the CPU engine; seeded random inputs; naive reference implementations (double
// accumulation, plain loops over multi-indices) to compare the kernels against.
//
// This header deliberately does not include oneDNN's headers (only graph/ and kiln/), so the test files
// that use it compile quickly; everything touching Plan and dnnl lives in op_test_util.cpp.

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "graph/graph.hpp"
#include "tests/test_util.hpp"

namespace kiln::test {

// ---- random data ----

/// The generator every op test uses: seeded, so failures reproduce.
using Rng = std::mt19937;
/// A seeded generator; `salt` separates test cases that share a seed.
inline Rng make_rng(std::uint32_t salt = 0) { return Rng(0x6b696c6eu + salt * 7919u); }
/// Uniform integer in [lo, hi].
std::int64_t random_int(Rng& rng, std::int64_t lo, std::int64_t hi);
/// A random shape of `rank` dims, each in [lo, hi].
std::vector<std::int64_t> random_shape(Rng& rng, int rank, std::int64_t lo = 1, std::int64_t hi = 17);
/// An owned f32 tensor filled uniformly from [lo, hi).
Tensor random_f32(Rng& rng, const std::vector<std::int64_t>& shape, float lo = -1.f, float hi = 1.f);
/// A copy of `t` (owned, same dtype and shape).
Tensor clone(const Tensor& t);

// ---- running one op ----

/// One input of the node under test.
struct Arg {
  enum class Kind : std::uint8_t { Input, Constant, Absent, Same };
  Kind kind = Kind::Input;
  Tensor data;          // the tensor bound at run time (Input) or baked into the graph (Constant)
  Shape declared;       // Input only: the shape the graph declares (may be symbolic); empty: data's shape
  int same_as = -1;     // Same: this node input reuses the Value of node input `same_as`
};
/// A graph input fed with `t` at run time; `declared` may name symbolic dims.
Arg in(Tensor t, Shape declared = {});
/// A constant (weight) baked into the graph.
Arg weight(Tensor t);
/// An absent optional input (a null entry in the node's inputs).
Arg none();
/// The same Value as node input `index` (e.g. attention's query = key = value).
Arg same(int index);

struct OpResult {
  Tensor out;             // output 0, computed by the Plan
  TensorType inferred;    // output 0's type after Graph::infer_shapes (symbolic dims kept)
  std::string impl;       // Plan::describe(): which kernels ran
};

/// Builds `graph = { out = op(args...) {attrs} }`, verifies it, infers shapes, compiles a Plan for the
/// args' concrete shapes and runs it. `opt_level` > 0 runs that level's pass pipeline first (-O1:
/// assign-layouts, so the op runs in the layout it prefers).
OpResult run_op(const std::string& op, const std::vector<Arg>& args, AttrMap attrs = {}, int opt_level = 0);

/// Compiles an arbitrary (verified, shape-inferred) graph for the shapes of `inputs` and runs it; returns
/// every graph output. `describe`, when set, receives Plan::describe().
std::vector<Tensor> run_graph(const Graph& graph, const std::vector<Tensor>& inputs, std::string* describe = nullptr);

// ---- comparing ----

/// Max |a - b| (shapes must match; NaN counts as infinite).
double max_abs_error(const Tensor& got, const Tensor& want);
/// Max over elements of |got - want| / (atol + rtol * |want|): numpy.allclose(got, want, rtol, atol)
/// holds exactly when this is <= 1.
double allclose_ratio(const Tensor& got, const Tensor& want, double rtol, double atol);
/// Whether two tensors hold identical bytes (and equal shape and dtype).
bool same_bytes(const Tensor& a, const Tensor& b);
/// "[3,1,5]" for messages.
std::string dims_str(const std::vector<std::int64_t>& d);

// ---- naive references (double accumulation; f32 results) ----

/// Elementwise a OP b with NumPy broadcasting; op is one of '+', '-', '*', '/'.
Tensor ref_binary(char op, const Tensor& a, const Tensor& b);
/// relu, tanh, sigmoid, gelu ("gelu" erf form), gelu_tanh.
Tensor ref_unary(const std::string& op, const Tensor& x);
/// torch.matmul for rank >= 2 with batch broadcasting.
Tensor ref_matmul(const Tensor& a, const Tensor& b);
/// x · wᵀ + bias over the last axis; `bias` may be null.
Tensor ref_linear(const Tensor& x, const Tensor& w, const Tensor* bias);
Tensor ref_softmax(const Tensor& x, int axis);
/// Over the last axis; weight and bias may be null.
Tensor ref_layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, double eps);
Tensor ref_reduce(const Tensor& x, const std::vector<std::int64_t>& axes, bool keepdims, bool mean);
Tensor ref_transpose(const Tensor& x, const std::vector<std::int64_t>& perm);
/// ids of dtype i64 or i32.
Tensor ref_embedding(const Tensor& ids, const Tensor& table);
/// nn.MultiheadAttention (batch-first, no mask): in_w [3E,E] rows q|k|v, out_w [E,E]; biases may be null.
Tensor ref_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& in_w, const Tensor* in_b,
                     const Tensor& out_w, const Tensor* out_b, int heads);

}  // namespace kiln::test
