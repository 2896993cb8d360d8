// Plan files (.kplan): YAML -> plan -> run equals YAML -> run (same IR, same outputs, the PyTorch
// fixtures within 1e-4), loading from memory, bound and ranged dims, atomic writes, and every way a
// plan file can be bad, with its message.

#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstring>
#include <thread>
#include <filesystem>
#include <fstream>
#include <iterator>

#include "ops/gemm.hpp"
#include "ops/isa.hpp"
#include "runtime/compile.hpp"
#include "runtime/file_io.hpp"
#include "runtime/kplan.hpp"
#include "runtime/model_impl.hpp"
#include "runtime/npy.hpp"
#include "test_util.hpp"
#include "tools/temp_file_signals.hpp"

using kiln::test::contains;
using kiln::test::error_of;
using kiln::test::max_abs_diff;
using kiln::test::source_path;
using kiln::test::TempDir;

namespace {

namespace fs = std::filesystem;
using Bytes = std::vector<unsigned char>;

Bytes compile_plan(const std::string& yaml, const kiln::DimRanges& dims = {}, int opt_level = 2) {
  kiln::detail::CompileRequest request;
  request.path = yaml;
  request.pipeline.opt_level = opt_level;
  request.dims = dims;
  auto impl = kiln::detail::compile(std::move(request));
  kiln::KplanInfo info;
  info.isa = kiln::host_isa();
  info.source = yaml;
  info.opt_level = opt_level;
  info.dims = dims;
  info.plans = kiln::detail::summarize_plans(*impl);
  return kiln::detail::serialize_kplan(*impl, info);
}

std::string write(const TempDir& dir, const std::string& name, const Bytes& bytes) {
  return dir.write(name, std::string(bytes.begin(), bytes.end()));
}

Bytes read_bytes(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return Bytes(std::istreambuf_iterator<char>(in), {});
}

void put_u32(Bytes& b, std::size_t at, std::uint32_t v) {
  for (int i = 0; i < 4; ++i) b[at + static_cast<std::size_t>(i)] = static_cast<unsigned char>(v >> (8 * i));
}

// Rewrites the checksum so that a deliberately changed file passes that check and reaches later ones.
void reseal(Bytes& b) {
  std::uint64_t sum = kiln::kplan_checksum(b.data(), b.size());
  for (int i = 0; i < 8; ++i) b[kiln::kKplanChecksumOffset + static_cast<std::size_t>(i)] = static_cast<unsigned char>(sum >> (8 * i));
}

std::size_t find(const Bytes& b, const std::string& s) {
  auto it = std::search(b.begin(), b.end(), s.begin(), s.end());
  REQUIRE(it != b.end());
  return static_cast<std::size_t>(it - b.begin());
}

const std::string kD64 = "tests/fixtures/classifier_d64_l2";

}  // namespace

TEST_CASE("plan file round trip: same IR and same outputs as the YAML model, PyTorch within 1e-4") {
  TempDir tmp;
  for (const std::string& dir : {kD64, std::string("tests/fixtures/classifier_d128_l3"), std::string("tests/fixtures/decomposed_d64")}) {
    CAPTURE(dir);
    const std::string yaml = source_path(dir + "/model.yaml");
    const std::string plan = write(tmp, "model.kplan", compile_plan(yaml));
    kiln::Model from_yaml = kiln::Model::load(yaml);
    kiln::Model from_plan = kiln::Model::load(plan);
    // The optimized graph, with every node's attributes and source location, survives the trip.
    CHECK(from_plan.ir(true) == from_yaml.ir(true));
    CHECK(from_plan.name() == from_yaml.name());
    kiln::Session a(from_yaml), b(from_plan);
    for (const char* tag : {"_b1_s8.npy", dir == "tests/fixtures/decomposed_d64" ? "_b2_s13.npy" : "_b4_s33.npy"}) {
      auto tokens = kiln::read_npy(source_path(dir + "/tokens" + tag));
      auto ya = a.run({{"tokens", tokens}});
      auto pl = b.run({{"tokens", tokens}});
      for (const char* name : {"logits", "probs"}) {
        CHECK(max_abs_diff(pl.at(name), ya.at(name)) == 0.0);  // same kernels on the same bytes
        double err = max_abs_diff(pl.at(name), kiln::read_npy(source_path(dir + "/" + name + tag)));
        CHECK_MESSAGE(err <= 1e-4, name << tag << " " << err);
      }
    }
  }
}

