#include "tools/kilnc_aot.hpp"

#include <omp.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include <yaml-cpp/yaml.h>

#include "kiln/kiln.hpp"
#include "runtime/compile.hpp"
#include "runtime/file_io.hpp"
#include "runtime/kplan.hpp"
#include "runtime/model_impl.hpp"
#include "runtime/npy.hpp"
#include "tools/emit_cpp.hpp"
#include "tools/temp_file_signals.hpp"

namespace kiln {

namespace {

namespace fs = std::filesystem;
using Clock = std::chrono::steady_clock;

double ms_since(Clock::time_point t0) { return std::chrono::duration<double, std::milli>(Clock::now() - t0).count(); }

// A progress line on stderr for compiles that take longer than a second (KILNC_PROGRESS_AFTER_MS
// changes the threshold). On a terminal the line is rewritten in place; otherwise each stage gets a
// line once the threshold has passed.
class Progress {
 public:
  explicit Progress(std::string what) : what_(std::move(what)), t0_(Clock::now()), tty_(::isatty(2) != 0) {
    if (const char* env = std::getenv("KILNC_PROGRESS_AFTER_MS")) after_ms_ = std::atof(env);
    current_ = this;
    thread_ = std::thread([this] { loop(); });
  }
  ~Progress() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stop_ = true;
    }
    cv_.notify_all();
    thread_.join();
    current_ = nullptr;
    // A compile past the threshold always says so, even when it ended before the thread woke up to print
    // (a busy machine): the last stage, then the total.
    if (!shown_ && ms_since(t0_) >= after_ms_) {
      std::fprintf(stderr, "kilnc: %s: %s (%.1f s)\n", what_.c_str(), stage_.c_str(), ms_since(t0_) / 1000);
      shown_ = true;
    }
    if (shown_)
      std::fprintf(stderr, "%skilnc: %s: done in %.1f s\n", tty_ ? "\r\033[K" : "", what_.c_str(),
                   ms_since(t0_) / 1000);
  }
  static void stage(const char* s) {
    if (!current_) return;
    std::lock_guard<std::mutex> lock(current_->mu_);
    current_->stage_ = s;
    current_->cv_.notify_all();
  }

 private:
  void loop() {
    std::unique_lock<std::mutex> lock(mu_);
    std::string printed;
    while (!stop_) {
      cv_.wait_for(lock, std::chrono::milliseconds(100));
      if (stop_ || ms_since(t0_) < after_ms_) continue;
      if (tty_) {
        std::fprintf(stderr, "\r\033[Kkilnc: %s: %s (%.1f s)", what_.c_str(), stage_.c_str(), ms_since(t0_) / 1000);
      } else if (stage_ != printed) {
        std::fprintf(stderr, "kilnc: %s: %s (%.1f s)\n", what_.c_str(), stage_.c_str(), ms_since(t0_) / 1000);
        printed = stage_;
      }
      std::fflush(stderr);
      shown_ = true;
    }
  }
  std::string what_;
  Clock::time_point t0_;
  bool tty_;
  double after_ms_ = 1000;
  std::string stage_ = "starting";
  bool stop_ = false;
  bool shown_ = false;
  std::mutex mu_;
  std::condition_variable cv_;
  std::thread thread_;
  static inline Progress* current_ = nullptr;
};

std::string shapes_text(const DimRanges& dims) {
  std::string s;
  for (const auto& [name, r] : dims) s += (s.empty() ? "" : " ") + name + "=" + r.str();
  return s;
}

// The weights file a YAML model names (for the depfile), resolved as the frontend resolves it.
std::string weights_of(const std::string& model) {
  if (fs::path(model).extension() == ".onnx") return {};  // an ONNX model holds its weights
  try {
    YAML::Node root = YAML::LoadFile(model);
    if (!root.IsMap() || !root["weights"] || !root["weights"].IsScalar()) return {};
    fs::path w = root["weights"].Scalar();
    if (w.is_relative()) w = fs::path(model).parent_path() / w;
    return fs::absolute(w).lexically_normal().string();
  } catch (const YAML::Exception&) {
    return {};  // the frontend already accepted the model; nothing to add
  }
}

std::string depfile_escape(const std::string& p) {
  std::string out;
  for (char c : p) {
    if (c == ' ' || c == '#' || c == '\\') out += '\\';
    if (c == '$') out += '$';
    out += c;
  }
  return out;
}

