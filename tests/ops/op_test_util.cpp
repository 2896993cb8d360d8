#include "tests/ops/op_test_util.hpp"

#include <algorithm>
#include <cmath>
#include <cstring>
#include <memory>
#include <numeric>

#include "passes/pass.hpp"
#include "runtime/model_impl.hpp"
#include "runtime/plan.hpp"

namespace kiln::test {

// ---- random data ----

std::int64_t random_int(Rng& rng, std::int64_t lo, std::int64_t hi) {
  return std::uniform_int_distribution<std::int64_t>(lo, hi)(rng);
}

std::vector<std::int64_t> random_shape(Rng& rng, int rank, std::int64_t lo, std::int64_t hi) {
  std::vector<std::int64_t> out;
  for (int i = 0; i < rank; ++i) out.push_back(random_int(rng, lo, hi));
  return out;
}

Tensor random_f32(Rng& rng, const std::vector<std::int64_t>& shape, float lo, float hi) {
  Tensor t = Tensor::empty(DType::f32, shape);
  std::uniform_real_distribution<float> dist(lo, hi);
  float* p = t.data_as<float>();
  for (std::int64_t i = 0; i < t.numel(); ++i) p[i] = dist(rng);
  return t;
}

Tensor clone(const Tensor& t) {
  Tensor out = Tensor::empty(t.dtype(), t.shape());
  if (t.bytes()) std::memcpy(out.data(), t.data(), t.bytes());
  return out;
}

// ---- running ----

Arg in(Tensor t, Shape declared) { return Arg{Arg::Kind::Input, std::move(t), std::move(declared), -1}; }
Arg weight(Tensor t) { return Arg{Arg::Kind::Constant, std::move(t), {}, -1}; }
Arg none() { return Arg{Arg::Kind::Absent, {}, {}, -1}; }
Arg same(int index) { return Arg{Arg::Kind::Same, {}, {}, index}; }

std::vector<Tensor> run_graph(const Graph& graph, const std::vector<Tensor>& inputs, std::string* describe) {
  REQUIRE(inputs.size() == graph.inputs.size());
  std::vector<std::vector<std::int64_t>> dims;
  std::vector<const void*> in_ptrs;
  for (const Tensor& t : inputs) {
    dims.push_back(t.shape());
    in_ptrs.push_back(t.data());
  }
  Plan plan(graph, dims, detail::cpu_engine());
  std::vector<Tensor> outs;
  std::vector<void*> out_ptrs;
  for (std::size_t j = 0; j < graph.outputs.size(); ++j) {
    const TensorType& t = plan.output_type(j);
    outs.push_back(Tensor::empty(t.dtype, dims_of(t.shape)));
    out_ptrs.push_back(outs.back().data());
  }
  dnnl::stream stream(detail::cpu_engine());
  plan.run(stream, in_ptrs.data(), out_ptrs.data());
  if (describe) *describe = plan.describe();
  return outs;
}

OpResult run_op(const std::string& op, const std::vector<Arg>& args, AttrMap attrs, int opt_level) {
  Graph g;
  g.name = "test_" + op;
  std::vector<Value*> node_inputs;
  std::vector<Tensor> feeds;
  for (std::size_t i = 0; i < args.size(); ++i) {
    const Arg& a = args[i];
    // Names built with append: GCC 12 warns (-Wrestrict, a false positive) on "literal" + std::string.
    const std::string index = std::to_string(i);
    std::string name(a.kind == Arg::Kind::Input ? "in" : "w");
    name.append(index);
    switch (a.kind) {
      case Arg::Kind::Input: {
        Shape shape = a.declared.empty() ? concrete_shape(a.data.shape()) : a.declared;
        Value* v = g.add_value(name, TensorType{a.data.dtype(), shape});
        g.inputs.push_back(v);
        feeds.push_back(a.data);
        node_inputs.push_back(v);
        break;
      }
      case Arg::Kind::Constant: {
        // The graph keeps a copy of the tensor handle alive (copies share the buffer).
        ConstData data{a.data.data(), a.data.bytes(), std::make_shared<Tensor>(a.data)};
        node_inputs.push_back(g.add_constant(name, TensorType{a.data.dtype(), concrete_shape(a.data.shape())},
                                             std::move(data)));
        break;
      }
      case Arg::Kind::Absent: node_inputs.push_back(nullptr); break;
      case Arg::Kind::Same: node_inputs.push_back(node_inputs.at(a.same_as)); break;
    }
  }
  Value* out = g.add_value("out", TensorType{});
  g.add_node(op, "out", node_inputs, {out}, std::move(attrs), SourceLoc{});
  g.outputs.push_back(out);
  g.verify();
  g.infer_shapes();
  OpResult r;
  r.inferred = out->type;
  if (opt_level > 0) {
    PipelineOptions options;
    options.opt_level = opt_level;
    run_pipeline(g, options);
  }
  r.out = run_graph(g, feeds, &r.impl).at(0);
  return r;
}

// ---- comparing ----

double max_abs_error(const Tensor& got, const Tensor& want) { return max_abs_diff(got, want); }

double allclose_ratio(const Tensor& got, const Tensor& want, double rtol, double atol) {
  REQUIRE(got.dtype() == DType::f32);
  REQUIRE(want.dtype() == DType::f32);
  REQUIRE(got.shape() == want.shape());
  double m = 0;
  for (std::int64_t i = 0; i < got.numel(); ++i) {
    double w = want.data_as<float>()[i];
    double r = std::fabs(got.data_as<float>()[i] - w) / (atol + rtol * std::fabs(w));
    if (std::isnan(r)) return INFINITY;
    m = std::max(m, r);
  }
  return m;
}

bool same_bytes(const Tensor& a, const Tensor& b) {
  return a.dtype() == b.dtype() && a.shape() == b.shape() && (a.bytes() == 0 || std::memcmp(a.data(), b.data(), a.bytes()) == 0);
}

std::string dims_str(const std::vector<std::int64_t>& d) { return shape_to_string(d); }

// ---- references ----

namespace {

using Dims = std::vector<std::int64_t>;

Dims strides_of(const Dims& d) {
  Dims s(d.size(), 1);
  for (std::size_t i = d.size(); i-- > 1;) s[i - 1] = s[i] * d[i];
  return s;
}

std::int64_t numel(const Dims& d) { return std::accumulate(d.begin(), d.end(), std::int64_t{1}, std::multiplies<>()); }

Dims unravel(std::int64_t flat, const Dims& d) {
  Dims idx(d.size());
  for (std::size_t i = d.size(); i-- > 0;) {
    idx[i] = flat % d[i];
    flat /= d[i];
  }
  return idx;
}

// Offset into an operand of dims `d` (rank <= idx.size(), right-aligned; size-1 dims broadcast) for the
// multi-index `idx` of the broadcast result.
std::int64_t broadcast_offset(const Dims& idx, const Dims& d) {
  std::size_t skip = idx.size() - d.size();
  Dims s = strides_of(d);
  std::int64_t off = 0;
  for (std::size_t i = 0; i < d.size(); ++i) off += (d[i] == 1 ? 0 : idx[skip + i]) * s[i];
  return off;
}

Dims broadcast_dims(const Dims& a, const Dims& b) {
  std::size_t r = std::max(a.size(), b.size());
  Dims out(r);
  for (std::size_t i = 0; i < r; ++i) {
    std::int64_t da = i < r - a.size() ? 1 : a[i - (r - a.size())];
    std::int64_t db = i < r - b.size() ? 1 : b[i - (r - b.size())];
    REQUIRE((da == db || da == 1 || db == 1));
    out[i] = da == 1 ? db : da;
  }
  return out;
}

const float* f32(const Tensor& t) { return t.data_as<const float>(); }

std::vector<double> linear_f64(const float* x, std::int64_t rows, std::int64_t k, const float* w, std::int64_t n,
                               const float* bias) {
  std::vector<double> y(static_cast<std::size_t>(rows * n));
  for (std::int64_t r = 0; r < rows; ++r)
    for (std::int64_t o = 0; o < n; ++o) {
      double acc = bias ? bias[o] : 0.0;
      for (std::int64_t c = 0; c < k; ++c) acc += static_cast<double>(x[r * k + c]) * w[o * k + c];
      y[r * n + o] = acc;
    }
  return y;
}

}  // namespace

Tensor ref_binary(char op, const Tensor& a, const Tensor& b) {
  Dims out = broadcast_dims(a.shape(), b.shape());
  Tensor y = Tensor::empty(DType::f32, out);
  for (std::int64_t i = 0; i < numel(out); ++i) {
    Dims idx = unravel(i, out);
    double x = f32(a)[broadcast_offset(idx, a.shape())], z = f32(b)[broadcast_offset(idx, b.shape())];
    double r = op == '+' ? x + z : op == '-' ? x - z : op == '*' ? x * z : x / z;
    y.data_as<float>()[i] = static_cast<float>(r);
  }
  return y;
}

Tensor ref_unary(const std::string& op, const Tensor& x) {
  Tensor y = Tensor::empty(DType::f32, x.shape());
  const double k = std::sqrt(2.0 / M_PI);
  for (std::int64_t i = 0; i < x.numel(); ++i) {
    double v = f32(x)[i], r = 0;
    if (op == "relu") r = v > 0 ? v : 0;
    else if (op == "tanh") r = std::tanh(v);
    else if (op == "sigmoid") r = 1.0 / (1.0 + std::exp(-v));
    else if (op == "gelu") r = 0.5 * v * (1.0 + std::erf(v / std::sqrt(2.0)));
    else if (op == "gelu_tanh") r = 0.5 * v * (1.0 + std::tanh(k * (v + 0.044715 * v * v * v)));
    else FAIL("unknown unary reference " << op);
    y.data_as<float>()[i] = static_cast<float>(r);
  }
  return y;
}

Tensor ref_matmul(const Tensor& a, const Tensor& b) {
  const Dims& ad = a.shape();
  const Dims& bd = b.shape();
  REQUIRE(ad.size() >= 2);
  REQUIRE(bd.size() >= 2);
  const std::int64_t m = ad[ad.size() - 2], k = ad.back(), n = bd.back();
  REQUIRE(bd[bd.size() - 2] == k);
  Dims a_batch(ad.begin(), ad.end() - 2), b_batch(bd.begin(), bd.end() - 2);
  Dims batch = broadcast_dims(a_batch, b_batch);
  Dims out = batch;
  out.push_back(m);
  out.push_back(n);
  Tensor y = Tensor::empty(DType::f32, out);
  for (std::int64_t bi = 0; bi < numel(batch); ++bi) {
    Dims idx = unravel(bi, batch);
    const float* pa = f32(a) + broadcast_offset(idx, a_batch) * m * k;
    const float* pb = f32(b) + broadcast_offset(idx, b_batch) * k * n;
    float* py = y.data_as<float>() + bi * m * n;
    for (std::int64_t i = 0; i < m; ++i)
      for (std::int64_t j = 0; j < n; ++j) {
        double acc = 0;
        for (std::int64_t c = 0; c < k; ++c) acc += static_cast<double>(pa[i * k + c]) * pb[c * n + j];
        py[i * n + j] = static_cast<float>(acc);
      }
  }
  return y;
}

Tensor ref_linear(const Tensor& x, const Tensor& w, const Tensor* bias) {
  const std::int64_t k = x.shape().back(), n = w.shape()[0], rows = x.numel() / k;
  REQUIRE(w.shape()[1] == k);
  Dims out = x.shape();
  out.back() = n;
  Tensor y = Tensor::empty(DType::f32, out);
  auto r = linear_f64(f32(x), rows, k, f32(w), n, bias ? f32(*bias) : nullptr);
  for (std::size_t i = 0; i < r.size(); ++i) y.data_as<float>()[i] = static_cast<float>(r[i]);
  return y;
}

Tensor ref_softmax(const Tensor& x, int axis) {
  const Dims& d = x.shape();
  if (axis < 0) axis += static_cast<int>(d.size());
  std::int64_t outer = 1, inner = 1, len = d[axis];
  for (int i = 0; i < axis; ++i) outer *= d[i];
  for (std::size_t i = axis + 1; i < d.size(); ++i) inner *= d[i];
  Tensor y = Tensor::empty(DType::f32, d);
  for (std::int64_t o = 0; o < outer; ++o)
    for (std::int64_t in = 0; in < inner; ++in) {
      auto at = [&](std::int64_t j) { return (o * len + j) * inner + in; };
      double mx = -INFINITY, sum = 0;
      for (std::int64_t j = 0; j < len; ++j) mx = std::max<double>(mx, f32(x)[at(j)]);
      for (std::int64_t j = 0; j < len; ++j) sum += std::exp(f32(x)[at(j)] - mx);
      for (std::int64_t j = 0; j < len; ++j) y.data_as<float>()[at(j)] = static_cast<float>(std::exp(f32(x)[at(j)] - mx) / sum);
    }
  return y;
}

Tensor ref_layer_norm(const Tensor& x, const Tensor* w, const Tensor* b, double eps) {
  const std::int64_t d = x.shape().back(), rows = x.numel() / d;
  Tensor y = Tensor::empty(DType::f32, x.shape());
  for (std::int64_t r = 0; r < rows; ++r) {
    const float* p = f32(x) + r * d;
    double mean = 0, var = 0;
    for (std::int64_t i = 0; i < d; ++i) mean += p[i];
    mean /= static_cast<double>(d);
    for (std::int64_t i = 0; i < d; ++i) var += (p[i] - mean) * (p[i] - mean);
    var /= static_cast<double>(d);  // biased, as nn.LayerNorm
    for (std::int64_t i = 0; i < d; ++i) {
      double v = (p[i] - mean) / std::sqrt(var + eps);
      if (w) v *= f32(*w)[i];
      if (b) v += f32(*b)[i];
      y.data_as<float>()[r * d + i] = static_cast<float>(v);
    }
  }
  return y;
}

Tensor ref_reduce(const Tensor& x, const std::vector<std::int64_t>& axes, bool keepdims, bool mean) {
  const Dims& d = x.shape();
  const int rank = static_cast<int>(d.size());
  std::vector<bool> reduced(rank, false);
  for (auto a : axes) reduced[a < 0 ? a + rank : a] = true;
  Dims kept = d;  // output dims with reduced axes as 1
  std::int64_t count = 1;
  for (int i = 0; i < rank; ++i)
    if (reduced[i]) {
      count *= d[i];
      kept[i] = 1;
    }
  std::vector<double> acc(static_cast<std::size_t>(numel(kept)), 0.0);
  for (std::int64_t i = 0; i < x.numel(); ++i) acc[broadcast_offset(unravel(i, d), kept)] += f32(x)[i];
  Dims out;
  for (int i = 0; i < rank; ++i)
    if (!reduced[i] || keepdims) out.push_back(kept[i]);
  Tensor y = Tensor::empty(DType::f32, out);
  for (std::size_t i = 0; i < acc.size(); ++i)
    y.data_as<float>()[i] = static_cast<float>(mean ? acc[i] / static_cast<double>(count) : acc[i]);
  return y;
}

Tensor ref_transpose(const Tensor& x, const std::vector<std::int64_t>& perm) {
  const Dims& d = x.shape();
  Dims out;
  for (auto p : perm) out.push_back(d[p]);
  Dims s = strides_of(d);
  Tensor y = Tensor::empty(x.dtype(), out);
  const std::size_t es = dtype_size(x.dtype());
  for (std::int64_t i = 0; i < numel(out); ++i) {
    Dims idx = unravel(i, out);
    std::int64_t src = 0;
    for (std::size_t j = 0; j < perm.size(); ++j) src += idx[j] * s[perm[j]];
    std::memcpy(static_cast<char*>(y.data()) + i * es, static_cast<const char*>(x.data()) + src * es, es);
  }
  return y;
}

Tensor ref_embedding(const Tensor& ids, const Tensor& table) {
  const std::int64_t dim = table.shape()[1];
  Dims out = ids.shape();
  out.push_back(dim);
  Tensor y = Tensor::empty(DType::f32, out);
  for (std::int64_t i = 0; i < ids.numel(); ++i) {
    std::int64_t id = ids.dtype() == DType::i64 ? ids.data_as<const std::int64_t>()[i] : ids.data_as<const std::int32_t>()[i];
    if (id < 0 || id >= table.shape()[0]) FAIL("reference embedding: id " << id << " out of range");
    for (std::int64_t c = 0; c < dim; ++c) y.data_as<float>()[i * dim + c] = f32(table)[id * dim + c];
  }
  return y;
}

Tensor ref_attention(const Tensor& q, const Tensor& k, const Tensor& v, const Tensor& in_w, const Tensor* in_b,
                     const Tensor& out_w, const Tensor* out_b, int heads) {
  const std::int64_t b = q.shape()[0], sq = q.shape()[1], e = q.shape()[2], sk = k.shape()[1];
  const std::int64_t dh = e / heads;
  // Projections: rows [0,E) of in_proj are q, [E,2E) k, [2E,3E) v (nn.MultiheadAttention).
  auto project = [&](const Tensor& x, std::int64_t rows, int part) {
    std::vector<double> y(static_cast<std::size_t>(rows * e));
    for (std::int64_t r = 0; r < rows; ++r)
      for (std::int64_t o = 0; o < e; ++o) {
        std::int64_t row = part * e + o;
        double acc = in_b ? f32(*in_b)[row] : 0.0;
        for (std::int64_t c = 0; c < e; ++c) acc += static_cast<double>(f32(x)[r * e + c]) * f32(in_w)[row * e + c];
        y[r * e + o] = acc;
      }
    return y;
  };
  auto pq = project(q, b * sq, 0), pk = project(k, b * sk, 1), pv = project(v, b * sk, 2);
  std::vector<double> context(static_cast<std::size_t>(b * sq * e), 0.0);
  const double scale = 1.0 / std::sqrt(static_cast<double>(dh));
  std::vector<double> p(static_cast<std::size_t>(sk));
  for (std::int64_t bi = 0; bi < b; ++bi)
    for (std::int64_t h = 0; h < heads; ++h)
      for (std::int64_t i = 0; i < sq; ++i) {
        double mx = -INFINITY, sum = 0;
        for (std::int64_t j = 0; j < sk; ++j) {
          double s = 0;
          for (std::int64_t c = 0; c < dh; ++c) s += pq[(bi * sq + i) * e + h * dh + c] * pk[(bi * sk + j) * e + h * dh + c];
          p[j] = s * scale;
          mx = std::max(mx, p[j]);
        }
        for (std::int64_t j = 0; j < sk; ++j) sum += (p[j] = std::exp(p[j] - mx));
        for (std::int64_t c = 0; c < dh; ++c) {
          double acc = 0;
          for (std::int64_t j = 0; j < sk; ++j) acc += p[j] / sum * pv[(bi * sk + j) * e + h * dh + c];
          context[(bi * sq + i) * e + h * dh + c] = acc;
        }
      }
  Tensor y = Tensor::empty(DType::f32, {b, sq, e});
  for (std::int64_t r = 0; r < b * sq; ++r)
    for (std::int64_t o = 0; o < e; ++o) {
      double acc = out_b ? f32(*out_b)[o] : 0.0;
      for (std::int64_t c = 0; c < e; ++c) acc += context[r * e + c] * f32(out_w)[o * e + c];
      y.data_as<float>()[r * e + o] = static_cast<float>(acc);
    }
  return y;
}

}  // namespace kiln::test
