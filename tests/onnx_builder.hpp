#pragma once
// Small ONNX models built in C++ with the ONNX library's protobuf classes, for the importer's tests
// (test_onnx_*.cpp): the graph's pieces (inputs/outputs, nodes, attributes, initializers) and saving.

#include <onnx/onnx_pb.h>

#include <cctype>
#include <cstdint>
#include <initializer_list>
#include <string>
#include <vector>

#include "test_util.hpp"

namespace kiln::test::onnx_build {

/// A model at `opset` (default domain) with an empty graph named `name`.
inline onnx::ModelProto empty_model(int opset, int ir_version = 8, const std::string& name = "built") {
  onnx::ModelProto m;
  m.set_ir_version(ir_version);
  auto* o = m.add_opset_import();
  o->set_domain("");
  o->set_version(opset);
  m.mutable_graph()->set_name(name);
  return m;
}

/// Sets a graph input's or output's tensor type: each dim a number ("4") or a symbol ("batch").
inline void set_tensor_type(onnx::ValueInfoProto* v, int elem_type, const std::vector<std::string>& dims) {
  auto* tt = v->mutable_type()->mutable_tensor_type();
  tt->set_elem_type(elem_type);
  auto* shape = tt->mutable_shape();  // an output needs one for the checker even when empty
  for (const auto& d : dims) {
    if (!d.empty() && std::isdigit(static_cast<unsigned char>(d[0])) != 0) shape->add_dim()->set_dim_value(std::stoll(d));
    else shape->add_dim()->set_dim_param(d);
  }
}

inline onnx::ValueInfoProto* add_input(onnx::ModelProto& m, const std::string& name, int elem_type,
                                       const std::vector<std::string>& dims) {
  auto* v = m.mutable_graph()->add_input();
  v->set_name(name);
  set_tensor_type(v, elem_type, dims);
  return v;
}

inline onnx::ValueInfoProto* add_output(onnx::ModelProto& m, const std::string& name, int elem_type,
                                        const std::vector<std::string>& dims) {
  auto* v = m.mutable_graph()->add_output();
  v->set_name(name);
  set_tensor_type(v, elem_type, dims);
  return v;
}

inline onnx::NodeProto* add_node(onnx::ModelProto& m, const std::string& op, const std::string& name,
                                 std::initializer_list<std::string> ins, std::initializer_list<std::string> outs) {
  auto* n = m.mutable_graph()->add_node();
  n->set_op_type(op);
  n->set_name(name);
  for (const auto& i : ins) n->add_input(i);
  for (const auto& o : outs) n->add_output(o);
  return n;
}

inline onnx::AttributeProto* add_attr(onnx::NodeProto* n, const std::string& key, onnx::AttributeProto_AttributeType t) {
  auto* a = n->add_attribute();
  a->set_name(key);
  a->set_type(t);
  return a;
}
inline void set_int_attr(onnx::NodeProto* n, const std::string& key, std::int64_t v) {
  add_attr(n, key, onnx::AttributeProto_AttributeType_INT)->set_i(v);
}
inline void set_ints_attr(onnx::NodeProto* n, const std::string& key, const std::vector<std::int64_t>& v) {
  auto* a = add_attr(n, key, onnx::AttributeProto_AttributeType_INTS);
  for (auto i : v) a->add_ints(i);
}
inline void set_float_attr(onnx::NodeProto* n, const std::string& key, float v) {
  add_attr(n, key, onnx::AttributeProto_AttributeType_FLOAT)->set_f(v);
}
inline void set_string_attr(onnx::NodeProto* n, const std::string& key, const std::string& v) {
  add_attr(n, key, onnx::AttributeProto_AttributeType_STRING)->set_s(v);
}

inline onnx::TensorProto* add_initializer(onnx::ModelProto& m, const std::string& name, int elem_type,
                                          const std::vector<std::int64_t>& dims) {
  auto* t = m.mutable_graph()->add_initializer();
  t->set_name(name);
  t->set_data_type(elem_type);
  for (auto d : dims) t->add_dims(d);
  return t;
}
inline void add_f32(onnx::ModelProto& m, const std::string& name, const std::vector<std::int64_t>& dims,
                    const std::vector<float>& values) {
  auto* t = add_initializer(m, name, onnx::TensorProto_DataType_FLOAT, dims);
  for (float v : values) t->add_float_data(v);
}
inline void add_i64(onnx::ModelProto& m, const std::string& name, const std::vector<std::int64_t>& dims,
                    const std::vector<std::int64_t>& values) {
  auto* t = add_initializer(m, name, onnx::TensorProto_DataType_INT64, dims);
  for (auto v : values) t->add_int64_data(v);
}

/// Writes `m` to NAME in `dir`; returns its path.
inline std::string save(const TempDir& dir, const std::string& name, const onnx::ModelProto& m) {
  std::string bytes;
  REQUIRE(m.SerializeToString(&bytes));
  return dir.write(name, bytes);
}

}  // namespace kiln::test::onnx_build
