// Bad inputs at run time (Session::run) and bad `.npy` files: clear kiln::Errors naming the input, the
// node (with its model file location) or the file — never a crash.

#include <unistd.h>

#include <cstdint>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>

#include "runtime/npy.hpp"
#include "test_util.hpp"

using kiln::test::error_of;
using kiln::test::contains;
using kiln::test::source_path;
using kiln::test::TempDir;

namespace {

namespace fs = std::filesystem;


std::string read_all(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string(std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>());
}

// A version 1.0 .npy image with the given header dict text (padded like NumPy) and data.
std::string npy(const std::string& dict, const std::string& data) {
  std::string header = dict;
  std::size_t total = 10 + header.size() + 1;
  header.append((64 - total % 64) % 64, ' ');
  header += '\n';
  std::string out = "\x93NUMPY\x01";
  out += '\0';
  out += static_cast<char>(header.size() & 0xff);
  out += static_cast<char>(header.size() >> 8);
  return out + header + data;
}

std::string fixture_model() { return source_path("tests/fixtures/classifier_d64_l2/model.yaml"); }

kiln::Tensor tokens(std::vector<std::int64_t> shape, std::vector<std::int64_t> ids) {
  return kiln::Tensor::from_i64(std::move(shape), ids);
}

std::string run_error(kiln::Session& session, const std::map<std::string, kiln::Tensor>& inputs) {
  return error_of([&] { session.run(inputs); });
}

}  // namespace

// ---- Session::run ----

TEST_CASE("runtime error: missing input") {
  kiln::Session session(kiln::Model::load(fixture_model()));
  CHECK(run_error(session, {}) == "error: missing input 'tokens' (i64[batch,seq])");
}

TEST_CASE("runtime error: unknown input name") {
  kiln::Session session(kiln::Model::load(fixture_model()));
  std::string msg = run_error(session, {{"tokens", tokens({1, 2}, {1, 2})}, {"mask", tokens({1, 2}, {1, 1})}});
  CHECK(msg == "error: model 'transformer_classifier' has no input 'mask' (its inputs: tokens)");
}

TEST_CASE("runtime error: wrong dtype") {
  kiln::Session session(kiln::Model::load(fixture_model()));
  std::string msg = run_error(session, {{"tokens", kiln::Tensor::from_f32({1, 3}, {1, 2, 3})}});
  CHECK(msg == "error: input 'tokens': expected i64[batch,seq], got f32[1,3]");
}

TEST_CASE("runtime error: wrong rank") {
  kiln::Session session(kiln::Model::load(fixture_model()));
  CHECK(run_error(session, {{"tokens", tokens({3}, {1, 2, 3})}}) ==
        "error: input 'tokens': expected i64[batch,seq], got i64[3]");
  CHECK(run_error(session, {{"tokens", tokens({1, 1, 3}, {1, 2, 3})}}) ==
        "error: input 'tokens': expected i64[batch,seq], got i64[1,1,3]");
}

TEST_CASE("runtime error: inconsistent symbol binding and fixed dims") {
  TempDir tmp;
  std::string path = tmp.write("add.yaml", R"(kiln: 1
name: pair
inputs:
  a: {dtype: f32, shape: [batch, 4]}
  b: {dtype: f32, shape: [batch, 4]}
outputs: [c]
nodes:
  - {op: add, in: [a, b], out: c}
)");
  kiln::Session session(kiln::Model::load(path));
  auto a2 = kiln::Tensor::empty(kiln::DType::f32, {2, 4});
  auto b3 = kiln::Tensor::empty(kiln::DType::f32, {3, 4});
  CHECK(run_error(session, {{"a", a2}, {"b", b3}}) == "error: input 'b': dim 'batch' is 3 here but 2 in input 'a'");
  auto b25 = kiln::Tensor::empty(kiln::DType::f32, {2, 5});
  CHECK(run_error(session, {{"a", a2}, {"b", b25}}) == "error: input 'b': expected f32[batch,4], got f32[2,5] (dim 1)");
  auto a0 = kiln::Tensor::empty(kiln::DType::f32, {0, 4});
  CHECK(run_error(session, {{"a", a0}, {"b", a0}}) == "error: input 'a': dim 0 ('batch') is 0");
  // The session still works after the errors.
  auto out = session.run({{"a", kiln::Tensor::from_f32({1, 4}, {1, 2, 3, 4})}, {"b", kiln::Tensor::from_f32({1, 4}, {4, 3, 2, 1})}});
  const float* c = out.at("c").data_as<float>();
  for (int i = 0; i < 4; ++i) CHECK(c[i] == 5.0f);
}

TEST_CASE("runtime error: token id out of range names the embedding node") {
  kiln::Session session(kiln::Model::load(fixture_model()));
  // The embedding node is on line 23 of the fixture.
  std::string where = fixture_model() + ":23:5: error: embedding 'x0': ";
  CHECK(run_error(session, {{"tokens", tokens({1, 4}, {1, 2, 1000, 3})}}) ==
        where + "index 1000 at flat position 2 is out of range [0, 1000)");
  CHECK(run_error(session, {{"tokens", tokens({2, 2}, {5, 6, 7, -1})}}) ==
        where + "index -1 at flat position 3 is out of range [0, 1000)");
  // A good batch afterwards still runs.
  auto out = session.run({{"tokens", tokens({1, 4}, {1, 2, 999, 0})}});
  CHECK(out.at("probs").shape() == std::vector<std::int64_t>{1, 4});
}

// ---- .npy ----