TEST_CASE("plan file holds the packed constants the passes made and is memory-mapped") {
  // decomposed_d64 at -O2: fuse-attention packs q/k/v into one new [3E,E] constant per layer that
  // exists in no weights file; the plan must carry it.
  TempDir tmp;
  const std::string plan = write(tmp, "m.kplan", compile_plan(source_path("tests/fixtures/decomposed_d64/model.yaml")));
  kiln::KplanInfo info;
  auto impl = kiln::detail::load_kplan_file(plan, &info);
  int packed = 0;
  for (const auto& v : impl->graph->values())
    if (v->is_constant() && v->type.shape.size() == 2 && v->type.shape[0].is(192) && v->type.shape[1].is(64)) {
      ++packed;
      // Points into the mapping (64-byte aligned), not into a heap copy.
      auto addr = reinterpret_cast<std::uintptr_t>(v->constant.data);
      CHECK(addr % 64 == 0);
      CHECK(v->constant.owner != nullptr);
    }
  CHECK(packed == 2);
  CHECK(info.version == kiln::kKplanVersion);
  CHECK(info.isa == kiln::host_isa());
  CHECK(info.file_bytes == fs::file_size(plan));
}

TEST_CASE("plan file carries Kiln's GEMM weight panels: loading and running it packs nothing") {
  // The panels are the constants pack-weights made (layout panels16), stored like any other constant.
  TempDir tmp;
  const std::string yaml = source_path(kD64 + "/model.yaml");
  const std::string plan = write(tmp, "m.kplan", compile_plan(yaml));
  kiln::KplanInfo info;
  auto impl = kiln::detail::load_kplan_file(plan, &info);
  if (!kiln::gemm::enabled()) {
    CHECK(info.packs == 0);  // compiled where Kiln's kernels are off: nothing to carry
    return;
  }
  // classifier_d64_l2: per layer the fused in_proj, out_proj and both FFN weights, plus the head.
  CHECK(info.packs == 9);
  std::size_t packed = 0;
  for (const auto& v : impl->graph->values())
    if (v->is_constant() && v->type.layout == kiln::gemm::kPackedLayout) {
      ++packed;
      CHECK(reinterpret_cast<std::uintptr_t>(v->constant.data) % 64 == 0);
    }
  CHECK(packed == 9);
  impl.reset();
  const std::size_t before = kiln::gemm::packs_made();
  kiln::Model from_plan = kiln::Model::load(plan);
  kiln::Session session(from_plan);
  auto tokens = kiln::read_npy(source_path(kD64 + "/tokens_b4_s33.npy"));
  auto out = session.run({{"tokens", tokens}});
  CHECK(kiln::gemm::packs_made() == before);  // every pack came from the file
  // The same results as the YAML model, which packs at run time.
  kiln::Session from_yaml(kiln::Model::load(yaml));
  CHECK(max_abs_diff(from_yaml.run({{"tokens", tokens}}).at("probs"), out.at("probs")) == 0.0);
  CHECK(kiln::gemm::packs_made() > before);
}

TEST_CASE("Model::load_plan runs an image in memory, aligned (no copy) or not (copied once)") {
  const Bytes bytes = compile_plan(source_path(kD64 + "/model.yaml"));
  auto tokens = kiln::read_npy(source_path(kD64 + "/tokens_b1_s8.npy"));
  auto expected = kiln::read_npy(source_path(kD64 + "/probs_b1_s8.npy"));
  // 64-byte aligned storage, and the same bytes one byte further on.
  std::vector<std::uint64_t> storage(bytes.size() / 8 + 16);
  auto* base = reinterpret_cast<unsigned char*>(storage.data());
  unsigned char* aligned = base + (64 - reinterpret_cast<std::uintptr_t>(base) % 64) % 64;
  for (unsigned char* at : {aligned, aligned + 1}) {
    std::memcpy(at, bytes.data(), bytes.size());
    kiln::Model model = kiln::Model::load_plan(at, bytes.size(), "embedded");
    kiln::Session s(model);
    CHECK(max_abs_diff(s.run({{"tokens", tokens}}).at("probs"), expected) <= 1e-4);
  }
  std::string err = error_of([&] { kiln::Model::load_plan(aligned, 100, "embedded"); });
  CHECK(err == "embedded: error: truncated plan file: 100 bytes, shorter than the 128-byte header");
  CHECK(error_of([&] { kiln::Model::load_plan(nullptr, 1000, "embedded"); }) == "embedded: error: plan image is a null pointer");
}

