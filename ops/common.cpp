#include "ops/common.hpp"

#include <oneapi/dnnl/dnnl_debug.h>

namespace kiln {

int normalize_axis(const ShapeCtx& ctx, std::int64_t axis, int rank, const char* attr) {
  if (axis < -rank || axis >= rank)
    ctx.fail(std::string("attribute '") + attr + "' = " + std::to_string(axis) + " is out of range for rank " +
             std::to_string(rank) + " (expected " + std::to_string(-rank) + ".." + std::to_string(rank - 1) + ")");
  return static_cast<int>(axis < 0 ? axis + rank : axis);
}

bool same_dim(const Dim& a, const Dim& b) { return a == b; }

Shape broadcast(const ShapeCtx& ctx, const Shape& a, const Shape& b) {
  std::size_t rank = std::max(a.size(), b.size());
  Shape out(rank);
  for (std::size_t i = 0; i < rank; ++i) {
    const Dim* da = i < rank - a.size() ? nullptr : &a[i - (rank - a.size())];
    const Dim* db = i < rank - b.size() ? nullptr : &b[i - (rank - b.size())];
    if (!da) out[i] = *db;
    else if (!db) out[i] = *da;
    else if (*da == *db) out[i] = *da;
    else if (da->is(1)) out[i] = *db;
    else if (db->is(1)) out[i] = *da;
    else
      ctx.fail("cannot broadcast shapes " + shape_str(a) + " and " + shape_str(b) + " (dim " + std::to_string(i) +
               ": " + da->str() + " vs " + db->str() + ")");
  }
  return out;
}

void expect_f32(const ShapeCtx& ctx, std::size_t i) { ctx.expect_dtype(i, DType::f32); }

void expect_gemm_weight_type(const ShapeCtx& ctx, std::size_t i) {
  const TensorType& t = ctx.in(i);
  if (t.dtype == DType::f32 || quantized_format(t)) return;
  const Value* v = ctx.node().inputs.at(i);
  ctx.fail("expected " + ctx.node().schema->inputs.at(i).name + " of type f32 (or i8 in layout " + qgemm::kS8Layout +
           ", bf16 in layout " + qgemm::kBf16Layout + " as quantization packs it), got " + t.str() +
           (v ? " ('" + v->name + "')" : std::string()));
}

void expect_weight_shape(const ShapeCtx& ctx, std::size_t i, const Shape& want) {
  const TensorType& t = ctx.in(i);
  if (t.shape != want) {
    const Value* v = ctx.node().inputs.at(i);
    const auto& spec = ctx.node().schema->inputs.at(i);
    ctx.fail("expected " + spec.name + " of shape " + shape_str(want) + ", got " + shape_str(t.shape) +
             (v ? " ('" + v->name + "')" : std::string()));
  }
}

dnnl::memory::dims to_dnnl(const std::vector<std::int64_t>& dims) {
  return dnnl::memory::dims(dims.begin(), dims.end());
}

dnnl::memory::data_type dnnl_type(DType t) {
  using dt = dnnl::memory::data_type;
  switch (t) {
    case DType::f32: return dt::f32;
    case DType::f16: return dt::f16;
    case DType::bf16: return dt::bf16;
    case DType::i32: return dt::s32;
    case DType::i8: return dt::s8;
    case DType::u8:
    case DType::boolean: return dt::u8;
    default: fail("internal: dtype " + std::string(dtype_name(t)) + " has no oneDNN equivalent");
  }
}

dnnl::memory::desc plain_md(const std::vector<std::int64_t>& dims, DType t) {
  std::vector<std::int64_t> strides(dims.size(), 1);
  for (int i = static_cast<int>(dims.size()) - 2; i >= 0; --i)
    strides[i] = strides[i + 1] * std::max<std::int64_t>(dims[i + 1], 1);
  return strided_md(dims, strides, t);
}

dnnl::memory::desc plain_md(const TensorType& t) { return plain_md(dims_of(t.shape), t.dtype); }

namespace {
struct NamedLayout {
  const char* name;
  int rank;
  dnnl::memory::format_tag tag;
};
// Layouts by name. Plain row-major is the empty name. Blocked channel layouts (nChw8c, ...) are what
// oneDNN's fast convolutions use on AVX2; permuted ones (nhwc, ba) are what some producers emit.
const NamedLayout kLayouts[] = {
    {"ba", 2, dnnl::memory::format_tag::ba},         {"nwc", 3, dnnl::memory::format_tag::nwc},
    {"nCw8c", 3, dnnl::memory::format_tag::nCw8c},   {"nhwc", 4, dnnl::memory::format_tag::nhwc},
    {"nChw8c", 4, dnnl::memory::format_tag::nChw8c}, {"nChw16c", 4, dnnl::memory::format_tag::nChw16c},
    {"ndhwc", 5, dnnl::memory::format_tag::ndhwc},   {"nCdhw8c", 5, dnnl::memory::format_tag::nCdhw8c},
};
}  // namespace

bool valid_layout(const std::string& layout, int rank, std::string* known) {
  if (layout.empty()) return true;
  std::string names;
  for (const auto& l : kLayouts) {
    if (l.name == layout && l.rank == rank) return true;
    if (l.rank == rank) names += (names.empty() ? "" : ", ") + std::string(l.name);
  }
  if (known) *known = names.empty() ? "none for rank " + std::to_string(rank) : names;
  return false;
}

dnnl::memory::desc md_of(const TensorType& t) {
  if (t.layout.empty()) return plain_md(t);
  for (const auto& l : kLayouts)
    if (l.name == t.layout && l.rank == t.rank())
      return dnnl::memory::desc(to_dnnl(dims_of(t.shape)), dnnl_type(t.dtype), l.tag);
  fail("internal: unknown layout '" + t.layout + "' for " + t.str());
}

std::size_t buffer_bytes(const TensorType& t) {
  if (t.layout.empty()) return static_cast<std::size_t>(numel_of(t.shape)) * dtype_size(t.dtype);
  return md_of(t).get_size();
}

namespace {

constexpr const char* kDnnlLayoutPrefix = "dnnl:";

/// The desc of `dims` in format tag `tag`, or nullopt when the tag does not fit their rank.
std::optional<dnnl::memory::desc> desc_of_tag(const dnnl::memory::dims& dims, dnnl::memory::data_type type, int tag) {
  try {
    return dnnl::memory::desc(dims, type, static_cast<dnnl::memory::format_tag>(tag));
  } catch (const dnnl::error&) {
    return std::nullopt;
  }
}

}  // namespace

void reorder_into(const dnnl::memory& src, const dnnl::memory& dst) {
  dnnl::stream stream(detail::cpu_engine());
  dnnl::reorder(src, dst).execute(stream, const_cast<dnnl::memory&>(src), const_cast<dnnl::memory&>(dst));
  stream.wait();
}

std::string dnnl_layout_name(const dnnl::memory::desc& md) {
  const dnnl::memory::dims dims = md.dims();
  for (int tag = dnnl_format_tag_any + 1; tag < dnnl_format_tag_last; ++tag)
    if (auto d = desc_of_tag(dims, md.data_type(), tag); d && *d == md)
      return kDnnlLayoutPrefix + std::string(dnnl_fmt_tag2str(static_cast<dnnl_format_tag_t>(tag)));
  return {};
}

std::optional<dnnl::memory::desc> dnnl_layout_desc(const std::string& name, const dnnl::memory::dims& dims,
                                                   dnnl::memory::data_type type) {
  const std::string prefix = kDnnlLayoutPrefix;
  if (name.compare(0, prefix.size(), prefix) != 0) return std::nullopt;
  for (int tag = dnnl_format_tag_any + 1; tag < dnnl_format_tag_last; ++tag)
    if (name.compare(prefix.size(), std::string::npos, dnnl_fmt_tag2str(static_cast<dnnl_format_tag_t>(tag))) == 0)
      return desc_of_tag(dims, type, tag);
  return std::nullopt;
}

std::string layout_of_first_input(const Node& node) {
  const Value* first = node.inputs.at(0);
  for (const Value* v : node.inputs)
    if (v && v->type.shape != first->type.shape) return {};
  return first->type.layout;
}

dnnl::memory::desc strided_md(const std::vector<std::int64_t>& dims, const std::vector<std::int64_t>& strides,
                              DType t) {
  if (dims.empty()) return dnnl::memory::desc({1}, dnnl_type(t), dnnl::memory::dims{1});
  return dnnl::memory::desc(to_dnnl(dims), dnnl_type(t), to_dnnl(strides));
}

dnnl::primitive_attr user_scratchpad_attr() {
  dnnl::primitive_attr attr;
  attr.set_scratchpad_mode(dnnl::scratchpad_mode::user);
  return attr;
}

std::vector<std::int64_t> padded_dims(const std::vector<std::int64_t>& dims, std::size_t rank) {
  std::vector<std::int64_t> out(rank - dims.size(), 1);
  out.insert(out.end(), dims.begin(), dims.end());
  return out;
}

std::unique_ptr<Kernel> reorder_kernel(const dnnl::engine& engine, const dnnl::memory::desc& src,
                                       const dnnl::memory::desc& dst) {
  dnnl::reorder::primitive_desc pd(engine, src, engine, dst, user_scratchpad_attr());
  auto kernel = std::make_unique<DnnlKernel>(engine);
  int s = kernel->add(pd);
  kernel->input(s, DNNL_ARG_FROM, src, 0);
  kernel->output(s, DNNL_ARG_TO, dst, 0);
  return kernel;
}

std::size_t DnnlKernel::reserve(std::size_t bytes) {
  std::size_t offset = scratch_;
  scratch_ += (bytes + 63) / 64 * 64;
  return offset;
}

int DnnlKernel::add(const dnnl::primitive& prim, const dnnl::memory::desc& scratchpad_md, std::string impl) {
  steps_.push_back(Step{prim, {}, {}, std::move(impl)});
  int step = static_cast<int>(steps_.size()) - 1;
  std::size_t pad = scratchpad_md.get_size();
  if (pad > 0) {
    scratchpad_ = std::max(scratchpad_, pad);
    bind(step, DNNL_ARG_SCRATCHPAD, scratchpad_md, Source::Scratchpad, 0, 0);
  }
  return step;
}

void DnnlKernel::bind(int step, int arg, const dnnl::memory::desc& md, Source source, int index, std::size_t offset) {
  // DNNL_MEMORY_NONE: the handle is set before every execution.
  dnnl::memory mem(md, engine_, DNNL_MEMORY_NONE);
  steps_.at(step).args[arg] = mem;
  steps_.at(step).bindings.push_back(Binding{mem, source, index, offset});
}

void DnnlKernel::input(int step, int arg, const dnnl::memory::desc& md, int index, std::size_t byte_offset) {
  bind(step, arg, md, Source::Input, index, byte_offset);
}
void DnnlKernel::output(int step, int arg, const dnnl::memory::desc& md, int index, std::size_t byte_offset) {
  bind(step, arg, md, Source::Output, index, byte_offset);
}
void DnnlKernel::scratch(int step, int arg, const dnnl::memory::desc& md, std::size_t byte_offset) {
  bind(step, arg, md, Source::Scratch, 0, byte_offset);
}
void DnnlKernel::fixed(int step, int arg, const dnnl::memory& mem) { steps_.at(step).args[arg] = mem; }

int DnnlKernel::add_step(StepFn fn, std::string impl) {
  steps_.push_back(Step{dnnl::primitive(), {}, {}, std::move(impl), {}, std::move(fn)});
  return static_cast<int>(steps_.size()) - 1;
}

void DnnlKernel::execute(dnnl::stream& stream, const KernelArgs& args) {
  auto* scratch = static_cast<char*>(args.scratch);
  for (auto& step : steps_) {
    if (step.fn) {
      step.fn(args, scratch);
      continue;
    }
    for (auto& b : step.bindings) {
      char* base = nullptr;
      switch (b.source) {
        case Source::Input: base = const_cast<char*>(static_cast<const char*>(args.in[b.index])); break;
        case Source::Output: base = static_cast<char*>(args.out[b.index]); break;
        case Source::Scratch: base = scratch; break;
        case Source::Scratchpad: base = scratch + scratch_; break;
      }
      b.mem.set_data_handle(base + b.offset);
    }
    if (step.c_args.size() != step.args.size()) {
      step.c_args.clear();
      for (const auto& [arg, mem] : step.args) step.c_args.push_back(dnnl_exec_arg_t{arg, mem.get()});
    }
    dnnl_status_t status =
        dnnl_primitive_execute(step.prim.get(), stream.get(), static_cast<int>(step.c_args.size()), step.c_args.data());
    if (status != dnnl_success) throw dnnl::error(status, ("could not execute " + step.impl).c_str());
  }
}

std::size_t DnnlKernel::scratch_bytes() const { return scratch_ + scratchpad_; }

std::string DnnlKernel::impl() const {
  std::string out;
  for (const auto& s : steps_) out += (out.empty() ? "" : " + ") + s.impl;
  return out;
}

std::vector<InputSpec> mha_inputs(std::vector<InputSpec> leading, std::vector<InputSpec> trailing) {
  for (InputSpec w :
       {InputSpec{"in_proj_weight", false, "in_proj_weight"}, InputSpec{"in_proj_bias", true, "in_proj_bias"},
        InputSpec{"out_proj_weight", false, "out_proj.weight"}, InputSpec{"out_proj_bias", true, "out_proj.bias"}})
    leading.push_back(std::move(w));
  for (InputSpec& t : trailing) leading.push_back(std::move(t));
  return leading;
}

AttrSpec heads_attr() {
  return AttrSpec{"heads", AttrType::Int, std::nullopt, "number of heads; divides the embedding dim"};
}

AxisSplit split_at_axis(const std::vector<std::int64_t>& dims, std::int64_t axis) {
  const auto rank = static_cast<std::int64_t>(dims.size());
  const auto a = static_cast<std::size_t>(axis < 0 ? axis + rank : axis);
  AxisSplit s;
  for (std::size_t d = 0; d < a; ++d) s.outer *= dims[d];
  for (std::size_t d = a + 1; d < dims.size(); ++d) s.inner *= dims[d];
  s.n = dims.at(a);
  return s;
}

void bind_dnnl_weights(DnnlKernel& kernel, int step, const KernelCtx& ctx, std::size_t weight,
                       const dnnl::memory::desc& as_written, const dnnl::memory::desc& want) {
  const Node& n = ctx.node;
  const ConstData* data = ctx.constant(weight);
  if (!data) n.fail("expected weight to be a constant");
  const std::string& layout = ctx.in[weight].layout;
  dnnl::memory::desc have = as_written;
  if (!layout.empty()) {
    const auto named = dnnl_layout_desc(layout, want.dims(), dnnl::memory::data_type::f32);
    if (!named) n.fail("weight is in layout " + layout + ", which is not a oneDNN weights format");
    have = *named;
  }
  if (data->bytes < have.get_size())  // a plan file's bytes are checked here
    n.fail("weight in layout " + (layout.empty() ? std::string("plain") : layout) + " holds " +
           std::to_string(data->bytes) + " bytes; expected " + std::to_string(have.get_size()));
  if (have == want) {
    kernel.input(step, DNNL_ARG_WEIGHTS, want, static_cast<int>(weight));
    return;
  }
  dnnl::memory packed(want, ctx.engine);
  reorder_into(dnnl::memory(have, ctx.engine, const_cast<void*>(data->data)), packed);
  kernel.fixed(step, DNNL_ARG_WEIGHTS, packed);
  kernel.add_packed_weight_bytes(want.get_size());
}

void pack_dnnl_weight(PackCtx& ctx, std::size_t weight, const dnnl::memory::desc& as_written,
                      const dnnl::memory::desc& want) {
  const Value* w = ctx.node().inputs[weight];
  const std::string name = dnnl_layout_name(want);
  if (name.empty() || want == as_written) return;  // nothing to pack: read as written, or unnamed
  TensorType type = w->type;
  type.layout = name;
  const std::size_t bytes = want.get_size();
  const void* weights = w->constant.data;
  ctx.replace({PackedInput{weight, type, 0, bytes}}, bytes, [weights, as_written, want](void* out) {
    reorder_into(dnnl::memory(as_written, detail::cpu_engine(), const_cast<void*>(weights)),
                 dnnl::memory(want, detail::cpu_engine(), out));
  });
}

TensorType representative_type(TensorType t) {
  for (std::size_t i = 0; i < t.shape.size(); ++i)
    if (!t.shape[i].concrete()) t.shape[i] = Dim::of(i == 0 ? 1 : 32);
  return t;
}

}  // namespace kiln