TEST_CASE("npy: f32 and i64 round-trip through write_npy and read_npy") {
  TempDir tmp;
  auto f = kiln::Tensor::from_f32({2, 3}, {0.5f, -1.0f, 2.25f, 1e-7f, 3.0e8f, 0.0f});
  kiln::write_npy(tmp.path("f.npy"), f);
  auto f2 = kiln::read_npy(tmp.path("f.npy"));
  CHECK(f2.dtype() == kiln::DType::f32);
  CHECK(f2.shape() == f.shape());
  CHECK(std::memcmp(f2.data(), f.data(), f.bytes()) == 0);

  auto i = kiln::Tensor::from_i64({4}, {0, -5, 1LL << 40, 999});
  kiln::write_npy(tmp.path("i.npy"), i);
  auto i2 = kiln::read_npy(tmp.path("i.npy"));
  CHECK(i2.dtype() == kiln::DType::i64);
  CHECK(i2.shape() == std::vector<std::int64_t>{4});
  CHECK(std::memcmp(i2.data(), i.data(), i.bytes()) == 0);

  // A 0-d tensor, too.
  auto s = kiln::Tensor::from_f32({}, {7.0f});
  kiln::write_npy(tmp.path("s.npy"), s);
  auto s2 = kiln::read_npy(tmp.path("s.npy"));
  CHECK(s2.shape().empty());
  CHECK(*s2.data_as<float>() == 7.0f);
}

TEST_CASE("npy error: file not found") {
  TempDir tmp;
  std::string path = tmp.path("absent.npy");
  CHECK(error_of([&] { kiln::read_npy(path); }) == path + ": error: cannot open: No such file or directory");
  std::string folder = tmp.path("");
  CHECK(error_of([&] { kiln::read_npy(folder); }) == folder + ": error: is a folder, not a .npy file");
}

TEST_CASE("npy error: bad magic") {
  TempDir tmp;
  std::string path = tmp.write("text.npy", "hello, this is not numpy data\n");
  CHECK(error_of([&] { kiln::read_npy(path); }) == path + ": error: not a .npy file (missing \\x93NUMPY magic)");
  path = tmp.write("empty.npy", "");
  CHECK(error_of([&] { kiln::read_npy(path); }) == path + ": error: not a .npy file (missing \\x93NUMPY magic)");
}

TEST_CASE("npy error: truncated data") {
  TempDir tmp;
  kiln::write_npy(tmp.path("full.npy"), kiln::Tensor::from_f32({2, 3}, {1, 2, 3, 4, 5, 6}));
  std::string full = read_all(tmp.path("full.npy"));
  std::string path = tmp.write("cut.npy", full.substr(0, full.size() - 4));
  CHECK(error_of([&] { kiln::read_npy(path); }) == path + ": error: expected 24 data bytes for shape [2,3], found 20");
  // Cut inside the header.
  path = tmp.write("cuthdr.npy", full.substr(0, 40));
  CHECK(error_of([&] { kiln::read_npy(path); }) == path + ": error: truncated .npy header");
}

TEST_CASE("npy error: unsupported dtype") {
  TempDir tmp;
  std::string path = tmp.write("c8.npy", npy("{'descr': '<c8', 'fortran_order': False, 'shape': (2,), }", std::string(16, '\0')));
  CHECK(error_of([&] { kiln::read_npy(path); }) ==
        path + ": error: unsupported npy dtype '<c8' (expected <f4, <f8, <i8, <i4, |i1, |u1 or |b1)");
  path = tmp.write("be.npy", npy("{'descr': '>f4', 'fortran_order': False, 'shape': (2,), }", std::string(8, '\0')));
  CHECK(contains(error_of([&] { kiln::read_npy(path); }), path + ": error: unsupported npy dtype '>f4'"));
}

TEST_CASE("npy error: malformed headers") {
  TempDir tmp;
  auto err = [&](const std::string& name, const std::string& bytes) {
    std::string path = tmp.write(name, bytes);
    std::string msg = error_of([&] { kiln::read_npy(path); });
    CHECK_MESSAGE(msg.rfind(path + ": error: ", 0) == 0, msg);
    return msg.substr(std::min(msg.size(), path.size() + 9));
  };
  CHECK(err("fortran.npy", npy("{'descr': '<f4', 'fortran_order': True, 'shape': (2,), }", std::string(8, '\0'))) ==
        "Fortran-ordered arrays are not supported (save with np.ascontiguousarray)");
  CHECK(err("noshape.npy", npy("{'descr': '<f4', 'fortran_order': False, }", std::string(8, '\0'))) ==
        "npy header has no 'shape' field");
  CHECK(err("badshape.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (2, x), }", std::string(8, '\0'))) ==
        "npy header has an invalid shape (2, x)");
  CHECK(err("negshape.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (-2,), }", "")) ==
        "npy header has an invalid shape (-2,)");
  CHECK(err("notuple.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': 5, }", std::string(20, '\0'))) ==
        "npy header has an invalid shape 5 (expected a tuple)");
  CHECK(err("emptyshape.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape':, }", "")) ==
        "npy header has an invalid shape  (expected a tuple)");
  CHECK(err("nocolon.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape'", "")) ==
        "npy header is malformed near 'shape'");
  CHECK(err("dangling.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape':", "")) ==
        "npy header is malformed near 'shape'");
  // A shape whose byte size overflows is rejected before any allocation.
  CHECK(err("huge.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (4294967296, 4294967296), }", "")) ==
        "npy header has a shape too large to load (4294967296, 4294967296)");
  CHECK(err("bigdata.npy", npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1000000000000,), }", "")) ==
        "expected 4000000000000 data bytes for shape [1000000000000], found 0");
  std::string v9 = npy("{'descr': '<f4', 'fortran_order': False, 'shape': (1,), }", std::string(4, '\0'));
  v9[6] = 9;
  CHECK(err("v9.npy", v9) == "unsupported .npy format version 9");
}
