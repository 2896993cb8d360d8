// The kilnc command line: help, check and run on the shipped example, and bad invocations (a non-zero
// exit with the message on stderr). Runs the built binary (KILNC_PATH) through the shell.

#include <sys/wait.h>
#include <unistd.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "runtime/npy.hpp"
#include "test_util.hpp"

using kiln::test::max_abs_diff;
using kiln::test::contains;
using kiln::test::TempDir;
using kiln::test::source_path;

namespace {

namespace fs = std::filesystem;

struct Result {
  int code = -1;
  std::string out;  // what was captured (see run_kilnc)
};

std::string quote(const std::string& s) {
  std::string out = "'";
  for (char c : s) out += c == '\'' ? std::string("'\\''") : std::string(1, c);
  return out + "'";
}

// Runs `kilnc ARGS` in the source folder. Captures stdout and stderr together, or only stderr.
Result run_kilnc(const std::string& args, bool stderr_only = false) {
  std::string cmd = "cd " + quote(KILN_SOURCE_DIR) + " && " + quote(KILNC_PATH) + " " + args +
                    (stderr_only ? " 2>&1 >/dev/null" : " 2>&1");
  Result r;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : 128 + (WIFSIGNALED(status) ? WTERMSIG(status) : 0);
  return r;
}


const char* kExampleModel = "examples/transformer_classifier/transformer_classifier.yaml";
const char* kExampleTokens = "examples/transformer_classifier/tokens.npy";

}  // namespace

TEST_CASE("kilnc --help lists the subcommands") {
  Result r = run_kilnc("--help");
  CHECK(r.code == 0);
  CHECK(contains(r.out, "check"));
  CHECK(contains(r.out, "run"));
  CHECK(contains(r.out, "ops"));
}

TEST_CASE("kilnc run --help mentions --input") {
  Result r = run_kilnc("run --help");
  CHECK(r.code == 0);
  CHECK(contains(r.out, "--input"));
  CHECK(contains(r.out, "--output-dir"));
}

TEST_CASE("kilnc ops lists the operators") {
  Result r = run_kilnc("ops");
  CHECK(r.code == 0);
  for (const char* op : {"embedding", "linear", "attention", "layer_norm", "softmax"}) CHECK_MESSAGE(contains(r.out, op), op);
}

TEST_CASE("kilnc check prints the IR") {
  Result r = run_kilnc("check tests/fixtures/classifier_d64_l2/model.yaml");
  CHECK(r.code == 0);
  CHECK(contains(r.out, "graph transformer_classifier("));
  CHECK(contains(r.out, "%tokens: i64[batch,seq]"));
}

TEST_CASE("kilnc run writes outputs that match PyTorch") {
  TempDir tmp;
  std::string out_dir = tmp.path("out");
  Result r = run_kilnc(std::string("run ") + kExampleModel + " --input tokens=" + kExampleTokens + " --output-dir " + quote(out_dir));
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(contains(r.out, "probs: f32["));
  std::string probs_path = out_dir + "/probs.npy";
  CHECK(contains(r.out, "wrote " + probs_path));
  REQUIRE(fs::exists(probs_path));
  kiln::Tensor probs = kiln::read_npy(probs_path);
  kiln::Tensor expected = kiln::read_npy(source_path("examples/transformer_classifier/expected_probs.npy"));
  double err = max_abs_diff(probs, expected);
  CHECK_MESSAGE(err <= 1e-4, "max abs error " << err);
}

TEST_CASE("kilnc run and compile accept an .onnx model") {
  TempDir tmp;
  std::string out_dir = tmp.path("out");
  Result r = run_kilnc("run tests/fixtures/onnx/mlp_gemm.onnx --input x=tests/fixtures/onnx/x.npy --output-dir " +
                       quote(out_dir));
  INFO(r.out);
  REQUIRE(r.code == 0);
  kiln::Tensor y = kiln::read_npy(out_dir + "/y.npy");
  CHECK(max_abs_diff(y, kiln::read_npy(source_path("tests/fixtures/onnx/y.npy"))) <= 1e-5);
  std::string plan = tmp.path("mlp.kplan");
  Result c = run_kilnc("compile tests/fixtures/onnx/mlp_gemm.onnx -o " + quote(plan));
  INFO(c.out);
  CHECK(c.code == 0);
  CHECK(fs::exists(plan));
}

