// The plan file format (docs/compiler.md): the header, the graph section (metadata, values, nodes) and the
// 64-byte aligned data section, written by serialize_kplan and read back, every
// field checked, by load_kplan.

#include "runtime/kplan.hpp"

#include <algorithm>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <map>
#include <set>
#include <utility>

// Compiled in (no library to link), with XXH3_state_t complete: the state lives on the stack.
#define XXH_INLINE_ALL
#include <xxhash.h>

#include "graph/checked.hpp"
#include "ops/common.hpp"
#include "ops/gemm.hpp"
#include "ops/isa.hpp"
#include "ops/op.hpp"
#include "runtime/file_io.hpp"
#include "runtime/model_impl.hpp"

namespace kiln {

namespace {

constexpr char kMagic[8] = {'K', 'I', 'L', 'N', 'P', 'L', 'A', 'N'};
constexpr std::size_t kAlign = 64;

// Header fields (little-endian), kKplanHeaderBytes in all, the rest zero:
//   0 magic "KILNPLAN"   8 u32 version   12 u32 header bytes   16 u64 file bytes   24 u64 checksum
//  32 u64 graph offset  40 u64 graph bytes  48 u64 data offset  56 u64 data bytes  64 u32 isa
constexpr std::size_t kHeaderBytesOffset = 12;
constexpr std::size_t kFileBytesOffset = 16;
constexpr std::size_t kGraphOffset = 32;
constexpr std::size_t kGraphBytesOffset = 40;
constexpr std::size_t kDataOffset = 48;
constexpr std::size_t kDataBytesOffset = 56;

std::size_t align_up(std::size_t n) { return (n + kAlign - 1) / kAlign * kAlign; }

void put_le(unsigned char* p, std::uint64_t v, int bytes) {
  for (int i = 0; i < bytes; ++i) p[i] = static_cast<unsigned char>(v >> (8 * i));
}
std::uint64_t get_le(const unsigned char* p, int bytes) {
  std::uint64_t v = 0;
  for (int i = bytes - 1; i >= 0; --i) v = (v << 8) | p[i];
  return v;
}

[[noreturn]] void refuse(const std::string& file, const std::string& what) { throw Error(file + ": error: " + what); }

}  // namespace

std::uint64_t kplan_checksum(const void* data, std::size_t size) {
  const auto* p = static_cast<const unsigned char*>(data);
  const std::size_t head = std::min(size, kKplanHeaderBytes);
  unsigned char header[kKplanHeaderBytes] = {};
  if (head) std::memcpy(header, p, head);
  if (head >= kKplanChecksumOffset + 8) std::memset(header + kKplanChecksumOffset, 0, 8);
  XXH3_state_t state;
  XXH3_64bits_reset(&state);
  XXH3_64bits_update(&state, header, head);
  XXH3_64bits_update(&state, p + head, size - head);
  return XXH3_64bits_digest(&state);
}

// ---- the graph section's encoding ----

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
  Reader(std::string file, const unsigned char* p, std::size_t n) : file_(std::move(file)), p_(p), n_(n) {}
  [[noreturn]] void corrupt(const std::string& what) const {
    throw Error(file_ + ": error: corrupt plan file: " + what + " (at byte " + std::to_string(at_) +
                " of the graph section)");
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
    if (c > (n_ - at_) / std::max<std::size_t>(min_item, 1))
      corrupt("count " + std::to_string(c) + " exceeds the section");
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

namespace {

// ---- writing ----

// The values the graph refers to, in the graph's own order (so the IR prints the same after loading), and
// each one's index in the file.
struct ValueTable {
  std::vector<const Value*> values;
  std::map<const Value*, std::uint32_t> index;
};

ValueTable used_values(const Graph& g) {
  std::set<const Value*> used(g.inputs.begin(), g.inputs.end());
  used.insert(g.outputs.begin(), g.outputs.end());
  for (const auto& n : g.nodes()) {
    used.insert(n->inputs.begin(), n->inputs.end());
    used.insert(n->outputs.begin(), n->outputs.end());
  }
  ValueTable t;
  for (const auto& v : g.values())
    if (used.count(v.get())) {
      t.index.emplace(v.get(), static_cast<std::uint32_t>(t.values.size()));
      t.values.push_back(v.get());
    }
  return t;
}

// The data section being laid out: the blobs it will hold, each 64-byte aligned, and where.
struct DataSection {
  using Blob = std::pair<const void*, std::size_t>;
  std::vector<Blob> blobs;
  std::map<Blob, std::uint64_t> offset;
  std::uint64_t bytes = 0;

  /// A constant's bytes: once per address and size (constants may share their data).
  std::uint64_t add_shared(const void* data, std::size_t size) {
    const Blob key{data, size};
    auto it = offset.find(key);
    if (it == offset.end()) {
      it = offset.emplace(key, bytes).first;
      blobs.push_back(key);
      bytes += align_up(size);
    }
    return it->second;
  }
  /// Bytes placed at the end of the section, whatever else it holds.
  std::uint64_t append(const void* data, std::size_t size) {
    const std::uint64_t at = bytes;
    offset.emplace(Blob{data, size}, at);
    blobs.emplace_back(data, size);
    bytes += align_up(size);
    return at;
  }
};

// Metadata: the graph's name, where it came from, the --shape bindings and the compile-time plans.
void write_metadata(Writer& w, const Graph& g, const KplanInfo& info, const DimRanges& dims) {
  w.str(g.name);
  w.str(info.source);
  w.u32(static_cast<std::uint32_t>(info.opt_level));
  w.u32(static_cast<std::uint32_t>(dims.size()));
  for (const auto& [name, r] : dims) {
    w.str(name);
    w.i64(r.min);
    w.i64(r.max);
  }
  w.u32(static_cast<std::uint32_t>(info.plans.size()));
  for (const auto& p : info.plans) {
    w.u32(static_cast<std::uint32_t>(p.input_dims.size()));
    for (const auto& input : p.input_dims) {
      w.u32(static_cast<std::uint32_t>(input.size()));
      for (auto d : input) w.i64(d);
    }
    w.u64(p.arena_bytes);
    w.u32(p.kernels);
  }
}

// Values with their types; a constant also gets the place of its bytes in the data section.
void write_values(Writer& w, const ValueTable& table, DataSection& data) {
  w.u32(static_cast<std::uint32_t>(table.values.size()));
  for (const Value* v : table.values) {
    w.str(v->name);
    write_type(w, v->type);
    w.u8(v->is_constant() ? 1 : 0);
    if (!v->is_constant()) continue;
    w.u64(data.add_shared(v->constant.data, v->constant.bytes));
    w.u64(v->constant.bytes);
  }
}

void write_ids(Writer& w, const ValueTable& table, const std::vector<Value*>& vs) {
  w.u32(static_cast<std::uint32_t>(vs.size()));
  for (const Value* v : vs) w.u32(v ? table.index.at(v) : 0xffffffffu);
}

// Nodes, through their schema-checked attributes only: no per-op code.
void write_nodes(Writer& w, const Graph& g, const ValueTable& table) {
  w.u32(static_cast<std::uint32_t>(g.nodes().size()));
  for (const auto& n : g.nodes()) {
    w.str(n->op);
    w.str(n->name);
    write_loc(w, n->loc);
    write_ids(w, table, n->inputs);
    write_ids(w, table, n->outputs);
    w.u32(static_cast<std::uint32_t>(n->attrs.size()));
    for (const auto& [key, value] : n->attrs) {
      w.str(key);
      write_attr(w, value);
    }
  }
}

// The whole file: the header, the graph section after it, then the data section, and the checksum over all.
std::vector<unsigned char> assemble_file(const std::vector<unsigned char>& graph, const DataSection& data,
                                         std::uint32_t isa) {
  const std::size_t graph_offset = kKplanHeaderBytes;
  const std::size_t graph_bytes = graph.size();
  const std::size_t data_offset = align_up(graph_offset + graph_bytes);
  const std::size_t total = data_offset + data.bytes;
  std::vector<unsigned char> file(total, 0);
  unsigned char* h = file.data();
  std::memcpy(h, kMagic, 8);
  put_le(h + kKplanVersionOffset, kKplanVersion, 4);
  put_le(h + kHeaderBytesOffset, kKplanHeaderBytes, 4);
  put_le(h + kFileBytesOffset, total, 8);
  put_le(h + kGraphOffset, graph_offset, 8);
  put_le(h + kGraphBytesOffset, graph_bytes, 8);
  put_le(h + kDataOffset, data_offset, 8);
  put_le(h + kDataBytesOffset, data.bytes, 8);
  put_le(h + kKplanIsaOffset, isa, 4);
  std::memcpy(h + graph_offset, graph.data(), graph_bytes);
  for (const auto& blob : data.blobs)
    if (blob.second) std::memcpy(h + data_offset + data.offset.at(blob), blob.first, blob.second);
  put_le(h + kKplanChecksumOffset, kplan_checksum(file.data(), file.size()), 8);
  return file;
}

// ---- reading ----

// The header's account of the file, once checked: its sections lie inside it.
struct Sections {
  std::uint64_t graph_offset = 0, graph_bytes = 0;
  std::uint64_t data_offset = 0, data_bytes = 0;
};

// Refuses a plan built for an instruction set this CPU (or the cap in force) does not offer.
void check_isa(const std::string& name, std::uint32_t isa) {
  const std::uint32_t host = host_isa();
  if ((isa & host) == isa) return;
  // Under an instruction-set cap (KILN_MAX_ISA, ONEDNN_MAX_CPU_ISA) the CPU may have it: say so, since the
  // cure differs. Either way a plan for this host is compiled under the same cap.
  const std::string cure = std::string("; recompile it here, or compile it with KILN_MAX_ISA=") +
                           isa::name(isa::effective()) + " in kilnc's environment";
  if (isa::effective() != isa::cpu())
    refuse(name, "plan file was built for " + isa_name(isa) + ", beyond the instruction-set cap in force (oneDNN: " +
                     isa_name(host) + "; Kiln: " + isa::describe() + ")" + cure);
  refuse(name, "plan file was built for " + isa_name(isa) + ", which this CPU lacks (it supports " + isa_name(host) +
                   ")" + cure);
}

// Checks the header in the order docs/compiler.md gives: the magic and version before anything else
// (another version may lay out its header differently), the size and checksum before any field is
// trusted, then the ISA and the section offsets.
Sections read_header(const std::string& name, const unsigned char* p, std::size_t size, KplanInfo& info) {
  if (size < kKplanHeaderBytes)
    refuse(name, "truncated plan file: " + std::to_string(size) + " bytes, shorter than the " +
                     std::to_string(kKplanHeaderBytes) + "-byte header");
  if (std::memcmp(p, kMagic, 8) != 0) refuse(name, "not a Kiln plan file (expected the magic bytes \"KILNPLAN\")");
  info.version = static_cast<std::uint32_t>(get_le(p + kKplanVersionOffset, 4));
  if (info.version != kKplanVersion)
    refuse(name, "plan file format version " + std::to_string(info.version) + ", but this Kiln reads version " +
                     std::to_string(kKplanVersion) + " (recompile the model with this kilnc)");
  info.file_bytes = get_le(p + kFileBytesOffset, 8);
  if (info.file_bytes != size)
    refuse(name, std::string(info.file_bytes > size ? "truncated" : "corrupt") + " plan file: the header says " +
                     std::to_string(info.file_bytes) + " bytes, the file has " + std::to_string(size));
  info.checksum = get_le(p + kKplanChecksumOffset, 8);
  const std::uint64_t actual = kplan_checksum(p, size);
  if (actual != info.checksum) {
    char buf[96];
    std::snprintf(buf, sizeof buf, "checksum mismatch: the header says %016llx, the contents hash to %016llx",
                  static_cast<unsigned long long>(info.checksum), static_cast<unsigned long long>(actual));
    refuse(name, std::string("corrupt plan file: ") + buf);
  }
  info.isa = static_cast<std::uint32_t>(get_le(p + kKplanIsaOffset, 4));
  check_isa(name, info.isa);
  Sections s;
  s.graph_offset = get_le(p + kGraphOffset, 8);
  s.graph_bytes = get_le(p + kGraphBytesOffset, 8);
  s.data_offset = get_le(p + kDataOffset, 8);
  s.data_bytes = get_le(p + kDataBytesOffset, 8);
  if (s.graph_offset < kKplanHeaderBytes || s.graph_offset > size || s.graph_bytes > size - s.graph_offset ||
      s.data_offset > size || s.data_bytes > size - s.data_offset || s.data_offset % kAlign != 0)
    refuse(name, "corrupt plan file: section offsets lie outside the file");
  return s;
}

void read_metadata(Reader& r, Graph& g, ModelImpl& impl, KplanInfo& info) {
  g.name = r.str();
  info.source = r.str();
  info.opt_level = static_cast<int>(r.u32());
  for (std::size_t i = 0, n = r.count(20); i < n; ++i) {
    std::string dim = r.str();
    DimRange range{r.i64(), r.i64()};
    if (range.min < 1 || range.min > range.max) r.corrupt("dim '" + dim + "' has an empty range");
    info.dims.emplace(dim, range);
    if (!range.fixed()) impl.dim_ranges.emplace(dim, range);
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
}

// The data section of a loaded image, which the model's constants point into.
struct DataView {
  const unsigned char* data;
  std::uint64_t bytes;
  const std::shared_ptr<const void>& owner;
};

// Values, in file order; a constant's bytes must lie in the data section and match its type's size.
std::vector<Value*> read_values(Reader& r, Graph& g, const DataView& data, KplanInfo& info) {
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
    if (off % kAlign != 0 || off > data.bytes || bytes > data.bytes - off)
      r.corrupt("constant '" + vname + "' lies outside the data section");
    if (type.plain() && is_concrete(type.shape) &&
        static_cast<std::uint64_t>(*checked::tensor_bytes(dims_of(type.shape), dtype_size(type.dtype))) != bytes)
      r.corrupt("constant '" + vname + "' of type " + type.str() + " has " + std::to_string(bytes) + " bytes");
    if (blobs.insert(off).second) {
      info.constant_bytes += bytes;
      ++info.constants;
    }
    v = g.add_constant(vname, std::move(type), ConstData{bytes ? data.data + off : nullptr, bytes, data.owner});
  }
  return values;
}

// A list of value indices; with `allow_null`, 0xffffffff is an absent optional input.
std::vector<Value*> read_ids(Reader& r, const std::vector<Value*>& values, bool allow_null) {
  std::vector<Value*> out(r.count(4));
  for (auto& v : out) {
    std::uint32_t id = r.u32();
    if (id == 0xffffffffu && allow_null) continue;
    if (id >= values.size()) r.corrupt("value index " + std::to_string(id) + " out of range");
    v = values[id];
  }
  return out;
}

void read_nodes(Reader& r, const std::string& name, Graph& g, const std::vector<Value*>& values) {
  for (std::size_t i = 0, n = r.count(16); i < n; ++i) {
    std::string op = r.str();
    std::string node_name = r.str();
    SourceLoc loc = read_loc(r);
    std::vector<Value*> ins = read_ids(r, values, true);
    std::vector<Value*> outs = read_ids(r, values, false);
    AttrMap attrs;
    for (std::size_t k = 0, m = r.count(5); k < m; ++k) {
      std::string key = r.str();
      attrs.emplace(std::move(key), read_attr(r));
    }
    if (!find_op(op))
      refuse(name, "plan file uses op '" + op + "' (node '" + node_name + "'), which this build of Kiln does not have");
    g.add_node(op, node_name, std::move(ins), std::move(outs), std::move(attrs), std::move(loc));
  }
}

}  // namespace

std::vector<unsigned char> serialize_kplan(const ModelImpl& model, const KplanInfo& info) {
  const Graph& g = *model.graph;
  const DimRanges& dims = info.dims.empty() ? model.dim_ranges : info.dims;
  const ValueTable table = used_values(g);
  DataSection data;
  Writer w;
  write_metadata(w, g, info, dims);
  write_values(w, table, data);
  write_ids(w, table, g.inputs);
  write_ids(w, table, g.outputs);
  write_nodes(w, g, table);
  return assemble_file(w.bytes, data, info.isa);
}

std::shared_ptr<ModelImpl> load_kplan(const std::string& name, const void* bytes, std::size_t size,
                                      const std::shared_ptr<const void>& owner, KplanInfo* info_out) {
  const auto* p = static_cast<const unsigned char*>(bytes);
  if (!p && size) refuse(name, "plan image is a null pointer");
  KplanInfo info;
  const Sections s = read_header(name, p, size, info);
  if (reinterpret_cast<std::uintptr_t>(p + s.data_offset) % kAlign != 0) {
    // Only an in-memory image can be misaligned (a mapping starts on a page): copy it once.
    void* copy = std::aligned_alloc(kAlign, align_up(std::max<std::size_t>(size, 1)));
    if (!copy) refuse(name, "out of memory copying a misaligned plan image");
    std::memcpy(copy, p, size);
    std::shared_ptr<const void> copy_owner(copy, [](const void* q) { std::free(const_cast<void*>(q)); });
    return load_kplan(name, copy, size, copy_owner, info_out);
  }

  Reader r(name, p + s.graph_offset, s.graph_bytes);
  const DataView data{p + s.data_offset, s.data_bytes, owner};
  auto impl = std::make_shared<ModelImpl>();
  impl->path = name;
  impl->graph = std::make_unique<Graph>();
  Graph& g = *impl->graph;
  read_metadata(r, g, *impl, info);
  const std::vector<Value*> values = read_values(r, g, data, info);
  g.inputs = read_ids(r, values, false);
  g.outputs = read_ids(r, values, false);
  read_nodes(r, name, g, values);
  if (!r.done()) r.corrupt("trailing bytes after the last node");
  // Constants the pack-weights pass put into Kiln's GEMM panels (ops/gemm.hpp) or quantized (ops/qgemm.hpp),
  // for `kilnc inspect`.
  for (const auto& v : g.values())
    if (v->is_constant() && v->type.layout == gemm::kPackedLayout && !v->users.empty()) {
      info.packed_bytes += v->constant.bytes;
      ++info.packs;
    } else if (v->is_constant() && quantized_format(v->type) && !v->users.empty()) {
      info.quantized_bytes += v->constant.bytes;
      ++info.quantized;
    }
  try {
    g.verify();
    g.infer_shapes();
  } catch (const Error& e) {
    refuse(name, std::string("plan file does not hold a valid graph: ") + e.what());
  }
  impl->weight_bytes = weight_bytes_of(g);
  if (info_out) *info_out = std::move(info);
  return impl;
}

std::shared_ptr<ModelImpl> load_kplan_file(const std::string& path, KplanInfo* info) {
  MappedFile file = map_file(path, "plan file");
  return load_kplan(path, file.data, file.size, file.owner, info);
}

}  // namespace detail

Model Model::load_plan(const void* data, std::size_t size, const std::string& name) {
  // The caller keeps the image alive (see the declaration), so the owner holds nothing.
  return detail::no_bad_alloc("Model::load_plan", [&] {
    return Model(detail::load_kplan(name, data, size, std::shared_ptr<const void>(data, [](const void*) {})));
  });
}

}  // namespace kiln
