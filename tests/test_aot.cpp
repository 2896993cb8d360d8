// Models compiled into programs by kiln_add_model (cmake/KilnModel.cmake): YAML -> C++ -> build -> run
// equals YAML -> run. examples/aot_classifier embeds the plan with fixed dims; kiln_aot_dynamic
// (tests/aot/) reads the plan from a side file with seq bound to 1..64. Both are built with
// -Wall -Wextra -Wpedantic -Wshadow -Wconversion -Werror, so building them checks the generated code
// is warning-free.

#include <sys/wait.h>

#include <cstdio>
#include <fstream>
#include <sstream>

#include "ops/isa.hpp"
#include "runtime/kplan.hpp"
#include "runtime/npy.hpp"
#include "test_util.hpp"

using kiln::test::contains;
using kiln::test::max_abs_diff;
using kiln::test::source_path;
using kiln::test::TempDir;

namespace {

struct Result {
  int code = -1;
  std::string out;  // stdout and stderr
};

Result run(const std::string& cmd) {
  Result r;
  FILE* pipe = ::popen((cmd + " 2>&1").c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string ids_of(const kiln::Tensor& tokens) {
  std::string s;
  for (std::int64_t i = 0; i < tokens.numel(); ++i) s += " " + std::to_string(tokens.data_as<std::int64_t>()[i]);
  return s;
}

// The values printed on the line "NAME: v v v" as a tensor of `shape`.
kiln::Tensor parse_line(const std::string& out, const std::string& name, std::vector<std::int64_t> shape) {
  auto at = out.find(name + ":");
  REQUIRE_MESSAGE(at != std::string::npos, out);
  std::istringstream line(out.substr(at + name.size() + 1, out.find('\n', at) - at - name.size() - 1));
  std::vector<float> values;
  for (double v; line >> v;) values.push_back(static_cast<float>(v));
  kiln::Tensor t = kiln::Tensor::empty(kiln::DType::f32, shape);
  REQUIRE(static_cast<std::int64_t>(values.size()) == t.numel());
  std::copy(values.begin(), values.end(), t.data_as<float>());
  return t;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

// The plans these programs carry were compiled at build time, without an instruction-set cap. Under a
// lower cap (scripts/test.sh's second pass: KILN_MAX_ISA=avx2 on an AVX-512 host) loading them must be
// refused with a message naming both instruction sets; returns whether that is the case (checked).
bool refused_under_cap(const Result& r) {
  if (kiln::isa::effective() == kiln::isa::cpu()) return false;
  INFO(r.out);
  CHECK(r.code == 1);
  CHECK(contains(r.out, "plan file was built for "));
  CHECK(contains(r.out, ", beyond the instruction-set cap in force (oneDNN: " + kiln::isa_name(kiln::host_isa()) +
                            "; Kiln: " + kiln::isa::describe() + "); recompile it here"));
  return true;
}

}  // namespace

TEST_CASE("aot_classifier (embedded plan, fixed dims) gives the YAML model's outputs") {
  const std::string dir = "examples/transformer_classifier/";
  auto tokens = kiln::read_npy(source_path(dir + "tokens.npy"));
  REQUIRE(tokens.shape() == std::vector<std::int64_t>{1, 32});
  Result r = run(std::string(AOT_CLASSIFIER_PATH) + ids_of(tokens));
  if (refused_under_cap(r)) return;
  REQUIRE_MESSAGE(r.code == 0, r.out);
  kiln::Tensor aot = parse_line(r.out, "probs", {1, 4});
  kiln::Session yaml(kiln::Model::load(source_path(dir + "transformer_classifier.yaml")));
  auto expected = yaml.run({{"tokens", tokens}}).at("probs");
  CHECK(max_abs_diff(aot, expected) <= 1e-7);  // printed with 9 significant digits
  CHECK(max_abs_diff(aot, kiln::read_npy(source_path(dir + "expected_probs.npy"))) <= 1e-4);
  CHECK(contains(r.out, "time per inference: median"));
  // Wrong usage is reported, not run.
  CHECK(run(std::string(AOT_CLASSIFIER_PATH) + " 1 2 3").code == 2);
}

TEST_CASE("the generated header declares named, shaped members, and the depfile names the weights") {
  const std::string gen = AOT_CLASSIFIER_GEN_DIR;
  const std::string header = slurp(gen + "/transformer_classifier.hpp");
  CHECK(contains(header, "class TransformerClassifier {"));
  CHECK(contains(header, "  /// input 'tokens': i64[1,32]\n  alignas(64) std::int64_t tokens[1][32] = {};\n"));
  CHECK(contains(header, "  /// output 'probs': f32[1,4]\n  alignas(64) float probs[1][4] = {};\n"));
  CHECK(contains(header, "  void run();\n"));
  const std::string source = slurp(gen + "/transformer_classifier.cpp");
  CHECK(contains(source, "kiln::Model::load_plan(kPlanWords, kPlanBytes,"));
  CHECK(!contains(source, "yaml"));  // no model file is read at run time
  const std::string dep = slurp(gen + "/transformer_classifier.d");
  CHECK(contains(dep, "transformer_classifier.hpp"));
  CHECK(contains(dep, ": "));
  CHECK(contains(dep, "examples/transformer_classifier/transformer_classifier.yaml"));
  CHECK(contains(dep, "examples/transformer_classifier/transformer_classifier.safetensors"));
}

TEST_CASE("kiln_aot_dynamic (side plan file, seq=1..64) matches the YAML model and PyTorch") {
  const std::string dir = "tests/fixtures/classifier_d64_l2/";
  kiln::Session yaml(kiln::Model::load(source_path(dir + "model.yaml")));
  for (const char* tag : {"_b1_s8.npy", "_b4_s33.npy"}) {
    CAPTURE(tag);
    auto tokens = kiln::read_npy(source_path(dir + "tokens" + tag));
    const auto& s = tokens.shape();
    Result r = run(std::string(AOT_DYNAMIC_PATH) + " - " + std::to_string(s[0]) + " " + std::to_string(s[1]) + ids_of(tokens));
    if (refused_under_cap(r)) return;
    REQUIRE_MESSAGE(r.code == 0, r.out);
    auto expected = yaml.run({{"tokens", tokens}});
    for (const char* name : {"logits", "probs"}) {
      kiln::Tensor aot = parse_line(r.out, name, {s[0], 4});
      CHECK(max_abs_diff(aot, expected.at(name)) <= 1e-6);
      CHECK(max_abs_diff(aot, kiln::read_npy(source_path(dir + name + tag))) <= 1e-4);
    }
  }
}

TEST_CASE("kiln_aot_dynamic: a dim outside the compiled range and a missing plan file are clear errors") {
  std::string ids;
  for (int i = 0; i < 65; ++i) ids += " 1";
  Result r = run(std::string(AOT_DYNAMIC_PATH) + " - 1 65" + ids);
  CHECK(r.code == 1);
  if (!refused_under_cap(r))
    CHECK(r.out == "error: input 'tokens': dim 'seq' is 65, outside the range 1..64 the model was compiled for "
                 "(kilnc compile --shape seq=MIN..MAX)\n");
  TempDir tmp;
  const std::string missing = tmp.path("none.kplan");
  r = run(std::string(AOT_DYNAMIC_PATH) + " " + missing + " 1 1 1");
  CHECK(r.code == 1);
  CHECK(r.out == missing + ": error: cannot open plan file: No such file or directory\n");
}

TEST_CASE("kiln_add_model in a project outside Kiln's build, with imported Kiln::kilnc and Kiln::kiln") {
  // Configured and built from an empty folder: what an application does against an installed Kiln.
  TempDir tmp;
  const std::string build = tmp.path("build");
  Result r = run("cmake -S " + source_path("tests/aot/standalone") + " -B " + build + " -DCMAKE_BUILD_TYPE=Release" +
                 " -DCMAKE_CXX_COMPILER=" + KILN_CXX_COMPILER + " -DKILN_SOURCE_DIR=" + KILN_SOURCE_DIR +
                 " -DKILN_BUILD_DIR=" + KILN_BUILD_DIR + " && cmake --build " + build + " -j2");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(contains(r.out, "kilnc: compiling"));
  const std::string dir = "tests/fixtures/classifier_d64_l2/";
  auto tokens = kiln::read_npy(source_path(dir + "tokens_b1_s8.npy"));
  r = run(build + "/app" + ids_of(tokens));
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(max_abs_diff(parse_line(r.out, "probs", {1, 4}), kiln::read_npy(source_path(dir + "probs_b1_s8.npy"))) <= 1e-4);
}
