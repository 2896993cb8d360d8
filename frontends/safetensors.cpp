#include "frontends/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <optional>
#include <tuple>

#include <nlohmann/json.hpp>

#include "graph/checked.hpp"

namespace kiln {

namespace {

using Json = nlohmann::json;

[[noreturn]] void bad(const std::string& file, const std::string& what) { throw Error(file + ": error: " + what); }

bool dtype_from_safetensors(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", DType::f32}, {"F16", DType::f16}, {"BF16", DType::bf16}, {"F64", DType::f64},     {"I64", DType::i64},
      {"I32", DType::i32}, {"I8", DType::i8},   {"U8", DType::u8},     {"BOOL", DType::boolean}};
  for (const auto& [name, t] : table)
    if (s == name) {
      *out = t;
      return true;
    }
  return false;
}

// Builds the header's DOM like nlohmann's own parser, but keeps what a plain json::parse loses: the
// position of a syntax error (an exception from json::parse carries none for some errors, e.g. a number
// overflow) and duplicate keys, which json::parse resolves silently (last wins). Returning false stops
// the parse at the first problem.
// clang-tidy 14 flags the implicit special members below, which only default-construct or destroy a null
// Json and empty containers (no throw short of running out of memory):
// NOLINTNEXTLINE(bugprone-exception-escape)
class HeaderSax final : public nlohmann::json_sax<Json> {
 public:
  Json root;
  std::string error;                    // why the parse stopped
  std::optional<std::size_t> error_at;  // for syntax errors: bytes read when it stopped

  bool null() override { return put(nullptr); }
  bool boolean(bool v) override { return put(v); }
  bool number_integer(number_integer_t v) override { return put(v); }
  bool number_unsigned(number_unsigned_t v) override { return put(v); }
  bool number_float(number_float_t v, const string_t&) override { return put(v); }
  bool string(string_t& v) override { return put(std::move(v)); }
  bool binary(binary_t& v) override { return put(Json::binary(std::move(v))); }  // CBOR etc. only, not JSON text
  bool start_object(std::size_t) override { return open(Json::object()); }
  bool start_array(std::size_t) override { return open(Json::array()); }
  bool end_object() override { return close(); }
  bool end_array() override { return close(); }

  bool key(string_t& k) override {
    Open& o = open_.back();
    if (o.value->contains(k)) {  // each earlier key of this object is in it already
      // RFC 8259 leaves duplicate names to the reader: yaml-cpp kept the first, Python's json and nlohmann
      // keep the last. A header that loads different tensors in Kiln and in PyTorch is corrupt or crafted.
      const std::string& top = open_.front().key;  // the tensor being read, when the header is an object
      if (open_.size() == 1 && root.is_object())
        error = "header names tensor '" + k + "' twice (each tensor must appear once)";
      else if (root.is_object())
        error = (top == "__metadata__" ? "\"__metadata__\"" : "tensor '" + top + "'") + ": key \"" + k +
                "\" appears twice (each key must appear once)";
      else error = "header has the key \"" + k + "\" twice in one object (each key must appear once)";
      return false;
    }
    o.key = std::move(k);
    return true;
  }

  bool parse_error(std::size_t position, const std::string&, const nlohmann::detail::exception& ex) override {
    // ex.what() is "[json.exception.parse_error.101] parse error at line 1, column 2: WHAT"; the caller
    // adds the position itself, so keep WHAT only.
    std::string what = ex.what();
    if (auto tag = what.find("] "); tag != std::string::npos) what.erase(0, tag + 2);
    if (what.rfind("parse error", 0) == 0)
      if (auto colon = what.find(": "); colon != std::string::npos) what.erase(0, colon + 2);
    error = what;
    error_at = position;
    return false;
  }

 private:
  struct Open {
    Json* value;
    std::string key;  // objects only: the key whose value comes next
  };