int cmd_compile(const AotCli& cli) {
  const DimRanges dims = parse_shape_args(cli.shapes);
  if (cli.emit != "plan" && cli.emit != "cpp") fail("--emit expects plan or cpp, got '" + cli.emit + "'");
  if (cli.weights != "embed" && cli.weights != "file")
    fail("--weights expects embed or file, got '" + cli.weights + "'");
  auto dot = cli.model.find_last_of('.');
  std::string ext = dot == std::string::npos ? std::string() : cli.model.substr(dot);
  if (ext != ".yaml" && ext != ".yml" && ext != ".onnx")
    fail(cli.model + ": expected a .yaml or .onnx model to compile, got '" + ext + "'");
  KplanInfo info;
  info.isa = host_isa();
  if (!cli.isa.empty() && !parse_isa(cli.isa, &info.isa))
    fail("--isa '" + cli.isa +
         "': unknown instruction set (expected sse41, avx, avx2, avx2_vnni, avx512_core, "
         "avx512_core_vnni, avx512_core_bf16 or avx512_core_amx)");
  info.source = cli.model;
  info.opt_level = cli.passes.opt_level;
  info.dims = dims;

  Progress progress("compiling " + cli.model);
  detail::CompileRequest request;
  request.path = cli.model;
  request.pipeline = pass_pipeline(cli.passes);
  request.dims = dims;
  request.stage = &Progress::stage;
  auto impl = detail::compile(std::move(request));
  Progress::stage("compiling plans for the bound shapes");
  info.plans = detail::summarize_plans(*impl);
  Progress::stage("serializing the plan");
  std::vector<unsigned char> bytes = detail::serialize_kplan(*impl, info);

  std::vector<std::string> outputs;
  if (cli.emit == "plan") {
    Progress::stage("writing the plan file");
    detail::write_file_atomic(cli.output, bytes.data(), bytes.size());
    outputs.push_back(cli.output);
  } else {
    Progress::stage("writing C++");
    fs::create_directories(cli.output);
    EmitCppOptions o;
    o.name = cli.name.empty() ? cpp_identifier(impl->graph->name) : cli.name;
    o.class_name = cli.class_name;
    o.ns = cli.ns;
    o.embed = cli.weights == "embed";
    o.source = fs::path(cli.model).filename().string();
    o.shapes = shapes_text(dims);
    o.opt_level = cli.passes.opt_level;
    const fs::path dir = fs::absolute(cli.output).lexically_normal();
    if (!o.embed) {
      o.plan_file = (dir / (o.name + ".kplan")).string();
      detail::write_file_atomic(o.plan_file, bytes.data(), bytes.size());
    }
    EmittedCpp cpp = emit_cpp(*impl->graph, bytes, o);
    for (const auto& [file, text] :
         {std::pair{o.name + ".hpp", &cpp.header}, std::pair{o.name + ".cpp", &cpp.source}}) {
      std::string path = (dir / file).string();
      detail::write_file_atomic(path, text->data(), text->size());
      outputs.push_back(path);
    }
    if (!o.embed) outputs.push_back(o.plan_file);
  }
  if (!cli.depfile.empty()) {
    std::string text;
    for (const auto& out : outputs)
      text += (text.empty() ? "" : " ") + depfile_escape(fs::absolute(out).lexically_normal().string());
    text += ": " + depfile_escape(fs::absolute(cli.model).lexically_normal().string());
    std::string weights = weights_of(cli.model);
    if (!weights.empty()) text += " " + depfile_escape(weights);
    text += "\n";
    detail::write_file_atomic(cli.depfile, text.data(), text.size());
  }
  if (!cli.quiet) {
    std::size_t const_bytes = 0, consts = 0;
    for (const auto& v : impl->graph->values())
      if (v->is_constant() && !v->users.empty()) {
        const_bytes += v->constant.bytes;
        ++consts;
      }
    std::printf("compiled %s (-O%d%s) for %s: %zu nodes, %zu weight tensors (%zu bytes), plan %zu bytes, format %u\n",
                cli.model.c_str(), cli.passes.opt_level, dims.empty() ? "" : (", " + shapes_text(dims)).c_str(),
                isa_name(info.isa).c_str(), impl->graph->nodes().size(), consts, const_bytes, bytes.size(),
                kKplanVersion);
    for (const auto& out : outputs) std::printf("wrote %s\n", out.c_str());
  }
  return 0;
}

