#include "runtime/npy.hpp"

#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "graph/checked.hpp"
#include "kiln/error.hpp"

namespace kiln {

namespace {

[[noreturn]] void bad(const std::string& name, const std::string& what) { throw Error(name + ": error: " + what); }

// The value of `'key': value` in the header dict, as raw text.
std::string field(const std::string& header, const std::string& key, const std::string& name) {
  std::size_t k = header.find("'" + key + "'");
  if (k == std::string::npos) bad(name, "npy header has no '" + key + "' field");
  std::size_t colon = header.find(':', k);
  if (colon == std::string::npos) bad(name, "npy header is malformed near '" + key + "'");
  std::size_t start = header.find_first_not_of(' ', colon + 1);
  if (start == std::string::npos) bad(name, "npy header is malformed near '" + key + "'");
  std::size_t end = start;
  if (header[start] == '(') end = header.find(')', start) + 1;
  else end = header.find_first_of(",}", start);
  if (end == std::string::npos || end == 0) bad(name, "npy header is malformed near '" + key + "'");
  return header.substr(start, end - start);
}

}  // namespace

Tensor parse_npy(const std::string& bytes, const std::string& name) {
  if (bytes.size() < 10 || bytes.compare(0, 6, "\x93NUMPY") != 0)
    bad(name, "not a .npy file (missing \\x93NUMPY magic)");
  const auto major = static_cast<unsigned char>(bytes[6]);
  std::size_t header_len = 0, header_at = 0;
  if (major == 1) {
    header_len = static_cast<unsigned char>(bytes[8]) | (static_cast<unsigned char>(bytes[9]) << 8);
    header_at = 10;
  } else if (major == 2 || major == 3) {
    if (bytes.size() < 12) bad(name, "truncated .npy header");
    for (int i = 3; i >= 0; --i) header_len = (header_len << 8) | static_cast<unsigned char>(bytes[8 + i]);
    header_at = 12;
  } else {
    bad(name, "unsupported .npy format version " + std::to_string(major));
  }
  if (header_at + header_len > bytes.size()) bad(name, "truncated .npy header");
  std::string header = bytes.substr(header_at, header_len);
  std::string descr = field(header, "descr", name);
  std::string order = field(header, "fortran_order", name);
  std::string shape_text = field(header, "shape", name);
  if (order != "False") bad(name, "Fortran-ordered arrays are not supported (save with np.ascontiguousarray)");
  DType dtype;
  if (descr == "'<f4'") dtype = DType::f32;
  else if (descr == "'<f8'") dtype = DType::f64;
  else if (descr == "'<i8'") dtype = DType::i64;
  else if (descr == "'<i4'") dtype = DType::i32;
  else if (descr == "'|i1'") dtype = DType::i8;
  else if (descr == "'|u1'") dtype = DType::u8;
  else if (descr == "'|b1'") dtype = DType::boolean;
  else bad(name, "unsupported npy dtype " + descr + " (expected <f4, <f8, <i8, <i4, |i1, |u1 or |b1)");
  if (shape_text.size() < 2 || shape_text.front() != '(' || shape_text.back() != ')')
    bad(name, "npy header has an invalid shape " + shape_text + " (expected a tuple)");
  std::vector<std::int64_t> shape;
  std::string inner = shape_text.substr(1, shape_text.size() - 2);
  std::stringstream ss(inner);
  std::string item;
  while (std::getline(ss, item, ',')) {
    std::size_t a = item.find_first_not_of(' ');
    if (a == std::string::npos) continue;
    try {
      std::size_t used = 0;
      long long v = std::stoll(item.substr(a), &used);
      if (v < 0) throw std::invalid_argument("negative");
      shape.push_back(v);
    } catch (const std::exception&) {
      bad(name, "npy header has an invalid shape " + shape_text);
    }
  }
  // Check the data size before allocating: a corrupt shape must not trigger a huge allocation.
  const auto size = checked::tensor_bytes(shape, dtype_size(dtype));
  if (!size) bad(name, "npy header has a shape too large to load " + shape_text);
  const auto want = static_cast<std::uint64_t>(*size);
  std::size_t data_at = header_at + header_len;
  if (bytes.size() - data_at != want)
    bad(name, "expected " + std::to_string(want) + " data bytes for shape " + shape_to_string(shape) + ", found " +
                  std::to_string(bytes.size() - data_at));
  Tensor t = Tensor::empty(dtype, shape);
  std::memcpy(t.data(), bytes.data() + data_at, t.bytes());
  return t;
}

Tensor read_npy(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) bad(path, std::string("cannot open: ") + std::strerror(errno));
  std::error_code ec;
  if (std::filesystem::is_directory(path, ec)) bad(path, "is a folder, not a .npy file");
  std::stringstream ss;
  ss << in.rdbuf();
  return parse_npy(ss.str(), path);
}

void write_npy(const std::string& path, const Tensor& t) {
  const char* descr = nullptr;
  switch (t.dtype()) {
    case DType::f32: descr = "<f4"; break;
    case DType::f64: descr = "<f8"; break;
    case DType::i64: descr = "<i8"; break;
    case DType::i32: descr = "<i4"; break;
    case DType::i8: descr = "|i1"; break;
    case DType::u8: descr = "|u1"; break;
    case DType::boolean: descr = "|b1"; break;
    default: throw Error(path + ": error: cannot write dtype " + std::string(dtype_name(t.dtype())) + " as .npy");
  }
  std::string shape = "(";
  for (auto d : t.shape()) shape += std::to_string(d) + ",";
  if (t.shape().size() > 1) shape.pop_back();
  shape += ")";
  std::string header = std::string("{'descr': '") + descr + "', 'fortran_order': False, 'shape': " + shape + ", }";
  std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::ofstream out(path, std::ios::binary);
  if (!out) throw Error(path + ": error: cannot write: " + std::strerror(errno));
  out.write("\x93NUMPY\x01\x00", 8);
  char len[2] = {static_cast<char>(header.size() & 0xff), static_cast<char>(header.size() >> 8)};
  out.write(len, 2);
  out << header;
  out.write(static_cast<const char*>(t.data()), static_cast<std::streamsize>(t.bytes()));
  if (!out) throw Error(path + ": error: write failed");
}

}  // namespace kiln
