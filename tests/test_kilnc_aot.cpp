// kilnc compile, inspect and bench through the built binary: plan files run like their YAML models,
// what inspect and bench print, the progress line, and bad invocations (a non-zero exit and the message).

#include <sys/wait.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "ops/gemm.hpp"
#include "ops/isa.hpp"
#include "runtime/kplan.hpp"
#include "runtime/npy.hpp"
#include "test_util.hpp"

using kiln::test::contains;
using kiln::test::max_abs_diff;
using kiln::test::source_path;
using kiln::test::TempDir;

namespace {

namespace fs = std::filesystem;

struct Result {
  int code = -1;
  std::string out;
};

// Runs `kilnc ARGS` in the source folder with `env` prepended; captures stdout and stderr, or stderr only.
Result kilnc(const std::string& args, bool stderr_only = false, const std::string& env = "") {
  std::string cmd = "cd '" + std::string(KILN_SOURCE_DIR) + "' && " + env + " '" + KILNC_PATH + "' " + args +
                    (stderr_only ? " 2>&1 >/dev/null" : " 2>&1");
  Result r;
  FILE* pipe = ::popen(cmd.c_str(), "r");
  REQUIRE(pipe != nullptr);
  char buf[4096];
  std::size_t n = 0;
  while ((n = std::fread(buf, 1, sizeof buf, pipe)) > 0) r.out.append(buf, n);
  int status = ::pclose(pipe);
  r.code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  return r;
}

std::string slurp(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

const std::string kModel = "examples/transformer_classifier/transformer_classifier.yaml";

// The bytes of the d128 classifier's weights as this build compiles them (its GEMM weights in panels where
// Kiln's GEMM runs, whose rows are padded to whole panels), which kilnc reports.
std::string weight_bytes_of_model() {
  return std::to_string(kiln::Model::load(source_path(kModel)).weight_bytes());
}
const std::string kTokens = "examples/transformer_classifier/tokens.npy";

}  // namespace

TEST_CASE("kilnc compile, then kilnc run on the plan file prints and writes what the YAML model gives") {
  TempDir tmp;
  const std::string plan = tmp.path("tc.kplan");
  Result c = kilnc("compile " + kModel + " -o " + plan);
  REQUIRE_MESSAGE(c.code == 0, c.out);
  CHECK(contains(c.out, "compiled " + kModel + " (-O2) for " + kiln::isa_name(kiln::host_isa()) +
                            ": 14 nodes, 27 weight tensors (" + weight_bytes_of_model() + " bytes), plan "));
  CHECK(contains(c.out, "wrote " + plan));
  Result from_plan = kilnc("run " + plan + " --input tokens=" + kTokens + " --output-dir " + tmp.path("p"));
  Result from_yaml = kilnc("run " + kModel + " --input tokens=" + kTokens + " --output-dir " + tmp.path("y"));
  REQUIRE_MESSAGE(from_plan.code == 0, from_plan.out);
  REQUIRE(from_yaml.code == 0);
  auto probs_line = [](const std::string& out) { return out.substr(0, out.find("wrote")); };
  CHECK(probs_line(from_plan.out) == probs_line(from_yaml.out));
  CHECK(max_abs_diff(kiln::read_npy(tmp.path("p/probs.npy")), kiln::read_npy(tmp.path("y/probs.npy"))) == 0.0);
}

TEST_CASE("kilnc inspect describes a plan file") {
  TempDir tmp;
  const std::string plan = tmp.path("tc.kplan");
  REQUIRE(kilnc("compile " + kModel + " -o " + plan + " --shape batch=1 --shape seq=1..64 --isa sse41 -q").code == 0);
  Result r = kilnc("inspect " + plan);
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(contains(r.out, "format version:  " + std::to_string(kiln::kKplanVersion) + "\n"));
  if (kiln::gemm::enabled())  // the d128 classifier's 9 linear weights, as Kiln's GEMM panels
    CHECK(contains(r.out, "packed weights:  1581056 bytes for 9 weights (Kiln's GEMM panels, mapped at load)\n"));
  CHECK(contains(r.out, "instruction set: sse41 (this CPU: " + kiln::isa_name(kiln::host_isa()) + ")\n"));
  CHECK(contains(r.out, "size:            " + std::to_string(fs::file_size(plan)) + " bytes (weights " + weight_bytes_of_model() + " bytes in 27 tensors)\n"));
  CHECK(contains(r.out, " (verified)\n"));
  CHECK(contains(r.out, "model:           transformer_classifier, compiled from " + kModel + " at -O2\n"));
  CHECK(contains(r.out, "bound dims:      batch=1 seq=1..64\n"));
  CHECK(contains(r.out, "inputs:\n  tokens: i64[1,seq]\noutputs:\n  probs: f32[1,4]\n"));
  CHECK(contains(r.out, "ops:             14 nodes: attention x2 embedding x1 layer_norm x4 linear x5 reduce_mean x1 softmax x1\n"));
  CHECK(contains(r.out, "memory plans compiled at build time:\n  tokens[1,1]: 14 kernels, activation arena "));
  CHECK(contains(r.out, "  tokens[1,64]: 14 kernels, activation arena "));
  CHECK(!contains(r.out, "%probs = softmax"));
  CHECK(contains(kilnc("inspect --ir " + plan).out, "%probs = softmax(%logits) {axis=-1}"));
}

TEST_CASE("plans across instruction sets: refused under a lower cap naming both, and run when compiled under it") {
  // What happens when a plan compiled on an AVX-512 host meets an AVX2 one, reproduced on any host through
  // KILN_MAX_ISA (docs/portability.md). Every level below this CPU's is tried (none on a CPU without AVX2).
  TempDir tmp;
  const std::string native = tmp.path("native.kplan");
  const std::string uncapped = "env -u KILN_MAX_ISA -u ONEDNN_MAX_CPU_ISA -u DNNL_MAX_CPU_ISA";
  Result c = kilnc("compile " + kModel + " -o " + native + " -q", false, uncapped);
  REQUIRE_MESSAGE(c.code == 0, c.out);
  Result want = kilnc("run " + kModel + " --input tokens=" + kTokens + " --output-dir " + tmp.path("y"), false, uncapped);
  REQUIRE_MESSAGE(want.code == 0, want.out);
  for (auto level : {kiln::isa::Level::sse41, kiln::isa::Level::avx2}) {
    if (static_cast<int>(level) >= static_cast<int>(kiln::isa::cpu())) continue;
    const std::string name = kiln::isa::name(level);
    CAPTURE(name);
    const std::string capped = uncapped + " KILN_MAX_ISA=" + name;
    Result r = kilnc("run " + native + " --input tokens=" + kTokens, false, capped);
    CHECK(r.code == 1);
    CHECK(contains(r.out, native + ": error: plan file was built for "));
    CHECK(contains(r.out, ", beyond the instruction-set cap in force (oneDNN: "));
    CHECK(contains(r.out, "; Kiln: " + name + " (capped by KILN_MAX_ISA; CPU: " + kiln::isa::name(kiln::isa::cpu()) +
                              ")); recompile it here, or compile it with KILN_MAX_ISA=" + name + " in kilnc's environment\n"));
    // The cure the message names: compiled under the cap, the plan runs there and gives the same outputs.
    const std::string plan = tmp.path(name + ".kplan");
    REQUIRE(kilnc("compile " + kModel + " -o " + plan + " -q", false, capped).code == 0);
    const std::string out = tmp.path(name);
    r = kilnc("run " + plan + " --input tokens=" + kTokens + " --output-dir " + out, false, capped);
    REQUIRE_MESSAGE(r.code == 0, r.out);
    CHECK(max_abs_diff(kiln::read_npy(out + "/probs.npy"), kiln::read_npy(tmp.path("y/probs.npy"))) <= 1e-5);
    // A plan for a lower instruction set also runs where the CPU has more.
    r = kilnc("run " + plan + " --input tokens=" + kTokens, false, uncapped);
    CHECK_MESSAGE(r.code == 0, r.out);
  }
}

TEST_CASE("KILN_MAX_ISA with an unknown value is refused, naming the variable and the accepted values") {
  Result r = kilnc("run " + kModel + " --input tokens=" + kTokens, false, "KILN_MAX_ISA=avx3");
  CHECK(r.code == 1);
  CHECK(contains(r.out, "error: KILN_MAX_ISA=avx3: unknown instruction set (expected avx512, avx2 or sse41)\n"));
}

TEST_CASE("ONEDNN_MAX_CPU_ISA caps Kiln's kernels too, and --explain says which instruction set runs") {
  const std::string uncapped = "env -u KILN_MAX_ISA -u ONEDNN_MAX_CPU_ISA -u DNNL_MAX_CPU_ISA";
  Result r = kilnc("run " + kModel + " --input tokens=" + kTokens + " --explain", false, uncapped);
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(contains(r.out, std::string("instruction set: ") + kiln::isa::name(kiln::isa::cpu()) + "\n"));
  if (kiln::isa::cpu() == kiln::isa::Level::sse41) return;  // nothing below to cap to
  r = kilnc("run " + kModel + " --input tokens=" + kTokens + " --explain", false, uncapped + " ONEDNN_MAX_CPU_ISA=SSE41");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(contains(r.out, std::string("instruction set: sse41 (capped by ONEDNN_MAX_CPU_ISA; CPU: ") +
                            kiln::isa::name(kiln::isa::cpu()) + ")\n"));
  CHECK(!contains(r.out, "[kiln:gemm"));  // no Kiln kernel below AVX2: oneDNN runs the linear layers
}

TEST_CASE("kilnc bench reports load time, latency percentiles and throughput") {
  Result r = kilnc("bench " + kModel + " --shape batch=2 --shape seq=16 --runs 20 --warmup 2 --threads 1");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  CHECK(contains(r.out, "load: median "));
  CHECK(contains(r.out, "threads: 1, warm-up: first run "));
  CHECK(contains(r.out, "(compiles the plan) + 2 runs\n"));
  CHECK(contains(r.out, "latency over 20 runs: min "));
  for (const char* field : {" p50 ", " p90 ", " p99 ", " max ", " mean "}) CHECK(contains(r.out, field));
  CHECK(contains(r.out, "throughput: "));
  CHECK(contains(r.out, " inferences/s\n"));
  r = kilnc("bench " + kModel + " --input tokens=" + kTokens + " --runs 5 --load-runs 3");
  CHECK(r.code == 0);
  CHECK(contains(r.out, "over 3 loads"));
  r = kilnc("bench " + kModel + " --load-only");
  CHECK(r.code == 0);
  CHECK(!contains(r.out, "latency"));
  r = kilnc("bench " + kModel + " --shape batch=1", true);
  CHECK(r.code == 1);
  CHECK(r.out == "error: input 'tokens' has dim 'seq': give its size with --shape seq=N, or the input with --input tokens=FILE.npy\n");
}

TEST_CASE("kilnc compile shows progress on stderr once it takes longer than the threshold") {
  TempDir tmp;
  // The threshold is 1 s; 0 makes this small compile show it.
  Result r = kilnc("compile " + kModel + " -o " + tmp.path("a.kplan") + " -q", true, "KILNC_PROGRESS_AFTER_MS=0");
  CHECK(r.code == 0);
  CHECK(contains(r.out, "kilnc: compiling " + kModel + ": "));
  CHECK(contains(r.out, "kilnc: compiling " + kModel + ": done in "));
  r = kilnc("compile " + kModel + " -o " + tmp.path("b.kplan") + " -q", true, "KILNC_PROGRESS_AFTER_MS=60000");
  CHECK(r.code == 0);
  CHECK(r.out.empty());
}

TEST_CASE("kilnc compile --emit cpp --weights file writes the header, the source and the plan beside them") {
  TempDir tmp;
  Result r = kilnc("compile " + kModel + " --emit cpp --weights file -o " + tmp.path("gen") + " --name tc --class Tc --namespace demo");
  REQUIRE_MESSAGE(r.code == 0, r.out);
  const std::string header = slurp(tmp.path("gen/tc.hpp"));
  CHECK(contains(header, "namespace demo {"));
  CHECK(contains(header, "class Tc {"));
  CHECK(contains(header, "static constexpr const char* kPlanFile = \"" + tmp.path("gen/tc.kplan") + "\";"));
  CHECK(contains(header, "  /// input 'tokens': i64[batch,seq]\n  kiln::Tensor tokens;\n"));
  CHECK(contains(slurp(tmp.path("gen/tc.cpp")), "Tc::Tc(const std::string& plan_file) : model_(kiln::Model::load(plan_file))"));
  CHECK(kilnc("inspect " + tmp.path("gen/tc.kplan")).code == 0);
}

TEST_CASE("kilnc compile errors: bad options, a failing compile leaves an existing output untouched") {
  TempDir tmp;
  Result r = kilnc("compile " + kModel + " -o x --emit exe", true);
  CHECK(r.code == 1);
  CHECK(r.out == "error: --emit expects plan or cpp, got 'exe'\n");
  r = kilnc("compile " + kModel + " -o x --isa avx9000", true);
  CHECK(r.code == 1);
  CHECK(contains(r.out, "error: --isa 'avx9000': unknown instruction set (expected sse41, avx, avx2,"));
  r = kilnc("compile " + kModel + " -o x --shape seq=abc", true);
  CHECK(r.code == 1);
  CHECK(r.out == "error: --shape 'seq=abc': expected a positive integer or MIN..MAX after '='\n");
  const std::string missing_dir = tmp.path("no/such/dir/x.kplan");
  r = kilnc("compile " + kModel + " -o " + missing_dir, true);
  CHECK(r.code == 1);
  CHECK(r.out == missing_dir + ": error: cannot create file: No such file or directory\n");

  // A model that fails to compile: the previous plan file stays as it was, and no temporary is left.
  const std::string out = tmp.write("model.kplan", "previous contents");
  const std::string broken = tmp.write("broken.yaml", "kiln: 1\ninputs: {x: {dtype: f32, shape: [4]}}\noutputs: [y]\nnodes:\n  - {op: relu, in: [z], out: y}\n");
  r = kilnc("compile " + broken + " -o " + out, true);
  CHECK(r.code == 1);
  CHECK(contains(r.out, broken + ":5:21: "));
  CHECK(contains(r.out, "error: undefined value 'z'"));
  CHECK(slurp(out) == "previous contents");
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(tmp.dir())) ++files;
  CHECK(files == 2);
}

TEST_CASE("kilnc run on a corrupt plan file exits 1 with the message") {
  TempDir tmp;
  const std::string plan = tmp.path("tc.kplan");
  REQUIRE(kilnc("compile " + kModel + " -o " + plan + " -q").code == 0);
  std::string bytes = slurp(plan);
  bytes[bytes.size() / 2] ^= 1;
  tmp.write("tc.kplan", bytes);
  Result r = kilnc("run " + plan + " --input tokens=" + kTokens, true);
  CHECK(r.code == 1);
  CHECK(contains(r.out, plan + ": error: corrupt plan file: checksum mismatch: the header says "));
  tmp.write("tc.kplan", bytes.substr(0, 1000));
  r = kilnc("inspect " + plan, true);
  CHECK(r.code == 1);
  CHECK(r.out == plan + ": error: truncated plan file: the header says " + std::to_string(bytes.size()) + " bytes, the file has 1000\n");
}