int cmd_inspect(const AotCli& cli) {
  KplanInfo info;
  auto impl = detail::load_kplan_file(cli.model, &info);
  const Graph& g = *impl->graph;
  std::printf("plan file:       %s\n", cli.model.c_str());
  std::printf("format version:  %u\n", info.version);
  std::printf("instruction set: %s (this CPU: %s)\n", isa_name(info.isa).c_str(), isa_name(host_isa()).c_str());
  std::printf("size:            %llu bytes (weights %llu bytes in %u tensors)\n",
              static_cast<unsigned long long>(info.file_bytes), static_cast<unsigned long long>(info.constant_bytes),
              info.constants);
  if (info.packs)
    std::printf("packed weights:  %llu bytes for %u weights (Kiln's GEMM panels, mapped at load)\n",
                static_cast<unsigned long long>(info.packed_bytes), info.packs);
  if (info.quantized)
    std::printf("quantized:       %llu bytes for %u weights (s8/bf16 panels; docs/quantization.md)\n",
                static_cast<unsigned long long>(info.quantized_bytes), info.quantized);
  std::printf("checksum:        %016llx (verified)\n", static_cast<unsigned long long>(info.checksum));
  std::printf("model:           %s, compiled from %s at -O%d\n", g.name.c_str(), info.source.c_str(), info.opt_level);
  std::printf("bound dims:      %s\n",
              info.dims.empty() ? "none (every symbolic dim is bound when it runs)" : shapes_text(info.dims).c_str());
  std::printf("inputs:\n");
  for (const Value* v : g.inputs) std::printf("  %s: %s\n", v->name.c_str(), v->type.str().c_str());
  std::printf("outputs:\n");
  for (const Value* v : g.outputs) std::printf("  %s: %s\n", v->name.c_str(), v->type.str().c_str());
  std::map<std::string, int> ops;
  for (const auto& n : g.nodes()) ++ops[n->op];
  std::printf("ops:             %zu nodes:", g.nodes().size());
  for (const auto& [op, count] : ops) std::printf(" %s x%d", op.c_str(), count);
  std::printf("\n");
  if (!info.plans.empty()) std::printf("memory plans compiled at build time:\n");
  for (const auto& p : info.plans) {
    std::string dims;
    for (std::size_t i = 0; i < p.input_dims.size() && i < g.inputs.size(); ++i)
      dims += (dims.empty() ? "" : ", ") + g.inputs[i]->name + shape_to_string(p.input_dims[i]);
    std::printf("  %s: %u kernels, activation arena %llu bytes\n", dims.c_str(), p.kernels,
                static_cast<unsigned long long>(p.arena_bytes));
  }
  if (cli.ir) std::printf("%s", g.print(true).c_str());
  return 0;
}

int cmd_bench(const AotCli& cli) {
  std::vector<double> load_ms;
  Model model;
  const LoadOptions lo = load_options(cli.passes);
  for (int i = 0; i < std::max(cli.load_runs, 1); ++i) {
    auto t0 = Clock::now();
    model = Model::load(cli.model, lo);
    load_ms.push_back(ms_since(t0));
  }
  std::sort(load_ms.begin(), load_ms.end());
  std::printf("model: %s\nload: median %.2f ms, min %.2f ms over %zu loads\n", cli.model.c_str(),
              load_ms[load_ms.size() / 2], load_ms.front(), load_ms.size());
  if (cli.load_only) return 0;

  std::map<std::string, Tensor> inputs;
  for (const auto& spec : cli.inputs) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      fail("--input expects NAME=FILE.npy, got '" + spec + "'");
    inputs.emplace(spec.substr(0, eq), read_npy(spec.substr(eq + 1)));
  }
  const DimRanges dims = parse_shape_args(cli.shapes);
  for (const auto& in : model.inputs()) {
    if (inputs.count(in.name)) continue;
    std::vector<std::int64_t> shape;
    for (const auto& d : in.dims) {
      if (!d.empty() && d.find_first_not_of("0123456789") == std::string::npos) {
        shape.push_back(std::stoll(d));
        continue;
      }
      auto it = dims.find(d);
      if (it == dims.end() || !it->second.fixed())
        fail("input '" + in.name + "' has dim '" + d + "': give its size with --shape " + d +
             "=N, or the input with --input " + in.name + "=FILE.npy");
      shape.push_back(it->second.min);
    }
    inputs.emplace(in.name, Tensor::empty(in.dtype, shape));  // zeros: valid token ids and values alike
  }
  Session session(model);
  auto t0 = Clock::now();
  auto outputs = session.run(inputs);
  const double first_ms = ms_since(t0);
  for (int i = 0; i < cli.warmup; ++i) session.run(inputs, outputs);
  std::vector<double> times;
  times.reserve(static_cast<std::size_t>(std::max(cli.runs, 1)));
  auto start = Clock::now();
  while (static_cast<int>(times.size()) < std::max(cli.runs, 1) || ms_since(start) < cli.seconds * 1000) {
    auto r0 = Clock::now();
    session.run(inputs, outputs);
    times.push_back(ms_since(r0));
  }
  const double wall_ms = ms_since(start);
  std::sort(times.begin(), times.end());
  auto pct = [&](double p) {  // nearest rank
    std::size_t k = static_cast<std::size_t>(std::max(1.0, std::ceil(p / 100 * static_cast<double>(times.size()))));
    return times[std::min(k, times.size()) - 1];
  };
  double sum = 0;
  for (double t : times) sum += t;
  std::printf("threads: %d, warm-up: first run %.2f ms (compiles the plan) + %d runs\n", omp_get_max_threads(),
              first_ms, cli.warmup);
  std::printf("latency over %zu runs: min %.3f ms, p50 %.3f ms, p90 %.3f ms, p99 %.3f ms, max %.3f ms, mean %.3f ms\n",
              times.size(), times.front(), pct(50), pct(90), pct(99), times.back(),
              sum / static_cast<double>(times.size()));
  std::printf("throughput: %.1f inferences/s\n", static_cast<double>(times.size()) * 1000 / wall_ms);
  return 0;
}

}  // namespace

