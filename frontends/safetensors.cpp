#include "frontends/safetensors.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <tuple>

#include <yaml-cpp/yaml.h>

#include "graph/checked.hpp"

namespace kiln {

namespace {

[[noreturn]] void bad(const std::string& file, const std::string& what) { throw Error(file + ": error: " + what); }

bool dtype_from_safetensors(const std::string& s, DType* out) {
  static const std::pair<const char*, DType> table[] = {
      {"F32", DType::f32}, {"F16", DType::f16}, {"BF16", DType::bf16}, {"F64", DType::f64}, {"I64", DType::i64},
      {"I32", DType::i32}, {"I8", DType::i8},   {"U8", DType::u8},     {"BOOL", DType::boolean}};
  for (const auto& [name, t] : table)
    if (s == name) {
      *out = t;
      return true;
    }
  return false;
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
  return from_memory(path, map, size, std::move(owner));
}

std::shared_ptr<WeightsFile> WeightsFile::from_memory(const std::string& name, const void* bytes, std::size_t size,
                                                      std::shared_ptr<const void> owner) {
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

  YAML::Node root;
  try {
    root.reset(YAML::Load(header));  // reset rebinds; operator= on a bound node assigns into it
  } catch (const YAML::Exception& e) {
    bad(name, "header is not valid JSON (line " + std::to_string(e.mark.line + 1) + ", column " +
                  std::to_string(e.mark.column + 1) + "): " + e.msg);
  }
  if (!root.IsMap()) bad(name, "header is not a JSON object");

  std::vector<std::tuple<std::uint64_t, std::uint64_t, std::string>> ranges;  // begin, end, tensor
  for (const auto& kv : root) {
    if (!kv.first.IsScalar()) bad(name, "header keys must be tensor names (strings)");
    const std::string key = kv.first.Scalar();
    if (key == "__metadata__") continue;
    const YAML::Node& t = kv.second;
    auto what = [&](const std::string& msg) { bad(name, "tensor '" + key + "': " + msg); };
    if (!t.IsMap() || !t["dtype"] || !t["shape"] || !t["data_offsets"])
      what("expected an object with \"dtype\", \"shape\" and \"data_offsets\"");
    WeightTensor w;
    std::string dtype;
    try {
      dtype = t["dtype"].as<std::string>();
    } catch (const YAML::Exception&) {
      what("\"dtype\" must be a string");
    }
    if (!dtype_from_safetensors(dtype, &w.dtype))
      what("unsupported dtype \"" + dtype + "\" (expected F32, F16, BF16, F64, I64, I32, I8, U8 or BOOL)");
    if (!t["shape"].IsSequence()) what("\"shape\" must be a list of dims");
    for (const auto& d : t["shape"]) {
      std::int64_t v = -1;
      try {
        v = d.as<std::int64_t>();
      } catch (const YAML::Exception&) {
      }
      if (v < 0)
        what("\"shape\" must hold non-negative integers, got " +
             (d.IsScalar() ? d.Scalar() : std::string(d.IsSequence() ? "a list" : "an object")));
      w.shape.push_back(v);
    }
    // Checked: an unchecked numel * dtype_size wrapped to 0 for F32 [2^58, 16], which then matched
    // data_offsets [0, 0] and sent kernels far outside the file.
    const auto size = checked::tensor_bytes(w.shape, dtype_size(w.dtype));
    if (!size)
      what("shape " + shape_to_string(w.shape) + " of " + dtype + " is too large: its size in bytes exceeds " +
           std::to_string(checked::kMaxSize));
    const YAML::Node& off = t["data_offsets"];
    std::uint64_t begin = 0, end = 0;
    try {
      if (!off.IsSequence() || off.size() != 2) throw YAML::Exception(YAML::Mark(), "");
      begin = off[0].as<std::uint64_t>();
      end = off[1].as<std::uint64_t>();
    } catch (const YAML::Exception&) {
      what("\"data_offsets\" must be [begin, end] byte offsets");
    }
    if (begin > end || end > data_size)
      what("data_offsets [" + std::to_string(begin) + ", " + std::to_string(end) + "] lie outside the data section of " +
           std::to_string(data_size) + " bytes (truncated file?)");
    const auto want = static_cast<std::uint64_t>(*size);
    if (end - begin != want)
      what("shape " + shape_to_string(w.shape) + " of " + dtype + " needs " + std::to_string(want) +
           " bytes, data_offsets give " + std::to_string(end - begin));
    ranges.emplace_back(begin, end, key);
    const unsigned char* p = data + begin;
    if (reinterpret_cast<std::uintptr_t>(p) % dtype_size(w.dtype) != 0) {
      // Misaligned for its type: copy once into an aligned buffer.
      std::size_t bytes = static_cast<std::size_t>(want);
      void* copy = std::aligned_alloc(64, std::max<std::size_t>((bytes + 63) / 64 * 64, 64));
      if (!copy) what("out of memory");
      std::memcpy(copy, p, bytes);
      w.data = ConstData{copy, bytes, std::shared_ptr<const void>(copy, [](const void* q) { std::free(const_cast<void*>(q)); })};
    } else {
      w.data = ConstData{p, static_cast<std::size_t>(want), owner};
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

}  // namespace kiln