  // Stores `v` where the parse is (the root, the end of the open array, or under the open object's key).
  // The pointers in open_ stay valid: a container only grows while none of its children is open.
  Json* place(Json&& v) {
    if (open_.empty()) {
      root = std::move(v);
      return &root;
    }
    Json& parent = *open_.back().value;
    if (parent.is_array()) {
      parent.push_back(std::move(v));
      return &parent.back();
    }
    Json& slot = parent[open_.back().key];
    slot = std::move(v);
    return &slot;
  }
  bool put(Json&& v) {
    place(std::move(v));
    return true;
  }
  bool open(Json&& v) {
    open_.push_back(Open{place(std::move(v)), {}});
    return true;
  }
  bool close() {
    open_.pop_back();
    return true;
  }

  std::vector<Open> open_;
};

// Parses the header as strict JSON (no comments, no single quotes, nothing after the object), or fails
// naming where in the header (line and column, and as an offset in the file) and what was expected there.
Json parse_header(const std::string& file, const std::string& header) {
  HeaderSax sax;
  if (Json::sax_parse(header, &sax, Json::input_format_t::json, /*strict=*/true, /*ignore_comments=*/false))
    return std::move(sax.root);
  if (!sax.error_at) bad(file, sax.error);
  // error_at counts the bytes read, the offending one included; reading the end of the input counts as
  // one more, so `at` is header.size() when the header ends too early.
  const std::size_t at = std::min(*sax.error_at > 0 ? *sax.error_at - 1 : 0, header.size());
  std::size_t line = 1, column = 1;
  for (std::size_t i = 0; i < at; ++i) {
    if (header[i] == '\n') {
      ++line;
      column = 1;
    } else {
      ++column;
    }
  }
  bad(file, "header is not valid JSON (line " + std::to_string(line) + ", column " + std::to_string(column) +
                ", file offset " + std::to_string(8 + at) + "): " + sax.error);
}

struct TensorEntry {
  DType dtype = DType::f32;
  std::vector<std::int64_t> shape;
  std::uint64_t begin = 0, end = 0;  // byte range in the data section
};

// How a JSON value reads in a message: numbers, strings and literals as written, containers by kind.
std::string describe(const Json& v) {
  if (v.is_array()) return "a list";
  if (v.is_object()) return "an object";
  return v.dump();
}

// Checks one tensor's {dtype, shape, data_offsets} against itself and the data section.
TensorEntry read_entry(const std::string& file, const std::string& key, const Json& t, std::size_t data_size) {
  auto what = [&](const std::string& msg) { bad(file, "tensor '" + key + "': " + msg); };
  if (!t.is_object() || !t.contains("dtype") || !t.contains("shape") || !t.contains("data_offsets"))
    what(R"(expected an object with "dtype", "shape" and "data_offsets")");
  TensorEntry e;
  const Json& dt = t["dtype"];
  if (!dt.is_string()) what("\"dtype\" must be a string");
  const std::string dtype = dt.get<std::string>();
  if (!dtype_from_safetensors(dtype, &e.dtype))
    what("unsupported dtype \"" + dtype + "\" (expected F32, F16, BF16, F64, I64, I32, I8, U8 or BOOL)");
  if (!t["shape"].is_array()) what("\"shape\" must be a list of dims");
  for (const Json& d : t["shape"]) {
    // nlohmann reads a non-negative integer as unsigned, a negative one as signed, anything with a
    // fraction or exponent as float.
    if (!d.is_number_unsigned()) what("\"shape\" must hold non-negative integers, got " + describe(d));
    const auto v = d.get<std::uint64_t>();
    if (v > static_cast<std::uint64_t>(checked::kMaxSize))
      what("\"shape\" dim " + std::to_string(v) + " is too large (at most " + std::to_string(checked::kMaxSize) + ")");
    e.shape.push_back(static_cast<std::int64_t>(v));
  }
  // Checked: an unchecked numel * dtype_size wrapped to 0 for F32 [2^58, 16], which then matched
  // data_offsets [0, 0] and sent kernels far outside the file.
  const auto size = checked::tensor_bytes(e.shape, dtype_size(e.dtype));
  if (!size)
    what("shape " + shape_to_string(e.shape) + " of " + dtype + " is too large: its size in bytes exceeds " +
         std::to_string(checked::kMaxSize));
  const Json& off = t["data_offsets"];
  if (!off.is_array() || off.size() != 2 || !off[0].is_number_unsigned() || !off[1].is_number_unsigned())
    what("\"data_offsets\" must be [begin, end] byte offsets");
  e.begin = off[0].get<std::uint64_t>();
  e.end = off[1].get<std::uint64_t>();
  if (e.begin > e.end || e.end > data_size)
    what("data_offsets [" + std::to_string(e.begin) + ", " + std::to_string(e.end) +
         "] lie outside the data section of " + std::to_string(data_size) + " bytes (truncated file?)");
  const auto want = static_cast<std::uint64_t>(*size);
  if (e.end - e.begin != want)
    what("shape " + shape_to_string(e.shape) + " of " + dtype + " needs " + std::to_string(want) +
         " bytes, data_offsets give " + std::to_string(e.end - e.begin));
  return e;
}

}  // namespace