TEST_CASE("--shape: fixed dims become concrete, ranges are enforced with a clear error") {
  TempDir tmp;
  const std::string yaml = source_path(kD64 + "/model.yaml");
  kiln::DimRanges dims = kiln::parse_shape_args({"batch=1", "seq=1..16"});
  const Bytes bytes = compile_plan(yaml, dims);
  kiln::KplanInfo info;
  auto impl = kiln::detail::load_kplan(
      "m.kplan", bytes.data(), bytes.size(), std::shared_ptr<const void>(bytes.data(), [](const void*) {}), &info);
  CHECK(impl->graph->inputs[0]->type.str() == "i64[1,seq]");
  REQUIRE(info.dims.size() == 2);
  CHECK(info.dims.at("batch").str() == "1");
  CHECK(info.dims.at("seq").str() == "1..16");
  // Plans compiled at build time for both ends of the range, with their memory plans.
  REQUIRE(info.plans.size() == 2);
  CHECK(info.plans[0].input_dims[0] == std::vector<std::int64_t>{1, 1});
  CHECK(info.plans[1].input_dims[0] == std::vector<std::int64_t>{1, 16});
  CHECK(info.plans[1].arena_bytes > info.plans[0].arena_bytes);
  CHECK(info.plans[0].kernels > 0);

  kiln::Session session(kiln::Model::load(write(tmp, "m.kplan", bytes)));
  auto tokens = kiln::read_npy(source_path(kD64 + "/tokens_b1_s8.npy"));
  CHECK(max_abs_diff(session.run({{"tokens", tokens}}).at("probs"), kiln::read_npy(source_path(kD64 + "/probs_b1_s8.npy"))) <= 1e-4);
  auto long_tokens = kiln::Tensor::empty(kiln::DType::i64, {1, 17});
  CHECK(error_of([&] { session.run({{"tokens", long_tokens}}); }) ==
        "error: input 'tokens': dim 'seq' is 17, outside the range 1..16 the model was compiled for "
        "(kilnc compile --shape seq=MIN..MAX)");
  auto batch2 = kiln::Tensor::empty(kiln::DType::i64, {2, 8});
  CHECK(error_of([&] { session.run({{"tokens", batch2}}); }) ==
        "error: input 'tokens': expected i64[1,seq], got i64[2,8] (dim 0)");
  auto at_max = kiln::Tensor::empty(kiln::DType::i64, {1, 16});
  CHECK(session.run({{"tokens", at_max}}).at("probs").shape() == std::vector<std::int64_t>{1, 4});
}

TEST_CASE("--shape arguments that are wrong name the argument") {
  CHECK(error_of([] { kiln::parse_shape_args({"seq"}); }) ==
        "error: --shape 'seq': expected NAME=DIM or NAME=MIN..MAX (e.g. seq=128 or seq=1..512)");
  CHECK(error_of([] { kiln::parse_shape_args({"seq=0"}); }) == "error: --shape 'seq=0': expected a positive integer or MIN..MAX after '='");
  CHECK(error_of([] { kiln::parse_shape_args({"seq=8..4"}); }) == "error: --shape 'seq=8..4': the range is empty (MIN > MAX)");
  CHECK(error_of([] { kiln::parse_shape_args({"seq=1..x"}); }) == "error: --shape 'seq=1..x': expected positive integers in MIN..MAX");
  CHECK(error_of([] { kiln::parse_shape_args({"seq=1", "seq=2"}); }) == "error: --shape 'seq=2': dim 'seq' is given twice");
  CHECK(error_of([] { compile_plan(source_path(kD64 + "/model.yaml"), kiln::parse_shape_args({"sequence=8"})); }) ==
        "error: --shape sequence=8: model 'transformer_classifier' has no input dim named 'sequence' (its symbolic dims: batch, seq)");
}

