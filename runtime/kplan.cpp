#include "runtime/kplan.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <csignal>
#include <cstdlib>
#include <cstring>
#include <set>

#include <oneapi/dnnl/dnnl.hpp>
#include <tbb/parallel_for.h>

#include "frontends/yaml/yaml_frontend.hpp"
#include "graph/checked.hpp"
#include "ops/isa.hpp"
#include "ops/gemm.hpp"
#include "ops/op.hpp"
#include "runtime/model_impl.hpp"

namespace kiln {

namespace {

constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'P', 'L', 'A', 'N'};
constexpr std::size_t kAlign = 64;
constexpr std::size_t kBlock = std::size_t{1} << 20;  // checksum block

// Header fields (little-endian), kKplanHeaderBytes in all, the rest zero:
//   0 magic "KILNPLAN"   8 u32 version   12 u32 header bytes   16 u64 file bytes   24 u64 checksum
//  32 u64 graph offset  40 u64 graph bytes  48 u64 data offset  56 u64 data bytes  64 u32 isa
constexpr std::size_t kFileBytesOffset = 16;
constexpr std::size_t kGraphOffset = 32;

std::size_t align_up(std::size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

void put_le(unsigned char* p, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint64_t get_le(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

// ---- checksum ----

constexpr std::uint64_t kMulA = 0x9e3779b97f4a7c15ULL;  // odd constants with well-mixed bits
constexpr std::uint64_t kMulB = 0xd6e8feb86659fd93ULL;

std::uint64_t mix(std::uint64_t h) {
  h ^= h >> 32;
  h *= kMulB;
  h ^= h >> 29;
  h *= kMulA;
  return h ^ (h >> 32);
}

// Fletcher-style sums over 64-bit words in eight lanes: `a` sums the words, `b` sums the running `a`,
// so that a changed, dropped or swapped word changes the result. Additions only, so the loop runs at
// memory speed (the compiler vectorizes the lanes); `mix` then spreads the sums over all bits.
std::uint64_t hash_block(const unsigned char* p, std::size_t n, std::uint64_t seed) {
  constexpr int kLanes = 8;
  std::uint64_t a[kLanes], b[kLanes];
  for (int k = 0; k < kLanes; ++k) {
    a[k] = seed + static_cast<std::uint64_t>(k);
    b[k] = 0;
  }
  std::size_t i = 0;
  for (; i + 8 * kLanes <= n; i += 8 * kLanes) {
    std::uint64_t w[kLanes];
    std::memcpy(w, p + i, sizeof w);
    for (int k = 0; k < kLanes; ++k) {
      a[k] += w[k];
      b[k] += a[k];
    }
  }
  std::uint64_t h = seed ^ kMulA;
  for (int k = 0; k < kLanes; ++k) h = mix(h ^ a[k]) + mix(b[k] + static_cast<std::uint64_t>(k));
  for (; i < n; ++i) h = (h ^ p[i]) * kMulA;
  return mix(h ^ n);
}

}  // namespace

std::uint64_t kplan_checksum(const void* data, std::size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  const std::size_t head = std::min(size, kKplanHeaderBytes);
  unsigned char header[kKplanHeaderBytes] = {};
  std::memcpy(header, p, head);
  if (head >= kKplanChecksumOffset + 8) std::memset(header + kKplanChecksumOffset, 0, 8);
  std::uint64_t h = hash_block(header, head, 0);
  const std::size_t body = size - head;
  const std::size_t blocks = (body + kBlock - 1) / kBlock;
  std::vector<std::uint64_t> parts(blocks);
  tbb::parallel_for(std::size_t{0}, blocks, [&](std::size_t b) {
    std::size_t off = head + b * kBlock;
    parts[b] = hash_block(p + off, std::min(kBlock, size - off), b + 1);
  });
  for (std::uint64_t part : parts) h = mix(h ^ part) + kMulA;
  return mix(h ^ size);
}

// ---- dims ----

std::string DimRange::str() const { return fixed() ? std::to_string(min) : std::to_string(min) + ".." + std::to_string(max); }

DimRanges parse_shape_args(const std::vector<std::string>& args) {
  DimRanges out;
  auto number = [](const std::string& s, std::int64_t* v) {
    if (s.empty() || s.size() > 12 || s.find_first_not_of("0123456789") != std::string::npos) return false;
    *v = std::stoll(s);
    return *v > 0;
  };
  for (const auto& a : args) {
    auto bad = [&](const std::string& why) { fail("--shape '" + a + "': " + why); };
    auto eq = a.find('=');
    if (eq == std::string::npos || eq == 0) bad("expected NAME=DIM or NAME=MIN..MAX (e.g. seq=128 or seq=1..512)");
    std::string name = a.substr(0, eq), value = a.substr(eq + 1);
    DimRange r;
    auto dots = value.find("..");
    if (dots == std::string::npos) {
      if (!number(value, &r.min)) bad("expected a positive integer or MIN..MAX after '='");
      r.max = r.min;
    } else {
      if (!number(value.substr(0, dots), &r.min) || !number(value.substr(dots + 2), &r.max))
        bad("expected positive integers in MIN..MAX");
      if (r.min > r.max) bad("the range is empty (MIN > MAX)");
    }
    if (!out.emplace(name, r).second) bad("dim '" + name + "' is given twice");
  }
  return out;
}

// ---- ISA ----

namespace {
const std::pair<const char*, dnnl_cpu_isa_t> kIsas[] = {
    {"sse41", dnnl_cpu_isa_sse41},
    {"avx", dnnl_cpu_isa_avx},
    {"avx2", dnnl_cpu_isa_avx2},
    {"avx2_vnni", dnnl_cpu_isa_avx2_vnni},
    {"avx512_mic", dnnl_cpu_isa_avx512_mic},
    {"avx512_mic_4ops", dnnl_cpu_isa_avx512_mic_4ops},
    {"avx512_core", dnnl_cpu_isa_avx512_core},
    {"avx512_core_vnni", dnnl_cpu_isa_avx512_core_vnni},
    {"avx512_core_bf16", dnnl_cpu_isa_avx512_core_bf16},
    {"avx512_core_amx", dnnl_cpu_isa_avx512_core_amx},
};
}  // namespace

std::uint32_t host_isa() {
  isa::apply();
  return static_cast<std::uint32_t>(dnnl::get_effective_cpu_isa());
}

std::string isa_name(std::uint32_t isa) {
  for (const auto& [name, bits] : kIsas)
    if (static_cast<std::uint32_t>(bits) == isa) return name;
  char buf[32];
  std::snprintf(buf, sizeof buf, "isa 0x%x", isa);
  return buf;
}

bool parse_isa(const std::string& name, std::uint32_t* out) {
  for (const auto& [n, bits] : kIsas)
    if (name == n) {
      *out = static_cast<std::uint32_t>(bits);
      return true;
    }
  return false;
}

// ---- serialization of the graph section ----

namespace {

class Writer {
 public:
  std::vector<unsigned char> bytes;
  void u8(std::uint8_t v) { bytes.push_back(v); }
  void u32(std::uint32_t v) { raw(v, 4); }
  void u64(std::uint64_t v) { raw(v, 8); }
  void i64(std::int64_t v) { raw(static_cast<std::uint64_t>(v), 8); }
  void f64(double v) {
    std::uint64_t u;
    std::memcpy(&u, &v, 8);
    raw(u, 8);
  }
  void str(const std::string& s) {
    u32(static_cast<std::uint32_t>(s.size()));
    bytes.insert(bytes.end(), s.begin(), s.end());
  }

 private:
  void raw(std::uint64_t v, int n) {
    for (int i = 0; i < n; ++i) bytes.push_back(static_cast<unsigned char>(v >> (8 * i)));
  }
};

// Every read is bounds-checked: a file that passed the checksum but was written by a buggy or hostile
// writer still gives an error, never a read past the section.
class Reader {
 public:
  Reader(const std::string& file, const unsigned char* p, std::size_t n) : file_(file), p_(p), n_(n) {}
  [[noreturn]] void corrupt(const std::string& what) const {
    throw Error(file_ + ": error: corrupt plan file: " + what + " (at byte " + std::to_string(at_) + " of the graph section)");
  }
  std::uint8_t u8() { return static_cast<std::uint8_t>(raw(1)); }
  std::uint32_t u32() { return static_cast<std::uint32_t>(raw(4)); }
  std::uint64_t u64() { return raw(8); }
  std::int64_t i64() { return static_cast<std::int64_t>(raw(8)); }
  double f64() {
    std::uint64_t u = raw(8);
    double d;
    std::memcpy(&d, &u, 8);
    return d;
  }
  std::string str() {
    std::size_t len = u32();
    need(len);
    std::string s(reinterpret_cast<const char*>(p_ + at_), len);
    at_ += len;
    return s;
  }
  /// A count of items, each at least `min_item` bytes, that must fit in what is left.
  std::size_t count(std::size_t min_item = 1) {
    std::size_t c = u32();
    if (c > (n_ - at_) / std::max<std::size_t>(min_item, 1)) corrupt("count " + std::to_string(c) + " exceeds the section");
    return c;
  }
  bool done() const { return at_ == n_; }

 private:
  void need(std::size_t k) const {
    if (k > n_ - at_) corrupt("unexpected end of section");
  }
  std::uint64_t raw(int k) {
    need(static_cast<std::size_t>(k));
    std::uint64_t v = get_le(p_ + at_, k);
    at_ += static_cast<std::size_t>(k);
    return v;
  }
  std::string file_;
  const unsigned char* p_;
  std::size_t n_;
  std::size_t at_ = 0;
};

void write_attr(Writer& w, const Attr& a) {
  w.u8(static_cast<std::uint8_t>(attr_type_of(a)));
  switch (attr_type_of(a)) {
    case AttrType::Int: w.i64(std::get<std::int64_t>(a)); break;
    case AttrType::Float: w.f64(std::get<double>(a)); break;
    case AttrType::String: w.str(std::get<std::string>(a)); break;
    case AttrType::Ints: {
      const auto& v = std::get<std::vector<std::int64_t>>(a);
      w.u32(static_cast<std::uint32_t>(v.size()));
      for (auto x : v) w.i64(x);
      break;
    }
    case AttrType::Floats: {
      const auto& v = std::get<std::vector<double>>(a);
      w.u32(static_cast<std::uint32_t>(v.size()));
      for (auto x : v) w.f64(x);
      break;
    }
    case AttrType::Bool: w.u8(std::get<bool>(a) ? 1 : 0); break;
  }
}

Attr read_attr(Reader& r) {
  std::uint8_t t = r.u8();
  switch (static_cast<AttrType>(t)) {
    case AttrType::Int: return r.i64();
    case AttrType::Float: return r.f64();
    case AttrType::String: return r.str();
    case AttrType::Ints: {
      std::vector<std::int64_t> v(r.count(8));
      for (auto& x : v) x = r.i64();
      return v;
    }
    case AttrType::Floats: {
      std::vector<double> v(r.count(8));
      for (auto& x : v) x = r.f64();
      return v;
    }
    case AttrType::Bool: return r.u8() != 0;
  }
  r.corrupt("unknown attribute type " + std::to_string(t));
}

void write_type(Writer& w, const TensorType& t) {
  w.u8(static_cast<std::uint8_t>(t.dtype));
  w.u32(static_cast<std::uint32_t>(t.shape.size()));
  for (const Dim& d : t.shape) {
    w.i64(d.value);
    w.str(d.sym);
  }
  w.str(t.layout);
}

// The type of value `name`. Concrete dims must be non-negative and their element count and byte size
// must fit in 64 bits (checked: a product that wraps could otherwise match a short or empty blob).
TensorType read_type(Reader& r, const std::string& name) {
  TensorType t;
  std::uint8_t dt = r.u8();
  if (dt > static_cast<std::uint8_t>(DType::boolean)) r.corrupt("unknown dtype " + std::to_string(dt));
  t.dtype = static_cast<DType>(dt);
  std::size_t rank = r.count(12);
  bool negative = false;
  std::vector<std::int64_t> dims;
  for (std::size_t i = 0; i < rank; ++i) {
    Dim d;
    d.value = r.i64();
    d.sym = r.str();
    if (d.concrete()) {
      negative = negative || d.value < 0;
      dims.push_back(d.value);
    }
    t.shape.push_back(std::move(d));
  }
  t.layout = r.str();
  if (negative) r.corrupt("value '" + name + "' has type " + t.str() + ": dims must be non-negative");
  if (!checked::tensor_bytes(dims, dtype_size(t.dtype)))
    r.corrupt("value '" + name + "' has type " + t.str() + ", too large: its size in bytes exceeds " +
              std::to_string(checked::kMaxSize));
  return t;
}

void write_loc(Writer& w, const SourceLoc& loc) {
  w.str(loc.file);
  w.u32(static_cast<std::uint32_t>(loc.line));
  w.u32(static_cast<std::uint32_t>(loc.column));
}

SourceLoc read_loc(Reader& r) {
  SourceLoc loc;
  loc.file = r.str();
  loc.line = static_cast<int>(r.u32());
  loc.column = static_cast<int>(r.u32());
  return loc;
}

}  // namespace

namespace detail {

std::vector<unsigned char> serialize_kplan(const ModelImpl& model, const KplanInfo& info) {
  const Graph& g = *model.graph;
  // The values the graph refers to, in the graph's own order (so the IR prints the same after loading);
  // constants' bytes deduplicated by address.
  std::set<const Value*> used(g.inputs.begin(), g.inputs.end());
  used.insert(g.outputs.begin(), g.outputs.end());
  for (const auto& n : g.nodes()) {
    used.insert(n->inputs.begin(), n->inputs.end());
    used.insert(n->outputs.begin(), n->outputs.end());
  }
  std::vector<const Value*> values;
  std::map<const Value*, std::uint32_t> index;
  for (const auto& v : g.values())
    if (used.count(v.get())) {
      index.emplace(v.get(), static_cast<std::uint32_t>(values.size()));
      values.push_back(v.get());
    }

  std::vector<std::pair<const void*, std::size_t>> blobs;  // data section, each 64-aligned
  std::map<std::pair<const void*, std::size_t>, std::uint64_t> blob_offset;
  std::uint64_t data_bytes = 0;
  std::uint32_t constants = 0;

  Writer w;
  // Metadata.
  w.str(g.name);
  w.str(info.source);
  w.u32(static_cast<std::uint32_t>(info.opt_level));
  const DimRanges& dims = info.dims.empty() ? model.dim_ranges : info.dims;
  w.u32(static_cast<std::uint32_t>(dims.size()));
  for (const auto& [name, r] : dims) {
    w.str(name);
    w.i64(r.min);
    w.i64(r.max);
  }
  w.u32(static_cast<std::uint32_t>(info.plans.size()));
  for (const auto& p : info.plans) {
    w.u32(static_cast<std::uint32_t>(p.input_dims.size()));
    for (const auto& dims : p.input_dims) {
      w.u32(static_cast<std::uint32_t>(dims.size()));
      for (auto d : dims) w.i64(d);
    }
    w.u64(p.arena_bytes);
    w.u32(p.kernels);
  }
  // Values.
  w.u32(static_cast<std::uint32_t>(values.size()));
  for (const Value* v : values) {
    w.str(v->name);
    write_type(w, v->type);
    w.u8(v->is_constant() ? 1 : 0);
    if (!v->is_constant()) continue;
    auto key = std::make_pair(v->constant.data, v->constant.bytes);
    auto it = blob_offset.find(key);
    if (it == blob_offset.end()) {
      it = blob_offset.emplace(key, data_bytes).first;
      blobs.push_back(key);
      data_bytes += align_up(v->constant.bytes);
      ++constants;
    }
    w.u64(it->second);
    w.u64(v->constant.bytes);
  }
  auto ids = [&](const std::vector<Value*>& vs) {
    w.u32(static_cast<std::uint32_t>(vs.size()));
    for (const Value* v : vs) w.u32(v ? index.at(v) : 0xffffffffu);
  };
  ids(g.inputs);
  ids(g.outputs);
  // Nodes, through their schema-checked attributes only: no per-op code.
  w.u32(static_cast<std::uint32_t>(g.nodes().size()));
  for (const auto& n : g.nodes()) {
    w.str(n->op);
    w.str(n->name);
    write_loc(w, n->loc);
    ids(n->inputs);
    ids(n->outputs);
    w.u32(static_cast<std::uint32_t>(n->attrs.size()));
    for (const auto& [key, value] : n->attrs) {
      w.str(key);
      write_attr(w, value);
    }
  }
  const std::size_t graph_offset = kKplanHeaderBytes;
  const std::size_t graph_bytes = w.bytes.size();
  const std::size_t data_offset = align_up(graph_offset + graph_bytes);
  const std::size_t total = data_offset + data_bytes;
  std::vector<unsigned char> file(total, 0);
  unsigned char* h = file.data();
  std::memcpy(h, kMagic, 8);
  put_le(h + kKplanVersionOffset, kKplanVersion, 4);
  put_le(h + 12, kKplanHeaderBytes, 4);
  put_le(h + kFileBytesOffset, total, 8);
  put_le(h + kGraphOffset, graph_offset, 8);
  put_le(h + 40, graph_bytes, 8);
  put_le(h + 48, data_offset, 8);
  put_le(h + 56, data_bytes, 8);
  put_le(h + kKplanIsaOffset, info.isa, 4);
  std::memcpy(h + graph_offset, w.bytes.data(), graph_bytes);
  for (const auto& blob : blobs)
    if (blob.second) std::memcpy(h + data_offset + blob_offset.at(blob), blob.first, blob.second);
  put_le(h + kKplanChecksumOffset, kplan_checksum(file.data(), file.size()), 8);
  return file;
}

std::shared_ptr<ModelImpl> load_kplan(const std::string& name, const void* bytes, std::size_t size,
                                      std::shared_ptr<const void> owner, KplanInfo* info_out) {
  auto bad = [&](const std::string& what) -> void { throw Error(name + ": error: " + what); };
  const auto* p = static_cast<const unsigned char*>(bytes);
  if (!p && size) bad("plan image is a null pointer");
  if (size < kKplanHeaderBytes)
    bad("truncated plan file: " + std::to_string(size) + " bytes, shorter than the " + std::to_string(kKplanHeaderBytes) +
        "-byte header");
  if (std::memcmp(p, kMagic, 8) != 0) bad("not a Kiln plan file (expected the magic bytes \"KILNPLAN\")");
  KplanInfo info;
  info.version = static_cast<std::uint32_t>(get_le(p + kKplanVersionOffset, 4));
  if (info.version != kKplanVersion)
    bad("plan file format version " + std::to_string(info.version) + ", but this Kiln reads version " +
        std::to_string(kKplanVersion) + " (recompile the model with this kilnc)");
  info.file_bytes = get_le(p + kFileBytesOffset, 8);
  if (info.file_bytes != size)
    bad(std::string(info.file_bytes > size ? "truncated" : "corrupt") + " plan file: the header says " +
        std::to_string(info.file_bytes) + " bytes, the file has " + std::to_string(size));
  info.checksum = get_le(p + kKplanChecksumOffset, 8);
  const std::uint64_t actual = kplan_checksum(p, size);
  if (actual != info.checksum) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "checksum mismatch: the header says %016llx, the contents hash to %016llx",
                  static_cast<unsigned long long>(info.checksum), static_cast<unsigned long long>(actual));
    bad(std::string("corrupt plan file: ") + buf);
  }
  info.isa = static_cast<std::uint32_t>(get_le(p + kKplanIsaOffset, 4));
  const std::uint32_t host = host_isa();
  if ((info.isa & host) != info.isa) {
    // Under an instruction-set cap (KILN_MAX_ISA, ONEDNN_MAX_CPU_ISA) the CPU may have it: say so, since the
    // cure differs. Either way a plan for this host is compiled under the same cap.
    const std::string cure = std::string("; recompile it here, or compile it with KILN_MAX_ISA=") +
                             isa::name(isa::effective()) + " in kilnc's environment";
    if (isa::effective() != isa::cpu())
      bad("plan file was built for " + isa_name(info.isa) + ", beyond the instruction-set cap in force (oneDNN: " +
          isa_name(host) + "; Kiln: " + isa::describe() + ")" + cure);
    bad("plan file was built for " + isa_name(info.isa) + ", which this CPU lacks (it supports " + isa_name(host) + ")" +
        cure);
  }
  const std::uint64_t graph_offset = get_le(p + kGraphOffset, 8), graph_bytes = get_le(p + 40, 8);
  const std::uint64_t data_offset = get_le(p + 48, 8), data_bytes = get_le(p + 56, 8);
  if (graph_offset < kKplanHeaderBytes || graph_offset > size || graph_bytes > size - graph_offset ||
      data_offset > size || data_bytes > size - data_offset || data_offset % kAlign != 0)
    bad("corrupt plan file: section offsets lie outside the file");
  const unsigned char* data = p + data_offset;
  if (reinterpret_cast<std::uintptr_t>(data) % kAlign != 0) {
    // Only an in-memory image can be misaligned (a mapping starts on a page): copy it once.
    void* copy = std::aligned_alloc(kAlign, align_up(std::max<std::size_t>(size, 1)));
    if (!copy) bad("out of memory copying a misaligned plan image");
    std::memcpy(copy, p, size);
    std::shared_ptr<const void> copy_owner(copy, [](const void* q) { std::free(const_cast<void*>(q)); });
    return load_kplan(name, copy, size, std::move(copy_owner), info_out);
  }

  Reader r(name, p + graph_offset, graph_bytes);
  auto impl = std::make_shared<ModelImpl>();
  impl->path = name;
  impl->graph = std::make_unique<Graph>();
  Graph& g = *impl->graph;
  g.name = r.str();
  info.source = r.str();
  info.opt_level = static_cast<int>(r.u32());
  for (std::size_t i = 0, n = r.count(20); i < n; ++i) {
    std::string dim = r.str();
    DimRange range{r.i64(), r.i64()};
    if (range.min < 1 || range.min > range.max) r.corrupt("dim '" + dim + "' has an empty range");
    info.dims.emplace(dim, range);
    if (!range.fixed()) impl->dim_ranges.emplace(dim, range);
  }
  for (std::size_t i = 0, n = r.count(16); i < n; ++i) {
    PlanSummary s;
    for (std::size_t k = 0, m = r.count(4); k < m; ++k) {
      std::vector<std::int64_t> dims(r.count(8));
      for (auto& d : dims) d = r.i64();
      s.input_dims.push_back(std::move(dims));
    }
    s.arena_bytes = r.u64();
    s.kernels = r.u32();
    info.plans.push_back(std::move(s));
  }
  std::vector<Value*> values(r.count(10));
  std::set<std::uint64_t> blobs;
  for (auto& v : values) {
    std::string vname = r.str();
    TensorType type = read_type(r, vname);
    if (r.u8() == 0) {
      v = g.add_value(vname, std::move(type));
      continue;
    }
    std::uint64_t off = r.u64(), bytes = r.u64();
    if (off % kAlign != 0 || off > data_bytes || bytes > data_bytes - off)
      r.corrupt("constant '" + vname + "' lies outside the data section");
    if (type.plain() && is_concrete(type.shape) &&
        static_cast<std::uint64_t>(*checked::tensor_bytes(dims_of(type.shape), dtype_size(type.dtype))) != bytes)
      r.corrupt("constant '" + vname + "' of type " + type.str() + " has " + std::to_string(bytes) + " bytes");
    if (blobs.insert(off).second) {
      info.constant_bytes += bytes;
      ++info.constants;
    }
    v = g.add_constant(vname, std::move(type), ConstData{bytes ? data + off : nullptr, bytes, owner});
  }
  auto ids = [&](bool allow_null) {
    std::vector<Value*> out(r.count(4));
    for (auto& v : out) {
      std::uint32_t id = r.u32();
      if (id == 0xffffffffu && allow_null) continue;
      if (id >= values.size()) r.corrupt("value index " + std::to_string(id) + " out of range");
      v = values[id];
    }
    return out;
  };
  g.inputs = ids(false);
  g.outputs = ids(false);
  for (std::size_t i = 0, n = r.count(16); i < n; ++i) {
    std::string op = r.str();
    std::string node_name = r.str();
    SourceLoc loc = read_loc(r);
    std::vector<Value*> ins = ids(true);
    std::vector<Value*> outs = ids(false);
    AttrMap attrs;
    for (std::size_t k = 0, m = r.count(5); k < m; ++k) {
      std::string key = r.str();
      attrs.emplace(std::move(key), read_attr(r));
    }
    if (!find_op(op))
      bad("plan file uses op '" + op + "' (node '" + node_name + "'), which this build of Kiln does not have");
    g.add_node(op, node_name, std::move(ins), std::move(outs), std::move(attrs), std::move(loc));
  }
  // Constants the pack-weights pass put into Kiln's GEMM panels (ops/gemm.hpp), for `kilnc inspect`.
  for (const auto& v : g.values())
    if (v->is_constant() && v->type.layout == gemm::kPackedLayout && !v->users.empty()) {
      info.packed_bytes += v->constant.bytes;
      ++info.packs;
    }
  if (!r.done()) r.corrupt("trailing bytes after the last node");
  try {
    g.verify();
    g.infer_shapes();
  } catch (const Error& e) {
    bad(std::string("plan file does not hold a valid graph: ") + e.what());
  }
  impl->weight_bytes = weight_bytes_of(g);
  if (info_out) *info_out = std::move(info);
  return impl;
}

std::shared_ptr<ModelImpl> load_kplan_file(const std::string& path, KplanInfo* info) {
  auto bad = [&](const std::string& what) -> void { throw Error(path + ": error: " + what); };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) bad(std::string("cannot open plan file: ") + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    bad("not a regular file");
  }
  auto size = static_cast<std::size_t>(st.st_size);
  if (size < kKplanHeaderBytes) {
    ::close(fd);
    bad("truncated plan file: " + std::to_string(size) + " bytes, shorter than the " + std::to_string(kKplanHeaderBytes) +
        "-byte header");
  }
  // MAP_POPULATE: the checksum reads every page anyway; faulting them in one call is faster.
  void* map = mmap(nullptr, size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) bad(std::string("cannot map plan file: ") + std::strerror(errno));
  std::shared_ptr<const void> owner(map, [size](const void* q) { munmap(const_cast<void*>(q), size); });
  return load_kplan(path, map, size, std::move(owner), info);
}

// ---- compiling with bound dims ----

std::shared_ptr<ModelImpl> compile_model_with_dims(const std::string& path, const PipelineOptions& options,
                                                   const DimRanges& dims, void (*stage)(const char*)) {
  auto impl = std::make_shared<ModelImpl>();
  impl->path = path;
  if (stage) stage("reading the model and its weights");
  impl->graph = load_yaml_model(path);
  Graph& g = *impl->graph;
  std::set<std::string> symbols;
  for (Value* in : g.inputs)
    for (Dim& d : in->type.shape)
      if (!d.concrete()) symbols.insert(d.sym);
  for (const auto& [name, range] : dims) {
    if (symbols.count(name)) continue;
    std::string known;
    for (const auto& s : symbols) known += (known.empty() ? "" : ", ") + s;
    fail("--shape " + name + "=" + range.str() + ": model '" + g.name + "' has no input dim named '" + name + "'" +
         (known.empty() ? " (its inputs have no symbolic dims)" : " (its symbolic dims: " + known + ")"));
  }
  bool bound = false;
  for (Value* in : g.inputs)
    for (Dim& d : in->type.shape) {
      auto it = d.concrete() ? dims.end() : dims.find(d.sym);
      if (it != dims.end() && it->second.fixed()) {
        d = Dim::of(it->second.min);
        bound = true;
      }
    }
  if (bound) g.infer_shapes();
  for (const auto& [name, range] : dims)
    if (!range.fixed()) impl->dim_ranges.emplace(name, range);
  if (stage) stage("running the optimization passes");
  impl->remarks = run_pipeline(g, options);
  return impl;
}

std::vector<PlanSummary> summarize_plans(const ModelImpl& model) {
  const Graph& g = *model.graph;
  std::vector<std::map<std::string, std::int64_t>> settings(1);
  for (const auto& [name, range] : model.dim_ranges) {
    std::vector<std::map<std::string, std::int64_t>> next;
    for (const auto& s : settings)
      for (std::int64_t v : {range.min, range.max}) {
        auto t = s;
        t[name] = v;
        if (std::find(next.begin(), next.end(), t) == next.end()) next.push_back(std::move(t));
      }
    settings = std::move(next);
  }
  std::vector<PlanSummary> out;
  for (const auto& s : settings) {
    PlanSummary summary;
    bool known = true;
    for (const Value* in : g.inputs) {
      std::vector<std::int64_t> dims;
      for (const Dim& d : in->type.shape) {
        auto it = d.concrete() ? s.end() : s.find(d.sym);
        if (!d.concrete() && it == s.end()) known = false;
        dims.push_back(d.concrete() ? d.value : it == s.end() ? 0 : it->second);
      }
      summary.input_dims.push_back(std::move(dims));
    }
    if (!known) continue;
    Plan plan(g, summary.input_dims, cpu_engine());
    summary.arena_bytes = plan.arena_bytes();
    for (const auto& step : plan.steps()) summary.kernels += step.impl == "view" ? 0 : 1;
    out.push_back(std::move(summary));
  }
  return out;
}

// ---- atomic writes ----

namespace {
// The temporary file being written, for the signal handler (which may only call async-signal-safe
// functions: it reads this fixed buffer and calls unlink).
char g_temp_path[4096];
std::atomic<bool> g_temp_active{false};

void on_signal(int sig) {
  if (g_temp_active.load()) ::unlink(g_temp_path);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}
}  // namespace

void remove_temp_files_on_signal() {
  std::signal(SIGINT, on_signal);
  std::signal(SIGTERM, on_signal);
}

void write_file_atomic(const std::string& path, const void* bytes, std::size_t size) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  if (tmp.size() >= sizeof g_temp_path) fail("path too long: " + path);
  auto bad = [&](const std::string& what) -> void {
    int err = errno;
    g_temp_active = false;
    ::unlink(tmp.c_str());
    throw Error(path + ": error: " + what + ": " + std::strerror(err));
  };
  std::memcpy(g_temp_path, tmp.c_str(), tmp.size() + 1);
  g_temp_active = true;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int err = errno;
    g_temp_active = false;
    throw Error(path + ": error: cannot create file: " + std::strerror(err));
  }
  const auto* p = static_cast<const char*>(bytes);
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd, p + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      bad("cannot write file");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    bad("cannot flush file");
  }
  if (::close(fd) != 0) bad("cannot close file");
  if (::rename(tmp.c_str(), path.c_str()) != 0) bad("cannot rename the temporary file into place");
  g_temp_active = false;
}

}  // namespace detail

}  // namespace kiln

namespace kiln {

Model Model::load_plan(const void* data, std::size_t size, const std::string& name) {
  // The caller keeps the image alive (see the declaration), so the owner holds nothing.
  return detail::no_bad_alloc("Model::load_plan", [&] {
    return Model(detail::load_kplan(name, data, size, std::shared_ptr<const void>(data, [](const void*) {})));
  });
}

}  // namespace kiln