TEST_CASE("kilnc import writes a YAML model and weights that kilnc runs") {
  TempDir tmp;
  const std::string dir = tmp.path("imported");
  Result r = run_kilnc("import tests/fixtures/onnx/mlp_gemm.onnx -o " + quote(dir));
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(contains(r.out, "model.yaml (3 nodes)"));
  Result run = run_kilnc("run " + quote(dir + "/model.yaml") + " --input x=tests/fixtures/onnx/x.npy --output-dir " +
                         quote(tmp.path("out")));
  INFO(run.out);
  REQUIRE(run.code == 0);
  CHECK(max_abs_diff(kiln::read_npy(tmp.path("out/y.npy")), kiln::read_npy(source_path("tests/fixtures/onnx/y.npy"))) <=
        1e-5);
  Result yaml_in = run_kilnc(std::string("import ") + kExampleModel + " -o " + quote(tmp.path("x")), true);
  CHECK(yaml_in.code != 0);
  CHECK(contains(yaml_in.out, "error: import reads .onnx models (got '.yaml')"));
  Result bad = run_kilnc("import tests/fixtures/onnx/unsupported.onnx -o " + quote(tmp.path("y")), true);
  CHECK(bad.code != 0);
  CHECK(contains(bad.out, "3 node(s) use ops that Kiln cannot import"));
  CHECK_FALSE(fs::exists(tmp.path("y/model.yaml")));
}

TEST_CASE("kilnc error: missing model file") {
  Result r = run_kilnc("check no/such/model.yaml", true);
  CHECK(r.code != 0);
  CHECK(contains(r.out, "no/such/model.yaml: error: cannot open model file: No such file or directory"));
  r = run_kilnc(std::string("run no/such/model.yaml --input tokens=") + kExampleTokens, true);
  CHECK(r.code != 0);
  CHECK(contains(r.out, "no/such/model.yaml: error: cannot open model file"));
}

TEST_CASE("kilnc error: --input without '='") {
  Result r = run_kilnc(std::string("run ") + kExampleModel + " --input " + kExampleTokens, true);
  CHECK(r.code != 0);
  CHECK(contains(r.out, std::string("error: --input expects NAME=FILE.npy, got '") + kExampleTokens + "'"));
}

TEST_CASE("kilnc error: --input file missing or not .npy") {
  Result r = run_kilnc(std::string("run ") + kExampleModel + " --input tokens=no_such.npy", true);
  CHECK(r.code != 0);
  CHECK(contains(r.out, "no_such.npy: error: cannot open: No such file or directory"));
  r = run_kilnc(std::string("run ") + kExampleModel + " --input tokens=" + kExampleModel, true);
  CHECK(r.code != 0);
  CHECK(contains(r.out, std::string(kExampleModel) + ": error: not a .npy file"));
  // A tensor of the wrong dtype for the input.
  r = run_kilnc(std::string("run ") + kExampleModel + " --input tokens=examples/transformer_classifier/expected_probs.npy", true);
  CHECK(r.code != 0);
  CHECK(contains(r.out, "error: input 'tokens': expected i64[batch,seq], got f32["));
}

TEST_CASE("kilnc error: unknown subcommand and missing arguments") {
  Result r = run_kilnc("frobnicate", true);
  CHECK(r.code != 0);
  CHECK(contains(r.out, "not expected: frobnicate"));
  r = run_kilnc("", true);
  CHECK(r.code != 0);
  CHECK(!r.out.empty());
  r = run_kilnc(std::string("run ") + kExampleModel, true);
  CHECK(r.code != 0);
  CHECK(contains(r.out, "--input"));
}

TEST_CASE("kilnc error: a model with a YAML error names the file, line and column") {
  TempDir tmp;
  std::string model = tmp.path("broken.yaml");
  {
    std::ofstream out(model);
    out << "kiln: 1\n"
           "inputs: {x: {dtype: f32, shape: [b, 4]}}\n"
           "outputs: [y]\n"
           "nodes:\n"
           "  - {op: relu, in: [x], out: y, alpha: 1}\n";
  }
  Result r = run_kilnc("check " + quote(model), true);
  CHECK(r.code != 0);
  CHECK(contains(r.out, model + ":5:33: error: relu 'y': unknown attribute 'alpha'"));

  {
    std::ofstream out(model);
    out << "kiln: 1\n"
           "inputs: {x: {dtype: f32, shape: [b, 4]}\n";  // unclosed flow mapping
  }
  r = run_kilnc("check " + quote(model), true);
  CHECK(r.code != 0);
  CHECK(contains(r.out, model + ":"));
  CHECK(contains(r.out, ": error: invalid YAML: "));
}