TEST_CASE("bad plan files are rejected with a message naming the file and the problem") {
  TempDir tmp;
  const Bytes good = compile_plan(source_path(kD64 + "/model.yaml"));
  auto load_error = [&](const Bytes& bytes) {
    std::string path = write(tmp, "bad.kplan", bytes);
    std::string err = error_of([&] { kiln::Model::load(path); });
    CHECK(err.rfind(path + ": error: ", 0) == 0);
    return err.substr(path.size() + 9);
  };
  const std::string size = std::to_string(good.size());

  SUBCASE("empty and shorter than the header") {
    CHECK(load_error({}) == "truncated plan file: 0 bytes, shorter than the 128-byte header");
    CHECK(load_error(Bytes(good.begin(), good.begin() + 50)) == "truncated plan file: 50 bytes, shorter than the 128-byte header");
  }
  SUBCASE("truncated") {
    Bytes b(good.begin(), good.end() - 1000);
    CHECK(load_error(b) == "truncated plan file: the header says " + size + " bytes, the file has " + std::to_string(b.size()));
  }
  SUBCASE("bytes appended") {
    Bytes b = good;
    b.push_back(0);
    CHECK(load_error(b) == "corrupt plan file: the header says " + size + " bytes, the file has " + std::to_string(b.size()));
  }
  SUBCASE("not a plan file") {
    Bytes b = good;
    b[0] = 'X';
    CHECK(load_error(b) == "not a Kiln plan file (expected the magic bytes \"KILNPLAN\")");
  }
  SUBCASE("another format version") {
    Bytes b = good;
    put_u32(b, kiln::kKplanVersionOffset, kiln::kKplanVersion + 1);
    CHECK(load_error(b) == "plan file format version " + std::to_string(kiln::kKplanVersion + 1) + ", but this Kiln reads version " +
                               std::to_string(kiln::kKplanVersion) + " (recompile the model with this kilnc)");
  }
  SUBCASE("one bit flipped: in the weights, the graph section or the header") {
    for (std::size_t at : {good.size() - 5, std::size_t{kiln::kKplanHeaderBytes + 10}, std::size_t{kiln::kKplanIsaOffset}}) {
      CAPTURE(at);
      Bytes b = good;
      b[at] ^= 0x10;
      std::string err = load_error(b);
      CHECK(err.rfind("corrupt plan file: checksum mismatch: the header says ", 0) == 0);
      CHECK(contains(err, ", the contents hash to "));
    }
  }
  SUBCASE("two different 8-byte words of the weights swapped") {
    Bytes b = good;
    std::size_t data = 0;
    for (int i = 7; i >= 0; --i) data = (data << 8) | b[48 + static_cast<std::size_t>(i)];  // data section offset
    while (std::equal(b.begin() + static_cast<long>(data), b.begin() + static_cast<long>(data + 8), b.begin() + static_cast<long>(data + 8)))
      data += 8;
    std::swap_ranges(b.begin() + static_cast<long>(data), b.begin() + static_cast<long>(data + 8), b.begin() + static_cast<long>(data + 8));
    REQUIRE(b != good);
    CHECK(contains(load_error(b), "corrupt plan file: checksum mismatch"));
  }
  SUBCASE("built for an instruction set this CPU lacks") {
    const std::string host = kiln::isa_name(kiln::host_isa());
    // The message depends on whether an instruction-set cap (KILN_MAX_ISA) is what excludes the plan.
    const std::string cure = std::string("; recompile it here, or compile it with KILN_MAX_ISA=") +
                             kiln::isa::name(kiln::isa::effective()) + " in kilnc's environment";
    auto refused = [&](const std::string& built) {
      if (kiln::isa::effective() != kiln::isa::cpu())
        return "plan file was built for " + built + ", beyond the instruction-set cap in force (oneDNN: " + host +
               "; Kiln: " + kiln::isa::describe() + ")" + cure;
      return "plan file was built for " + built + ", which this CPU lacks (it supports " + host + ")" + cure;
    };
    Bytes b = good;
    put_u32(b, kiln::kKplanIsaOffset, 0xffffffffu);  // every ISA bit: no CPU has them all
    reseal(b);
    CHECK(load_error(b) == refused("isa 0xffffffff"));
    // A named instruction set this CPU lacks (asked of the library; none where the CPU has them all).
    for (std::uint32_t isa : kiln::known_isas()) {
      if ((kiln::host_isa() & isa) == isa) continue;
      put_u32(b, kiln::kKplanIsaOffset, isa);
      reseal(b);
      CHECK(load_error(b) == refused(kiln::isa_name(isa)));
      break;
    }
  }
  SUBCASE("an op this build does not have (a newer Kiln's plan)") {
    Bytes b = good;
    std::size_t at = find(b, "softmax");
    b[at + 6] = 'z';
    reseal(b);
    CHECK(load_error(b) == "plan file uses op 'softmaz' (node 'probs'), which this build of Kiln does not have");
  }
  SUBCASE("a well-sealed but malformed graph section") {
    Bytes b = good;
    // The graph name's length prefix made huge: every read is bounds-checked.
    put_u32(b, kiln::kKplanHeaderBytes, 0x7fffffffu);
    reseal(b);
    CHECK(load_error(b) == "corrupt plan file: unexpected end of section (at byte 4 of the graph section)");
  }
  SUBCASE("a well-sealed packed weight holding fewer bytes than its panels need") {
    if (kiln::gemm::enabled()) {
      Bytes b = good;
      // The first constant in Kiln's GEMM panels: its type ends with the layout string (u32 length, bytes);
      // then come u8 "constant", u64 data offset, u64 byte count. The byte count becomes 64.
      const std::string layout = std::string("\x08\0\0\0", 4) + kiln::gemm::kPackedLayout;
      const std::size_t at = find(b, layout) + layout.size() + 1 + 8;
      for (std::size_t i = 0; i < 8; ++i) b[at + i] = i == 0 ? 64 : 0;
      reseal(b);
      const std::string path = write(tmp, "short.kplan", b);
      kiln::Session session(kiln::Model::load(path));
      auto tokens = kiln::read_npy(source_path(kD64 + "/tokens_b1_s8.npy"));
      const std::string err = error_of([&] { session.run({{"tokens", tokens}}); });
      CHECK(contains(err, "in layout panels16 holds 64 bytes"));
      CHECK(contains(err, " need "));
    }
  }
  SUBCASE("missing file") {
    std::string path = tmp.path("none.kplan");
    CHECK(error_of([&] { kiln::Model::load(path); }) == path + ": error: cannot open plan file: No such file or directory");
  }
}