std::shared_ptr<WeightsFile> WeightsFile::open(const std::string& path) {
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) bad(path, std::string("cannot open weights file: ") + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    bad(path, "not a regular file");
  }
  auto size = static_cast<std::size_t>(st.st_size);
  if (size == 0) {
    ::close(fd);
    bad(path, "file is empty; expected a safetensors file (8-byte header length, JSON header, data)");
  }
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) bad(path, std::string("cannot map weights file: ") + std::strerror(errno));
  std::shared_ptr<const void> owner(map, [size](const void* p) { munmap(const_cast<void*>(p), size); });
  return from_memory(path, map, size, owner);
}

std::shared_ptr<WeightsFile> WeightsFile::from_memory(const std::string& name, const void* bytes, std::size_t size,
                                                      const std::shared_ptr<const void>& owner) {
  auto file = std::make_shared<WeightsFile>();
  file->path_ = name;
  const auto* base = static_cast<const unsigned char*>(bytes);
  if (size < 8)
    bad(name, "file is " + std::to_string(size) + " bytes, too short for a safetensors header (8-byte length prefix)");
  std::uint64_t header_len = 0;
  for (int i = 7; i >= 0; --i) header_len = (header_len << 8) | base[i];
  if (header_len > size - 8)
    bad(name, "header length " + std::to_string(header_len) + " exceeds the " + std::to_string(size - 8) +
                  " bytes that follow it (truncated or not a safetensors file)");
  if (header_len < 2) bad(name, "header is " + std::to_string(header_len) + " bytes; expected a JSON object");
  std::string header(reinterpret_cast<const char*>(base + 8), header_len);
  if (header.find('\0') != std::string::npos) bad(name, "header contains a NUL byte (corrupt file)");
  const unsigned char* data = base + 8 + header_len;
  const std::size_t data_size = size - 8 - header_len;

  const Json root = parse_header(name, header);
  if (!root.is_object()) bad(name, "header is not a JSON object");
  std::vector<std::tuple<std::uint64_t, std::uint64_t, std::string>> ranges;  // begin, end, tensor
  for (const auto& [key, entry] : root.items()) {
    if (key == "__metadata__") continue;
    const TensorEntry t = read_entry(name, key, entry, data_size);
    ranges.emplace_back(t.begin, t.end, key);
    WeightTensor w;
    w.dtype = t.dtype;
    w.shape = t.shape;
    const unsigned char* p = data + t.begin;
    const auto nbytes = static_cast<std::size_t>(t.end - t.begin);
    if (reinterpret_cast<std::uintptr_t>(p) % dtype_size(w.dtype) != 0) {
      // Misaligned for its type: copy once into an aligned buffer.
      void* copy = std::aligned_alloc(64, std::max<std::size_t>((nbytes + 63) / 64 * 64, 64));
      if (!copy) bad(name, "tensor '" + key + "': out of memory");
      std::memcpy(copy, p, nbytes);
      w.data = ConstData{copy, nbytes,
                         std::shared_ptr<const void>(copy, [](const void* q) { std::free(const_cast<void*>(q)); })};
    } else {
      w.data = ConstData{p, nbytes, owner};
    }
    file->tensors_.emplace(key, std::move(w));
  }
  std::sort(ranges.begin(), ranges.end());
  for (std::size_t i = 1; i < ranges.size(); ++i)
    if (std::get<0>(ranges[i]) < std::get<1>(ranges[i - 1]))
      bad(name, "tensors '" + std::get<2>(ranges[i - 1]) + "' and '" + std::get<2>(ranges[i]) +
                    "' overlap in the data section (corrupt header)");
  return file;
}

