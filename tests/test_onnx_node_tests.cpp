// ONNX's backend node tests (Debian's libonnx-testdata, data/node: model.onnx + test_data_set_*/input_*.pb
// and output_*.pb, TensorProtos) for the ops Kiln imports. tests/onnx/node_tests.txt lists every such test:
// `run NAME` must pass; `skip NAME REASON` says why a test of a claimed op is out of scope. The case fails
// when the data is missing, when a listed test fails, and when a test of a claimed op is not listed.
// `run NAME const=A,B` turns inputs A and B into initializers first (below).

#include <onnx/onnx_pb.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <map>
#include <set>
#include <sstream>

#include "frontends/onnx/onnx_frontend.hpp"
#include "test_util.hpp"

namespace fs = std::filesystem;
using kiln::test::source_path;

namespace {

// Where Debian installs the data; KILN_ONNX_NODE_TESTS overrides it.
std::string data_dir() {
  const char* env = std::getenv("KILN_ONNX_NODE_TESTS");
  return env && *env ? env : "/usr/share/libonnx-testdata/data/node";
}

template <class Proto>
bool parse_file(const fs::path& path, Proto* out) {
  std::ifstream in(path, std::ios::binary);
  return in && out->ParseFromIstream(&in);
}

// A TensorProto as a Kiln tensor (f32, f64, f16, bf16, i64, i32, i8, u8, bool); throws on anything else.
kiln::Tensor tensor_of(const onnx::TensorProto& t, const std::string& what) {
  kiln::DType dt{};
  switch (t.data_type()) {
    case onnx::TensorProto_DataType_FLOAT: dt = kiln::DType::f32; break;
    case onnx::TensorProto_DataType_DOUBLE: dt = kiln::DType::f64; break;
    case onnx::TensorProto_DataType_INT64: dt = kiln::DType::i64; break;
    case onnx::TensorProto_DataType_INT32: dt = kiln::DType::i32; break;
    case onnx::TensorProto_DataType_BOOL: dt = kiln::DType::boolean; break;
    case onnx::TensorProto_DataType_FLOAT16: dt = kiln::DType::f16; break;
    case onnx::TensorProto_DataType_BFLOAT16: dt = kiln::DType::bf16; break;
    // ONNX 1.12's generator stores bfloat16 test data as uint16 bits (Kiln has no uint16 type).
    case onnx::TensorProto_DataType_UINT16: dt = kiln::DType::bf16; break;
    case onnx::TensorProto_DataType_INT8: dt = kiln::DType::i8; break;
    case onnx::TensorProto_DataType_UINT8: dt = kiln::DType::u8; break;
    default: throw std::runtime_error(what + ": element type " + std::to_string(t.data_type()) + " not handled");
  }
  std::vector<std::int64_t> dims(t.dims().begin(), t.dims().end());
  kiln::Tensor out = kiln::Tensor::empty(dt, dims);
  const std::size_t bytes = out.bytes();
  if (t.has_raw_data()) {
    if (t.raw_data().size() != bytes) throw std::runtime_error(what + ": raw_data has the wrong size");
    std::memcpy(out.data(), t.raw_data().data(), bytes);
  } else if (dt == kiln::DType::f32 && static_cast<std::size_t>(t.float_data_size()) * 4 == bytes) {
    std::memcpy(out.data(), t.float_data().data(), bytes);
  } else if (dt == kiln::DType::i64 && static_cast<std::size_t>(t.int64_data_size()) * 8 == bytes) {
    std::memcpy(out.data(), t.int64_data().data(), bytes);
  } else if (dt == kiln::DType::f64 && static_cast<std::size_t>(t.double_data_size()) * 8 == bytes) {
    std::memcpy(out.data(), t.double_data().data(), bytes);
  } else if ((dt == kiln::DType::f16 || dt == kiln::DType::bf16) &&
             static_cast<std::size_t>(t.int32_data_size()) * 2 == bytes) {  // the bits in the low 16 of each
    for (int i = 0; i < t.int32_data_size(); ++i)
      out.data_as<std::uint16_t>()[i] = static_cast<std::uint16_t>(t.int32_data(i));
  } else if ((dt == kiln::DType::i32 || dt == kiln::DType::boolean) &&
             static_cast<std::size_t>(t.int32_data_size()) * kiln::dtype_size(dt) == bytes) {
    for (int i = 0; i < t.int32_data_size(); ++i) {
      if (dt == kiln::DType::i32) out.data_as<std::int32_t>()[i] = t.int32_data(i);
      else out.data_as<std::uint8_t>()[i] = static_cast<std::uint8_t>(t.int32_data(i) != 0);
    }
  } else {
    throw std::runtime_error(what + ": typed data not handled");
  }
  return out;
}

// float16 and bfloat16 bits as doubles, for comparing (IEEE half: sign, 5 exponent bits, 10 mantissa bits).
double half(std::uint16_t h) {
  const int e = (h >> 10) & 0x1f, m = h & 0x3ff;
  const double v = e == 0 ? std::ldexp(m, -24) : e == 31 ? (m ? NAN : INFINITY) : std::ldexp(1024 + m, e - 25);
  return h & 0x8000 ? -v : v;
}
double bhalf(std::uint16_t h) {
  const std::uint32_t x = static_cast<std::uint32_t>(h) << 16;
  float f = 0;
  std::memcpy(&f, &x, sizeof f);
  return f;
}

// ONNX's backend default tolerances (onnx/backend/test/case/node: rtol 1e-3, atol 1e-7).
std::string compare(const kiln::Tensor& got, const kiln::Tensor& want, const std::string& name) {
  if (got.shape() != want.shape())
    return name + ": shape " + kiln::shape_to_string(got.shape()) + ", expected " + kiln::shape_to_string(want.shape());
  if (got.dtype() != want.dtype())
    return name + ": type " + std::string(kiln::dtype_name(got.dtype())) + ", expected " +
           std::string(kiln::dtype_name(want.dtype()));
  // Integers and bools exactly (bools as truth values); f64, f16 and bf16 at the same tolerances as f32.
  for (std::int64_t i = 0; i < want.numel() && want.dtype() != kiln::DType::f32; ++i) {
    double x = 0, y = 0;
    switch (want.dtype()) {
      case kiln::DType::i64: x = static_cast<double>(got.data_as<std::int64_t>()[i]), y = static_cast<double>(want.data_as<std::int64_t>()[i]); break;
      case kiln::DType::i32: x = got.data_as<std::int32_t>()[i], y = want.data_as<std::int32_t>()[i]; break;
      case kiln::DType::i8: x = got.data_as<std::int8_t>()[i], y = want.data_as<std::int8_t>()[i]; break;
      case kiln::DType::u8: x = got.data_as<std::uint8_t>()[i], y = want.data_as<std::uint8_t>()[i]; break;
      case kiln::DType::boolean: x = got.data_as<std::uint8_t>()[i] != 0, y = want.data_as<std::uint8_t>()[i] != 0; break;
      case kiln::DType::f64: x = got.data_as<double>()[i], y = want.data_as<double>()[i]; break;
      case kiln::DType::f16: x = half(got.data_as<std::uint16_t>()[i]), y = half(want.data_as<std::uint16_t>()[i]); break;
      case kiln::DType::bf16:
        x = bhalf(got.data_as<std::uint16_t>()[i]), y = bhalf(want.data_as<std::uint16_t>()[i]);
        break;
      default: return name + ": output type " + std::string(kiln::dtype_name(want.dtype())) + " not compared";
    }
    const bool floating = want.dtype() == kiln::DType::f64 || want.dtype() == kiln::DType::f16 ||
                          want.dtype() == kiln::DType::bf16;
    const bool close = floating ? (x == y || std::fabs(x - y) <= 1e-7 + 1e-3 * std::fabs(y)) : x == y;
    if (!close && !(std::isnan(x) && std::isnan(y)))
      return name + "[" + std::to_string(i) + "] = " + std::to_string(x) + ", expected " + std::to_string(y);
  }
  if (want.dtype() != kiln::DType::f32) return {};
  const float* a = got.data_as<float>();
  const float* b = want.data_as<float>();
  for (std::int64_t i = 0; i < want.numel(); ++i) {
    const bool both_nan = std::isnan(a[i]) && std::isnan(b[i]);
    if (!both_nan && a[i] != b[i] && !(std::fabs(a[i] - b[i]) <= 1e-7 + 1e-3 * std::fabs(b[i])))  // inf == inf
      return name + "[" + std::to_string(i) + "] = " + std::to_string(a[i]) + ", expected " + std::to_string(b[i]);
  }
  return {};
}

// Runs one backend test; returns "" when every data set matches, else what went wrong. Inputs named in
// `consts` (an op input Kiln needs constant: Reshape's shape, Pow's exponent, Conv's weights) become
// initializers holding test_data_set_0's values, in a copy of the model.
std::string run_node_test(const fs::path& dir, const std::set<std::string>& consts) {
  onnx::ModelProto model;
  if (!parse_file(dir / "model.onnx", &model)) return "cannot read model.onnx";
  std::set<std::string> initializers;
  for (const auto& t : model.graph().initializer()) initializers.insert(t.name());
  std::vector<std::string> inputs, outputs;
  for (const auto& i : model.graph().input())
    if (!initializers.count(i.name())) inputs.push_back(i.name());
  for (const auto& o : model.graph().output()) outputs.push_back(o.name());
  kiln::test::TempDir tmp;
  std::string path = (dir / "model.onnx").string();
  if (!consts.empty()) {
    if (fs::exists(dir / "test_data_set_1")) return "const= needs a test with one data set";
    auto* g = model.mutable_graph();
    for (std::size_t i = 0; i < inputs.size(); ++i) {
      if (!consts.count(inputs[i])) continue;
      onnx::TensorProto* t = g->add_initializer();
      if (!parse_file(dir / "test_data_set_0" / ("input_" + std::to_string(i) + ".pb"), t))
        return "cannot read input " + inputs[i];
      t->set_name(inputs[i]);
    }
    // Before IR version 4 every initializer must also be a graph input (the checker says so).
    if (model.ir_version() >= 4)
      for (int i = g->input_size(); i-- > 0;)
        if (consts.count(g->input(i).name())) g->mutable_input()->DeleteSubrange(i, 1);
    std::string bytes;
    if (!model.SerializeToString(&bytes)) return "cannot serialize the model";
    path = tmp.write("model.onnx", bytes);
  }
  try {
    kiln::Model m = kiln::Model::load(path);
    kiln::Session session(m);
    int sets = 0;
    for (int s = 0; fs::exists(dir / ("test_data_set_" + std::to_string(s))); ++s, ++sets) {
      const fs::path data = dir / ("test_data_set_" + std::to_string(s));
      std::map<std::string, kiln::Tensor> feed;
      for (std::size_t i = 0; i < inputs.size(); ++i) {
        if (consts.count(inputs[i])) continue;
        onnx::TensorProto t;
        if (!parse_file(data / ("input_" + std::to_string(i) + ".pb"), &t)) return "cannot read input " + inputs[i];
        feed[inputs[i]] = tensor_of(t, inputs[i]);
      }
      auto got = session.run(feed);
      for (std::size_t i = 0; i < outputs.size(); ++i) {
        onnx::TensorProto t;
        if (!parse_file(data / ("output_" + std::to_string(i) + ".pb"), &t))
          return "cannot read output " + outputs[i];
        std::string diff = compare(got.at(outputs[i]), tensor_of(t, outputs[i]), outputs[i]);
        if (!diff.empty()) return data.filename().string() + ": " + diff;
      }
    }
    if (sets == 0) return "no test_data_set_0";
  } catch (const std::exception& e) {
    return e.what();
  }
  return {};
}

}  // namespace