TEST_CASE("plan files are written atomically") {
  TempDir tmp;
  const std::string path = tmp.path("out.kplan");
  kiln::detail::write_file_atomic(path, "old", 3);
  const Bytes bytes = compile_plan(source_path(kD64 + "/model.yaml"));
  kiln::detail::write_file_atomic(path, bytes.data(), bytes.size());
  CHECK(read_bytes(path) == bytes);
  // Nothing but the file itself is left in the folder (the temporary was renamed).
  int files = 0;
  for ([[maybe_unused]] const auto& e : fs::directory_iterator(tmp.dir())) ++files;
  CHECK(files == 1);
  // A folder that does not exist: an error, and no file.
  const std::string bad = tmp.path("missing/out.kplan");
  CHECK(error_of([&] { kiln::detail::write_file_atomic(bad, "x", 1); }) == bad + ": error: cannot create file: No such file or directory");
  CHECK(!fs::exists(bad));
}

TEST_CASE("SIGINT while a plan file is being written leaves neither the file nor the temporary") {
  TempDir tmp;
  const std::string path = tmp.path("big.kplan");
  pid_t child = ::fork();
  REQUIRE(child >= 0);
  if (child == 0) {  // writes 256 MB, slowly enough to be interrupted, with kilnc's signal handling
    kiln::remove_temp_files_on_signal();
    std::vector<unsigned char> big(std::size_t{256} << 20, 7);
    kiln::detail::write_file_atomic(path, big.data(), big.size());
    ::_exit(0);
  }
  // Interrupt once the temporary exists.
  bool seen = false;
  for (int i = 0; i < 20000 && !seen; ++i) {
    for (const auto& e : fs::directory_iterator(tmp.dir())) seen = seen || contains(e.path().filename().string(), "big.kplan.tmp.");
    if (!seen) std::this_thread::sleep_for(std::chrono::microseconds(200));
  }
  REQUIRE(seen);
  ::kill(child, SIGINT);
  int status = 0;
  REQUIRE(::waitpid(child, &status, 0) == child);
  CHECK(WIFSIGNALED(status));
  CHECK(WTERMSIG(status) == SIGINT);
  CHECK(fs::is_empty(tmp.dir()));
}
