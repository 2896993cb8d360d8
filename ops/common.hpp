#pragma once
// Helpers shared by op definitions: shape-rule utilities and DnnlKernel, a kernel made of oneDNN
// primitives whose buffers are bound by position (node input i, output j, scratch offset).

#include <functional>
#include <optional>
#include <unordered_map>
#include <utility>
#include <vector>

#include "ops/op.hpp"
#include "ops/qgemm.hpp"

namespace kiln {

// ---- shape rules ----

/// Normalizes a possibly negative axis for a tensor of `rank`; fails on the node when out of range.
int normalize_axis(const ShapeCtx& ctx, std::int64_t axis, int rank, const char* attr = "axis");
/// Whether two dims may be equal at run time (equal, or concrete == concrete).
bool same_dim(const Dim& a, const Dim& b);
/// NumPy-style broadcast of two shapes; fails on the node with both shapes when incompatible.
Shape broadcast(const ShapeCtx& ctx, const Shape& a, const Shape& b);
/// Fails unless input i is a float tensor (f32: the only float type kernels run on here).
void expect_f32(const ShapeCtx& ctx, std::size_t i);
/// Fails unless input i can be a LinearStep's weight: f32 (plain or packed), or quantized as the pack-weights
/// pass makes it (i8 in qgemm's s8panels16, bf16 in bf16panels16; docs/quantization.md).
void expect_gemm_weight_type(const ShapeCtx& ctx, std::size_t i);
/// Fails unless constant input `i` (a weight) has exactly `want`; the message names the weight's value.
void expect_weight_shape(const ShapeCtx& ctx, std::size_t i, const Shape& want);

// ---- oneDNN ----

dnnl::memory::dims to_dnnl(const std::vector<std::int64_t>& dims);
dnnl::memory::data_type dnnl_type(DType t);
/// Dense row-major descriptor for a concrete type.
dnnl::memory::desc plain_md(const TensorType& t);
/// Descriptor for a concrete type in its layout (plain, or the named oneDNN layout).
dnnl::memory::desc md_of(const TensorType& t);
/// Bytes a buffer of this type takes in its layout (blocked layouts pad).
std::size_t buffer_bytes(const TensorType& t);
/// The layout name a packed weight constant carries for oneDNN's format `md` ("dnnl:ABcd8b8a": oneDNN's
/// name of the format tag whose desc of md's dims equals md), or "" when no format tag describes it.
std::string dnnl_layout_name(const dnnl::memory::desc& md);
/// Copies `src` into `dst` (another layout of the same tensor) with a oneDNN reorder on the CPU engine, now.
/// For weights converted once, at compile time or when a kernel is made; never on a run.
void reorder_into(const dnnl::memory& src, const dnnl::memory& dst);
/// The desc of `dims` in the layout dnnl_layout_name named, or nullopt when `name` is not such a name.
std::optional<dnnl::memory::desc> dnnl_layout_desc(const std::string& name, const dnnl::memory::dims& dims,
                                                   dnnl::memory::data_type type);
/// Whether `layout` names a layout Kiln knows for tensors of `rank`; `known` lists them when not.
bool valid_layout(const std::string& layout, int rank, std::string* known);
/// Layout-preserving ops (elementwise): the layout of input 0, when every input has the same shape.
std::string layout_of_first_input(const Node& node);
dnnl::memory::desc plain_md(const std::vector<std::int64_t>& dims, DType t = DType::f32);
/// Descriptor with explicit strides (in elements).
dnnl::memory::desc strided_md(const std::vector<std::int64_t>& dims, const std::vector<std::int64_t>& strides,
                              DType t = DType::f32);
/// Primitive attributes with a user-managed scratchpad (Kiln hands oneDNN memory from its arena).
dnnl::primitive_attr user_scratchpad_attr();
/// `dims` with leading 1s up to `rank` (NumPy broadcasting's alignment, which oneDNN wants spelled out).
std::vector<std::int64_t> padded_dims(const std::vector<std::int64_t>& dims, std::size_t rank);

/// A kernel that copies input 0 (read as `src`) into output 0 (written as `dst`) with one oneDNN reorder.
std::unique_ptr<Kernel> reorder_kernel(const dnnl::engine& engine, const dnnl::memory::desc& src,
                                       const dnnl::memory::desc& dst);

/// A kernel built from one or more oneDNN primitives executed in order. Each primitive's memory
/// arguments are bound to a node input, a node output, a region of this kernel's scratch, or fixed
/// memory (constants). Binding happens once; execute only swaps data handles.
class DnnlKernel : public Kernel {
 public:
  explicit DnnlKernel(dnnl::engine engine) : engine_(std::move(engine)) {}

