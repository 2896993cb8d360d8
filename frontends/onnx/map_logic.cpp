// Comparisons, logic, Where and Cast: the ONNX ops on masks and ids (bool, int64) onto Kiln's typed ops.

#include "frontends/onnx/importer.hpp"

namespace kiln::onnx_import {
namespace {

void map_plain(Importer& im, const OnnxNode& n, const std::string& op) {
  im.only_attrs(n, {});
  im.emit(n, op, all_inputs(im, n), {});
}

void map_equal(Importer& im, const OnnxNode& n) { map_plain(im, n, "equal"); }
void map_less(Importer& im, const OnnxNode& n) { map_plain(im, n, "less"); }
void map_less_equal(Importer& im, const OnnxNode& n) { map_plain(im, n, "less_equal"); }
void map_greater(Importer& im, const OnnxNode& n) { map_plain(im, n, "greater"); }
void map_greater_equal(Importer& im, const OnnxNode& n) { map_plain(im, n, "greater_equal"); }
void map_and(Importer& im, const OnnxNode& n) { map_plain(im, n, "logical_and"); }
void map_or(Importer& im, const OnnxNode& n) { map_plain(im, n, "logical_or"); }
void map_xor(Importer& im, const OnnxNode& n) { map_plain(im, n, "logical_xor"); }
void map_not(Importer& im, const OnnxNode& n) { map_plain(im, n, "logical_not"); }
void map_where(Importer& im, const OnnxNode& n) { map_plain(im, n, "where"); }
void map_is_nan(Importer& im, const OnnxNode& n) { map_plain(im, n, "is_nan"); }

void map_is_inf(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"detect_positive", "detect_negative"});
  im.emit(n, "is_inf", {im.input(n, 0)},
          {{"detect_positive", im.attr_int(n, "detect_positive", 1) != 0},
           {"detect_negative", im.attr_int(n, "detect_negative", 1) != 0}});
}

// Cast (opset 6 on: `to` is a TensorProto data type) onto Kiln's cast between the types its kernels hold.
void map_cast(Importer& im, const OnnxNode& n) {
  im.only_attrs(n, {"to"});
  if (!im.attr(n, "to")) im.fail(n, "expected attribute 'to'");
  const auto to = static_cast<int>(im.attr_int(n, "to", 0));
  DType t{};
  if (!dtype_of(to, &t))
    im.fail(n, "Cast to " + onnx_type_name(to) +
                   " is not supported (expected to = FLOAT, DOUBLE, FLOAT16, BFLOAT16, INT64, INT32, INT8, UINT8 or "
                   "BOOL)");
  // A concrete integer value known at import (a constant, or a shape value folded by map_shape.cpp) cast to
  // float stays a constant, so that mappings needing constants downstream (Reshape, Pow, Clip) see one.
  if (const IntValue* k = im.known(n, 0); k && t == DType::f32 && k->concrete()) {
    ConstTensor c;
    c.dims = k->dims;
    auto buf = aligned_buffer(k->elems.size() * sizeof(float));
    for (std::size_t i = 0; i < k->elems.size(); ++i)
      static_cast<float*>(buf.get())[i] = static_cast<float>(k->elems[i].value);
    c.data = ConstData{buf.get(), k->elems.size() * sizeof(float), std::shared_ptr<const void>(buf)};
    return im.define_constant(n, std::move(c));
  }
  Value* x = im.input(n, 0);
  // A cast to the type x already has (torch exports many: .long() of int64 ids) is a view, which the
  // remove-noops pass removes.
  if (x->type.dtype == t) return im.emit(n, "dropout", {x}, {{"p", 0.0}});
  im.emit(n, "cast", {x}, {{"to", std::string(dtype_name(t))}});
}

}  // namespace

std::vector<OpRow> logic_rows() {
  return {
      // Equal from 7 (broadcasting; 11 adds float types), Less and Greater from 7 (9 adds integer types).
      {"Equal", 7, kMaxOpset, map_equal},
      {"Less", 7, kMaxOpset, map_less},
      {"LessOrEqual", 12, kMaxOpset, map_less_equal},
      {"Greater", 7, kMaxOpset, map_greater},
      {"GreaterOrEqual", 12, kMaxOpset, map_greater_equal},
      {"And", 7, kMaxOpset, map_and},
      {"Or", 7, kMaxOpset, map_or},
      {"Xor", 7, kMaxOpset, map_xor},
      {"Not", 1, kMaxOpset, map_not},
      {"Where", 9, kMaxOpset, map_where},
      {"Cast", 6, kMaxOpset, map_cast},  // 6: `to` an integer (1-5: a string)
      {"IsNaN", 9, kMaxOpset, map_is_nan},
      {"IsInf", 10, kMaxOpset, map_is_inf},
  };
}

}  // namespace kiln::onnx_import
