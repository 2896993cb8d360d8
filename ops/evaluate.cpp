#include "ops/evaluate.hpp"

#include "ops/op.hpp"

namespace kiln {
namespace {

std::shared_ptr<void> aligned_buffer(const Node& node, std::size_t bytes) {
  std::shared_ptr<void> p = allocate_constant_bytes(bytes);
  if (!p) node.fail("out of memory while folding a constant");
  return p;
}

}  // namespace

std::vector<ConstData> evaluate_constant_node(const Node& node) {
  if (!node.schema->make_kernel) node.fail("cannot be evaluated at compile time: it makes no kernel");
  KernelCtx kctx{node, {}, {}, detail::cpu_engine()};
  std::vector<const void*> in;
  for (const Value* v : node.inputs) {
    kctx.in.push_back(v ? v->type : TensorType{});
    in.push_back(v ? v->constant.data : nullptr);
  }
  for (const Value* v : node.outputs) kctx.out.push_back(v->type);
  std::unique_ptr<Kernel> kernel;
  try {
    kernel = node.schema->make_kernel(kctx);
  } catch (const dnnl::error& e) {
    node.fail(std::string("oneDNN could not create a kernel: ") + e.what());
  }
  std::vector<ConstData> results;
  std::vector<void*> out;
  for (const Value* v : node.outputs) {
    const std::size_t bytes = static_cast<std::size_t>(numel_of(v->type.shape)) * dtype_size(v->type.dtype);
    std::shared_ptr<void> buffer = aligned_buffer(node, bytes);
    out.push_back(buffer.get());
    results.push_back(ConstData{buffer.get(), bytes, std::move(buffer)});
  }
  std::shared_ptr<void> scratch;
  if (std::size_t bytes = kernel->scratch_bytes()) scratch = aligned_buffer(node, bytes);
  dnnl::stream stream(detail::cpu_engine());
  kernel->execute(stream, KernelArgs{in.data(), out.data(), scratch.get()});
  stream.wait();
  return results;
}

}  // namespace kiln
