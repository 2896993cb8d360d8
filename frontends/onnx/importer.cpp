// The ONNX importer (docs/onnx.md): reading tensors, the op table joined from the map_*.cpp files, and the
// public entry points.

#include <onnx/checker.h>

#include <algorithm>
#include <cstring>
#include <filesystem>
#include <fstream>

#include "frontends/onnx/importer.hpp"

namespace kiln::onnx_import {

// ---- tensors ----

ConstTensor Importer::read_tensor(const onnx::TensorProto& t, const std::string& what) {
  ConstTensor c;
  if (!dtype_of(t.data_type(), &c.dtype))
    fail_file(what + ": element type " + onnx_type_name(t.data_type()) +
              " is not supported (expected float, float16, bfloat16, double, int64, int32, int8, uint8 or bool)");
  for (auto d : t.dims()) {
    if (d < 0) fail_file(what + ": dim " + std::to_string(d) + " is negative");
    c.dims.push_back(d);
  }
  const std::size_t esize = dtype_size(c.dtype);
  auto bytes_opt = checked::tensor_bytes(c.dims, esize);
  if (!bytes_opt) fail_file(what + ": its size in bytes exceeds " + std::to_string(checked::kMaxSize));
  const auto bytes = static_cast<std::size_t>(*bytes_opt);
  const auto n = static_cast<std::size_t>(c.numel());
  // Allocated only once the source is known to hold the bytes: dims may promise more than the file has.
  std::shared_ptr<void> buf;
  auto alloc = [&] {
    buf = aligned_buffer(bytes);
    return static_cast<unsigned char*>(buf.get());
  };
  auto expect_count = [&](std::size_t got, const char* field) {
    if (got != n)
      fail_file(what + ": " + field + " holds " + std::to_string(got) + " values, expected " + std::to_string(n) +
                " for dims " + shape_str(concrete_shape(c.dims)));
  };

  if (t.data_location() == onnx::TensorProto_DataLocation_EXTERNAL) {
    std::string location;
    std::uint64_t offset = 0, length = bytes;
    bool has_length = false;
    for (const auto& kv : t.external_data()) {
      char* end = nullptr;
      if (kv.key() == "location") location = kv.value();
      if (kv.key() == "offset") offset = std::strtoull(kv.value().c_str(), &end, 10);
      if (kv.key() == "length") {
        length = std::strtoull(kv.value().c_str(), &end, 10);
        has_length = true;
      }
      if (end && *end) fail_file(what + ": external data " + kv.key() + " '" + kv.value() + "' is not a number");
    }
    if (location.empty()) fail_file(what + ": external data without a 'location'");
    std::filesystem::path rel(location);
    if (rel.is_absolute() || std::find(rel.begin(), rel.end(), std::filesystem::path("..")) != rel.end())
      fail_file(what + ": external data location '" + location + "' must be a relative path inside the model's folder");
    const std::filesystem::path file = std::filesystem::path(path_).parent_path() / rel;
    if (has_length && length != bytes)
      fail_file(what + ": external data length " + std::to_string(length) + " differs from the " +
                std::to_string(bytes) + " bytes its dims and type need");
    std::error_code ec;
    const std::uint64_t size = std::filesystem::file_size(file, ec);
    if (ec) fail_file(what + ": cannot open external data file '" + file.string() + "' (" + ec.message() + ")");
    auto end = checked::add_u64(offset, bytes);
    if (!end || *end > size)
      fail_file(what + ": external data [" + std::to_string(offset) + ", " +
                (end ? std::to_string(*end) : "past 2^63") + ") lies outside '" + file.string() + "' of " +
                std::to_string(size) + " bytes");
    unsigned char* out = alloc();
    std::ifstream in(file, std::ios::binary);
    in.seekg(static_cast<std::streamoff>(offset));
    if (!in.read(reinterpret_cast<char*>(out), static_cast<std::streamsize>(bytes)))
      fail_file(what + ": cannot read external data from '" + file.string() + "'");
  } else if (t.has_raw_data()) {
    if (t.raw_data().size() != bytes)
      fail_file(what + ": raw_data holds " + std::to_string(t.raw_data().size()) + " bytes, expected " +
                std::to_string(bytes) + " for " + std::string(dtype_name(c.dtype)) + shape_str(concrete_shape(c.dims)));
    std::memcpy(alloc(), t.raw_data().data(), bytes);
  } else {
    // memcpy from an empty repeated field would read a null pointer: zero-sized tensors copy nothing.
    switch (c.dtype) {
      case DType::f32:
        expect_count(static_cast<std::size_t>(t.float_data_size()), "float_data");
        if (bytes) std::memcpy(alloc(), t.float_data().data(), bytes);
        break;
      case DType::f64:
        expect_count(static_cast<std::size_t>(t.double_data_size()), "double_data");
        if (bytes) std::memcpy(alloc(), t.double_data().data(), bytes);
        break;
      case DType::i64:
        expect_count(static_cast<std::size_t>(t.int64_data_size()), "int64_data");
        if (bytes) std::memcpy(alloc(), t.int64_data().data(), bytes);
        break;
      case DType::i32:
        expect_count(static_cast<std::size_t>(t.int32_data_size()), "int32_data");
        if (bytes) std::memcpy(alloc(), t.int32_data().data(), bytes);
        break;
      default: {  // int8, uint8, bool: one value per int32; float16, bfloat16: the bits in the low 16
        expect_count(static_cast<std::size_t>(t.int32_data_size()), "int32_data");
        unsigned char* out = alloc();
        for (std::size_t i = 0; i < n; ++i) {
          const auto v = static_cast<std::uint32_t>(t.int32_data(static_cast<int>(i)));
          if (esize == 1) out[i] = static_cast<unsigned char>(v);
          else {
            const auto h = static_cast<std::uint16_t>(v);
            std::memcpy(out + 2 * i, &h, 2);
          }
        }
      }
    }
  }
  if (!buf) alloc();  // a zero-sized tensor still needs an owner: Value::is_constant() looks for one
  c.data = ConstData{buf.get(), bytes, std::shared_ptr<const void>(buf)};
  return c;
}

// The values of a constant as int64 (shapes, axes) or as doubles (scalars); fails unless integer/float.
std::vector<std::int64_t> const_ints(Importer& im, const OnnxNode& n, const ConstTensor& c, const std::string& what) {
  std::vector<std::int64_t> v(static_cast<std::size_t>(c.numel()));
  if (c.dtype == DType::i64) {
    if (c.data.bytes) std::memcpy(v.data(), c.data.data, c.data.bytes);  // an empty list has no data pointer
  } else if (c.dtype == DType::i32) {
    for (std::size_t i = 0; i < v.size(); ++i) v[i] = static_cast<const std::int32_t*>(c.data.data)[i];
  } else {
    im.fail(n, "expected " + what + " of type int64 or int32, got " + std::string(dtype_name(c.dtype)));
  }
  return v;
}

double const_scalar(Importer& im, const OnnxNode& n, const ConstTensor& c, const std::string& what) {
  if (c.numel() != 1) im.fail(n, "expected " + what + " to hold one value, got " + std::to_string(c.numel()));
  switch (c.dtype) {
    case DType::f32: return *static_cast<const float*>(c.data.data);
    case DType::f64: return *static_cast<const double*>(c.data.data);
    case DType::i64: return static_cast<double>(*static_cast<const std::int64_t*>(c.data.data));
    case DType::i32: return *static_cast<const std::int32_t*>(c.data.data);
    default: im.fail(n, "expected " + what + " of type float, double, int64 or int32");
  }
}

std::vector<Value*> all_inputs(Importer& im, const OnnxNode& n) {
  std::vector<Value*> ins;
  ins.reserve(static_cast<std::size_t>(n.proto.input_size()));
  for (int i = 0; i < n.proto.input_size(); ++i) ins.push_back(im.input(n, i));
  return ins;
}

// docs/onnx.md is this table for readers.
const std::vector<OpRow>& op_table() {
  static const std::vector<OpRow> rows = [] {
    std::vector<OpRow> all;
    for (auto family : {math_rows, nn_rows, tensor_rows, shape_rows, logic_rows, rnn_rows}) {
      auto r = family();
      all.insert(all.end(), r.begin(), r.end());
    }
    return all;
  }();
  return rows;
}

}  // namespace kiln::onnx_import

namespace kiln {

std::unique_ptr<Graph> load_onnx_model(const std::string& path) {
  try {
    return onnx_import::Importer(path).run();
  } catch (const Error&) {
    throw;
  } catch (const std::exception& e) {  // the ONNX library and protobuf throw their own; callers see kiln::Error
    throw Error(path + ": error: " + e.what());
  }
}

std::vector<OnnxOpSupport> onnx_supported_ops() {
  std::vector<OnnxOpSupport> out;
  for (const auto& r : onnx_import::op_table()) out.push_back({std::string(r.op), r.min_opset, r.max_opset});
  return out;
}

}  // namespace kiln