TEST_CASE("kilnc error: an unknown subcommand is named in the message") {
  Result r = run_kilnc("frobnicate", true);
  CHECK(r.code != 0);
  CHECK(contains(r.out, "frobnicate"));
}

TEST_CASE("kilnc error: no subcommand lists the subcommands") {
  Result r = run_kilnc("", true);
  CHECK(r.code != 0);
  CHECK(contains(r.out, "expected a subcommand: check, run, profile, dot, import, ops, passes, compile, inspect, bench or generate"));
}

TEST_CASE("kilnc profile times every kernel and names what fused nodes absorbed") {
  Result r = run_kilnc(std::string("profile ") + kExampleModel + " --input tokens=" + kExampleTokens + " --runs 3", false);
  CHECK(r.code == 0);
  CHECK(contains(r.out, "median ms"));
  CHECK(contains(r.out, "attention 'encoder_layer.0/a'"));
  CHECK(contains(r.out, "total of the per-node medians over 3 runs"));
  CHECK(contains(r.out, "linear 'encoder_layer.0/h': absorbed relu 'encoder_layer.0/h1'"));
  // Every kernel of the -O2 plan has a row (14 kernels), then the total row.
  std::size_t rows = 0;
  for (std::size_t at = r.out.find("%  "); at != std::string::npos; at = r.out.find("%  ", at + 1)) ++rows;
  CHECK(rows == 15);
}

TEST_CASE("kilnc dot prints the graph before or after the passes") {
  Result o2 = run_kilnc(std::string("dot ") + kExampleModel, false);
  CHECK(o2.code == 0);
  CHECK(contains(o2.out, "digraph \"transformer_classifier\" {"));
  CHECK(contains(o2.out, "attention 'encoder_layer.0/a'"));
  CHECK(contains(o2.out, "activation=\\\"relu\\\""));  // fused at -O2 (quotes escaped for DOT)
  CHECK(!contains(o2.out, "relu 'encoder_layer.0/h1'"));
  CHECK(contains(o2.out, "in0 -> n0 [label=\"i64[batch,seq]\"]"));
  Result o0 = run_kilnc(std::string("dot -O0 ") + kExampleModel, false);
  CHECK(o0.code == 0);
  CHECK(contains(o0.out, "relu 'encoder_layer.0/h1'"));
  CHECK(o0.out.back() == '\n');
}

TEST_CASE("kilnc run prints and writes bool and integer outputs, and runs a plan file of an ONNX model with them") {
  TempDir tmp;
  const std::string inputs = " --input ids=tests/fixtures/onnx/math/ids.npy --input x=tests/fixtures/onnx/math/x.npy";
  std::string plan = tmp.path("math.kplan");
  Result c = run_kilnc("compile tests/fixtures/onnx/math/model.onnx -o " + quote(plan));
  INFO(c.out);
  REQUIRE(c.code == 0);
  std::string out_dir = tmp.path("out");
  Result r = run_kilnc("run " + quote(plan) + inputs + " --output-dir " + quote(out_dir));
  INFO(r.out);
  REQUIRE(r.code == 0);
  CHECK(contains(r.out, "c: bool[2,5,1]\n  true\n  false\n"));  // ids 5, 3: (ids > 3) & (ids <= 7)
  kiln::Tensor c_npy = kiln::read_npy(out_dir + "/c.npy");
  kiln::Tensor want = kiln::read_npy(source_path("tests/fixtures/onnx/math/c.npy"));
  REQUIRE(c_npy.dtype() == kiln::DType::boolean);
  REQUIRE(c_npy.numel() == want.numel());
  for (std::int64_t i = 0; i < want.numel(); ++i) CHECK(c_npy.data_as<std::uint8_t>()[i] == want.data_as<std::uint8_t>()[i]);
  CHECK(max_abs_diff(kiln::read_npy(out_dir + "/a.npy"), kiln::read_npy(source_path("tests/fixtures/onnx/math/a.npy"))) <=
        1e-5);
}
