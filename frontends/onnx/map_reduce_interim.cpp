// ReduceMean, needed by the Transformer exports of tests/test_onnx_torch_models.cpp (LayerNorm's decomposed
// form, mean pooling). INTERIM: the reduction family belongs to map_math.cpp (another branch adds it);
// when both are merged, this file and its rows go.

#include "frontends/onnx/importer.hpp"

namespace kiln::onnx_import {
namespace {

void map_reduce_mean(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"axes", "keepdims"});
  Value* x = im.input(n, 0);
  std::vector<std::int64_t> axes = im.attr_ints(n, "axes");
  if (!im.attr(n, "axes"))
    for (int a = 0; a < rank_of(x); ++a) axes.push_back(a);
  im.emit(n, "reduce_mean", {x}, {{"axes", axes}, {"keepdims", im.attr_int(n, "keepdims", 1) != 0}});
}

}  // namespace

std::vector<OpRow> interim_rows() { return {{"ReduceMean", kMinOpset, kMaxOpset, map_reduce_mean}}; }

}  // namespace kiln::onnx_import