  /// Reserves `bytes` of scratch (64-byte aligned) and returns its offset.
  std::size_t reserve(std::size_t bytes);
  /// Adds a primitive; its oneDNN scratchpad (user mode) is bound automatically.
  int add(const dnnl::primitive& prim, const dnnl::memory::desc& scratchpad_md, std::string impl);
  template <class PD>
  int add(const PD& pd) {
    return add(dnnl::primitive(pd.get()), pd.scratchpad_desc(), pd.impl_info_str());
  }
  void input(int step, int arg, const dnnl::memory::desc& md, int index, std::size_t byte_offset = 0);
  void output(int step, int arg, const dnnl::memory::desc& md, int index, std::size_t byte_offset = 0);
  void scratch(int step, int arg, const dnnl::memory::desc& md, std::size_t byte_offset);
  void fixed(int step, int arg, const dnnl::memory& mem);
  /// Keeps `data` (what a fixed memory points into) alive as long as the kernel.
  void hold(std::shared_ptr<const void> data) { held_.push_back(std::move(data)); }
  /// A step that runs Kiln code instead of a primitive: `fn(args, scratch)` with this kernel's scratch.
  using StepFn = std::function<void(const KernelArgs& args, char* scratch)>;
  int add_step(StepFn fn, std::string impl);
  /// Records that a step holds `bytes` of packed weights (see Kernel::packed_weight_bytes).
  void add_packed_weight_bytes(std::size_t bytes) { packed_bytes_ += bytes; }
  std::size_t packed_weight_bytes() const override { return packed_bytes_; }

  void execute(dnnl::stream& stream, const KernelArgs& args) override;
  std::size_t scratch_bytes() const override;
  std::string impl() const override;

 private:
  enum class Source : std::uint8_t { Input, Output, Scratch, Scratchpad };
  struct Binding {
    dnnl::memory mem;
    Source source;
    int index;
    std::size_t offset;
  };
  struct Step {
    dnnl::primitive prim;
    std::unordered_map<int, dnnl::memory> args;
    std::vector<Binding> bindings;
    std::string impl;
    // `args` as the C API takes them, built on first execution: executing through the C++ wrapper
    // would build this array (a heap allocation) on every call.
    std::vector<dnnl_exec_arg_t> c_args;
    StepFn fn;  // set for a Kiln step (then prim is empty)
  };
  void bind(int step, int arg, const dnnl::memory::desc& md, Source source, int index, std::size_t offset);