TEST_CASE("onnx backend node tests of the imported ops pass") {
  const fs::path root = data_dir();
  REQUIRE_MESSAGE(fs::is_directory(root), "ONNX backend test data not found at " << root.string()
                                                                                   << ": install libonnx-testdata "
                                                                                      "(scripts/install_deps.sh)");
  std::ifstream list(source_path("tests/onnx/node_tests.txt"));
  REQUIRE_MESSAGE(list.good(), "cannot read tests/onnx/node_tests.txt");
  std::vector<std::pair<std::string, std::set<std::string>>> run;  // name, inputs made constant
  std::map<std::string, std::string> skipped;
  std::string line;
  while (std::getline(list, line)) {
    if (line.empty() || line[0] == '#') continue;
    std::istringstream words(line);
    std::string kind, name, reason;
    words >> kind >> name;
    std::getline(words >> std::ws, reason);
    std::set<std::string> consts;
    if (kind == "run" && reason.rfind("const=", 0) == 0) {
      std::istringstream names(reason.substr(6));
      for (std::string c; std::getline(names, c, ',');) consts.insert(c);
      reason.clear();
    }
    if (kind == "run" && reason.empty()) run.emplace_back(name, consts);
    else if (kind == "skip" && !reason.empty()) skipped[name] = reason;
    else FAIL("tests/onnx/node_tests.txt: expected 'run NAME [const=INPUT,...]' or 'skip NAME REASON', got: " << line);
  }

  // Every test whose nodes all use claimed ops is listed, one way or the other.
  std::set<std::string> claimed;
  for (const auto& op : kiln::onnx_supported_ops()) claimed.insert(op.op);
  std::set<std::string> listed;
  for (const auto& r : run) listed.insert(r.first);
  for (const auto& [name, reason] : skipped) listed.insert(name);
  std::vector<std::string> unlisted;
  for (const auto& entry : fs::directory_iterator(root)) {
    onnx::ModelProto m;
    if (!parse_file(entry.path() / "model.onnx", &m)) continue;
    bool all_claimed = m.graph().node_size() > 0;
    for (const auto& n : m.graph().node())
      all_claimed = all_claimed && (n.domain().empty() || n.domain() == "ai.onnx") && claimed.count(n.op_type());
    if (all_claimed && !listed.count(entry.path().filename().string()))
      unlisted.push_back(entry.path().filename().string());
  }
  std::string missing;
  for (const auto& u : unlisted) missing += " " + u;
  CHECK_MESSAGE(unlisted.empty(), "tests of claimed ops missing from tests/onnx/node_tests.txt:" << missing);

  int passed = 0;
  std::string failures;
  for (const auto& [name, consts] : run) {
    if (!fs::is_directory(root / name)) {
      failures += "\n  " + name + ": no such test in " + root.string();
      continue;
    }
    std::string why = run_node_test(root / name, consts);
    if (why.empty()) ++passed;
    else failures += "\n  " + name + ": " + why;
  }
  std::printf("ONNX backend node tests: %d passed of %zu in scope (%zu listed out of scope)\n", passed, run.size(),
              skipped.size());
  CHECK(run.size() > 0);
  CHECK_MESSAGE(failures.empty(), "failed:" << failures);
}