const WeightTensor* WeightsFile::find(const std::string& name) const {
  auto it = tensors_.find(name);
  return it == tensors_.end() ? nullptr : &it->second;
}

namespace {
const char* safetensors_dtype(DType t) {
  switch (t) {
    case DType::f32: return "F32";
    case DType::f16: return "F16";
    case DType::bf16: return "BF16";
    case DType::f64: return "F64";
    case DType::i64: return "I64";
    case DType::i32: return "I32";
    case DType::i8: return "I8";
    case DType::u8: return "U8";
    case DType::boolean: return "BOOL";
  }
  fail("internal: dtype without a safetensors name");
}
}  // namespace

std::string safetensors_image(std::vector<NamedTensor> tensors) {
  std::sort(tensors.begin(), tensors.end(), [](const NamedTensor& a, const NamedTensor& b) { return a.name < b.name; });
  constexpr std::size_t kAlign = 64;
  Json header = Json::object();
  std::size_t offset = 0;
  std::vector<std::size_t> begin;
  for (std::size_t i = 0; i < tensors.size(); ++i) {
    const NamedTensor& t = tensors[i];
    if (i > 0 && t.name == tensors[i - 1].name) fail("safetensors: tensor '" + t.name + "' is named twice");
    auto need = checked::tensor_bytes(t.shape, dtype_size(t.dtype));
    if (!need || static_cast<std::size_t>(*need) != t.bytes)
      fail("safetensors: tensor '" + t.name + "' holds " + std::to_string(t.bytes) + " bytes, its shape " +
           shape_str(concrete_shape(t.shape)) + " of " + std::string(dtype_name(t.dtype)) + " needs " +
           (need ? std::to_string(*need) : "too many"));
    offset = (offset + kAlign - 1) / kAlign * kAlign;
    begin.push_back(offset);
    header[t.name] = {
        {"dtype", safetensors_dtype(t.dtype)}, {"shape", t.shape}, {"data_offsets", {offset, offset + t.bytes}}};
    offset += t.bytes;
  }
  std::string text = header.dump();
  // The data starts 8 + header bytes in: pad the header with spaces (valid JSON) so that it starts aligned.
  text.append((kAlign - (8 + text.size()) % kAlign) % kAlign, ' ');
  std::string out(8 + text.size() + offset, '\0');
  const std::uint64_t n = text.size();
  for (int i = 0; i < 8; ++i) out[static_cast<std::size_t>(i)] = static_cast<char>((n >> (8 * i)) & 0xff);
  std::memcpy(out.data() + 8, text.data(), text.size());
  for (std::size_t i = 0; i < tensors.size(); ++i)
    if (tensors[i].bytes) std::memcpy(out.data() + 8 + text.size() + begin[i], tensors[i].data, tensors[i].bytes);
  return out;
}

}  // namespace kiln