  dnnl::engine engine_;
  std::vector<Step> steps_;
  std::vector<std::shared_ptr<const void>> held_;
  std::size_t scratch_ = 0;     // user scratch regions
  std::size_t scratchpad_ = 0;  // max oneDNN scratchpad over steps (steps run one after another)
  std::size_t packed_bytes_ = 0;
};

// ---- schemas of the nn.MultiheadAttention ops (attention, cross_attention, cached_attention) ----

/// `leading` (the op's activations), then nn.MultiheadAttention's weights in_proj_weight, in_proj_bias,
/// out_proj.weight, out_proj.bias (biases optional), then `trailing` (optional extras such as a mask).
std::vector<InputSpec> mha_inputs(std::vector<InputSpec> leading, std::vector<InputSpec> trailing);
/// The `heads` attribute those ops share.
AttrSpec heads_attr();

/// Where a kernel step reads or writes a buffer: a node input, a node output, or the kernel's scratch.
struct Operand {
  enum class Kind : std::uint8_t { Input, Output, Scratch };
  Kind kind = Kind::Input;
  int index = 0;           // input/output index
  std::size_t offset = 0;  // bytes into the buffer
  static Operand input(int i, std::size_t offset = 0) { return {Kind::Input, i, offset}; }
  static Operand output(int i, std::size_t offset = 0) { return {Kind::Output, i, offset}; }
  static Operand scratch(std::size_t offset) { return {Kind::Scratch, 0, offset}; }
};

/// One nn.Linear-style product inside a kernel: dst[rows,out] = act(src[rows,in] · W[row0:row0+out, :]ᵀ
/// + b[row0:row0+out]) + residual, with W a constant node input stored [*, in] as PyTorch does (a slice of
/// it for the q/k/v rows of attention's packed in_proj weight).
struct LinearStep {
  std::int64_t rows = 0, in = 0, out = 0;
  Operand src, dst;
  int weight = 0;                   // node input holding W
  std::int64_t weight_row0 = 0;     // first row of W (and of the bias) used
  int bias = -1;                    // node input holding b, or -1
  std::string activation = "none";  // none or one of linear's (graph/activation.hpp)
  int residual = -1;                // node input added last ([rows,out]), or -1
};
/// Appends a LinearStep to `kernel`: Kiln's GEMM where the CPU allows, reading W's panels as the
/// pack-weights pass made them (W in gemm::kPackedLayout), or packing a private copy of plain W when the
/// kernel is made (-O0); else a oneDNN matmul reading plain W in place as [N,K]. Defined in ops/linear.cpp.
void add_linear(DnnlKernel& kernel, const KernelCtx& ctx, const LinearStep& step);
/// The pack rule of a LinearStep weight (OpSchema::pack): packs constant input `input` ([N,K] f32) whole into
/// Kiln's GEMM panels when Kiln's GEMM runs the products (gemm::enabled()) and every step reading it starts at
/// a row in `row0s` that is a multiple of gemm::kPanel; otherwise keeps it, saying why.
/// With quantization (PackCtx::quantize) it packs the weight into qgemm's s8 or bf16 panels instead (the new
/// constant's dtype i8 / bf16, layout s8panels16 / bf16panels16, same shape), whether or not Kiln's GEMM runs
/// here, and remarks on the bytes saved and the error made; weights it cannot pack stay f32, with a remark.
void pack_gemm_weight(PackCtx& ctx, std::size_t input, const std::vector<std::int64_t>& row0s);

/// Which qgemm format a weight type is packed in, if any (ops/qgemm.hpp; defined in ops/linear.cpp).
std::optional<qgemm::Format> quantized_format(const TensorType& t);

/// A tensor's dims around `axis` (negative counts from the end): the product of the dims before it, its
/// size, and the product of the dims after it. Kernels that run along one axis (argmax, topk, cumsum, ...)
/// loop over outer x inner rows of n elements.
struct AxisSplit {
  std::int64_t outer = 1, n = 1, inner = 1;
};
AxisSplit split_at_axis(const std::vector<std::int64_t>& dims, std::int64_t axis);

/// Binds the constant weight at input `weight` as DNNL_ARG_WEIGHTS of `step` in the format the primitive
/// reads (`want`): in place when the pack-weights pass packed it into that format (its layout names it) or
/// it is written in it (`as_written`: its desc without a layout); else through a private copy reordered
/// now. Checks that the constant holds the bytes its layout needs (plan files). Convolution-like ops.
void bind_dnnl_weights(DnnlKernel& kernel, int step, const KernelCtx& ctx, std::size_t weight,
                       const dnnl::memory::desc& as_written, const dnnl::memory::desc& want);
/// The pack rule's common part for such weights: replaces the constant at input `weight` (read as
/// `as_written`) by a copy in `want`, named after its format tag; keeps it when `want` has no name or
/// equals `as_written`.
void pack_dnnl_weight(PackCtx& ctx, std::size_t weight, const dnnl::memory::desc& as_written,
                      const dnnl::memory::desc& want);
/// `t` with its symbolic dims bound to a representative size (the batch, dim 0, to 1; others to 32): the
/// shape a pack rule asks oneDNN about when the plan's shapes are not known yet.
TensorType representative_type(TensorType t);

}  // namespace kiln