void add_aot_subcommands(CLI::App& app, AotCli& c) {
  c.compile = app.add_subcommand("compile",
                                 "compile a YAML or ONNX model ahead of time into a plan file (.kplan) or C++ source");
  c.compile->add_option("model", c.model, "model file (.yaml or .onnx)")->required();
  c.compile
      ->add_option("-o,--output", c.output,
                   "the plan file to write (--emit plan), or the folder for the C++ files (--emit cpp)")
      ->required();
  c.compile->add_option("--shape", c.shapes,
                        "bind a symbolic dim: NAME=DIM fixes it, NAME=MIN..MAX bounds it (repeatable)");
  c.compile->add_option("-O,--opt-level", c.passes.opt_level, "optimization level: 0, 1 or 2 (default)")
      ->check(CLI::Range(0, 2));
  c.compile->add_option("--disable-pass", c.passes.disabled, "do not run this pass (repeatable)");
  c.compile->add_option("--quantize", c.passes.quantize, kQuantizeHelp);
  c.compile->add_option("--emit", c.emit,
                        "plan (default): a .kplan file; cpp: NAME.hpp and NAME.cpp in the output folder");
  c.compile->add_option("--weights", c.weights,
                        "with --emit cpp: embed (default) the plan in the source, or file: write NAME.kplan beside it "
                        "and read it at run time");
  c.compile->add_option("--name", c.name, "with --emit cpp: the file stem (default: the model's name)");
  c.compile->add_option("--class", c.class_name,
                        "with --emit cpp: the class name (default: the model's name in UpperCamelCase)");
  c.compile->add_option("--namespace", c.ns, "with --emit cpp: the namespace (default kiln_models)");
  c.compile->add_option("--isa", c.isa,
                        "the instruction set the plan requires (default: this CPU's, as oneDNN sees it)");
  c.compile->add_option("--depfile", c.depfile,
                        "also write a Makefile-style depfile (the outputs depend on the model and its weights)");
  c.compile->add_flag("-q,--quiet", c.quiet, "print nothing on success");

  c.inspect =
      app.add_subcommand("inspect", "describe a plan file: format version, ISA, sizes, shapes, ops, memory plans");
  c.inspect->add_option("plan", c.model, "plan file (.kplan)")->required();
  c.inspect->add_flag("--ir", c.ir, "also print the optimized IR with source locations");

  c.bench = app.add_subcommand(
      "bench", "measure load time, latency percentiles and throughput of a model (.yaml, .onnx or .kplan)");
  c.bench->add_option("model", c.model, "model file (.yaml, .onnx or .kplan)")->required();
  c.bench->add_option("-i,--input", c.inputs,
                      "an input as NAME=FILE.npy; inputs not given are zeros shaped by --shape");
  c.bench->add_option("--shape", c.shapes, "size of a symbolic dim for generated inputs: NAME=DIM (repeatable)");
  c.bench->add_option("--warmup", c.warmup, "untimed runs after the first (default 10)")->check(CLI::NonNegativeNumber);
  c.bench->add_option("-r,--runs", c.runs, "timed runs (at least; default 100)")->check(CLI::PositiveNumber);
  c.bench->add_option("--seconds", c.seconds, "keep running for at least this long")->check(CLI::NonNegativeNumber);
  c.bench->add_option("--load-runs", c.load_runs, "load the model this many times and report the median (default 1)")
      ->check(CLI::PositiveNumber);
  c.bench->add_flag("--load-only", c.load_only, "only measure loading");
  c.bench->add_option("-O,--opt-level", c.passes.opt_level, "optimization level for .yaml models (default 2)")
      ->check(CLI::Range(0, 2));
  c.bench->add_option("--quantize", c.passes.quantize, kQuantizeHelp);
}

int run_aot_subcommand(const AotCli& cli) {
  if (cli.compile && *cli.compile) {
    remove_temp_files_on_signal();
    return cmd_compile(cli);
  }
  if (cli.inspect && *cli.inspect) return cmd_inspect(cli);
  if (cli.bench && *cli.bench) return cmd_bench(cli);
  return -1;
}

}  // namespace kiln
