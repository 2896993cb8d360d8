#include "ops/isa.hpp"
#include "ops/op.hpp"

namespace kiln::detail {

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine = [] {
    isa::apply();  // the ISA cap reaches oneDNN before its first primitive
    return dnnl::engine(dnnl::engine::kind::cpu, 0);
  }();
  return engine;
}

}  // namespace kiln::detail
