// kilnc: Kiln's command-line graph compiler. `kilnc --help` lists the subcommands.

#include <omp.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <iostream>
#include <map>
#include <memory>
#include <new>

#include <tbb/global_control.h>
#include <CLI/CLI.hpp>

#include "frontends/onnx/onnx_frontend.hpp"
#include "frontends/yaml/seq2seq.hpp"
#include "frontends/yaml/yaml_writer.hpp"
#include "graph/graph.hpp"
#include "kiln/kiln.hpp"
#include "ops/op.hpp"
#include "passes/pass.hpp"
#include "runtime/compile.hpp"
#include "runtime/file_io.hpp"
#include "runtime/model_impl.hpp"
#include "runtime/npy.hpp"
#include "tools/kilnc_aot.hpp"
#include "tools/pass_flags.hpp"

namespace {

struct CompileFlags : kiln::PassFlags {
  bool explain = false;
};

void add_compile_flags(CLI::App* cmd, CompileFlags& f) {
  cmd->add_option("-O,--opt-level", f.opt_level, "optimization level: 0 none, 1 cleanup, 2 fusions (default)")
      ->check(CLI::Range(0, 2));
  cmd->add_option("--disable-pass", f.disabled, "do not run this pass (repeatable; see `kilnc passes`)");
  cmd->add_option("--quantize", f.quantize, kiln::kQuantizeHelp);
  cmd->add_option("--print-after", f.print_after, "print the IR after this pass, or after all (repeatable)");
  cmd->add_flag("--explain", f.explain, "list each fusion that fired or declined, and the plan's kernels and memory");
}

// The model at `path` through the compile driver with the subcommand's pass flags.
std::shared_ptr<kiln::detail::ModelImpl> compile_impl(const std::string& path, const kiln::PassFlags& f) {
  kiln::detail::CompileRequest request;
  request.path = path;
  request.pipeline = kiln::pass_pipeline(f, &std::cout);
  return kiln::detail::compile(std::move(request));
}

kiln::Model compile(const std::string& path, const CompileFlags& f) {
  auto impl = compile_impl(path, f);
  if (f.explain) {
    std::printf("passes at -O%d:\n", f.opt_level);
    if (impl->remarks.empty()) std::printf("  (no fusion matched)\n");
    for (const auto& r : impl->remarks) std::printf("  %s\n", r.str().c_str());
  }
  return kiln::Model(impl);
}

void print_values(const std::string& name, const kiln::Tensor& t, std::size_t limit) {
  std::printf("%s: %s%s\n", name.c_str(), std::string(kiln::dtype_name(t.dtype())).c_str(),
              kiln::shape_to_string(t.shape()).c_str());
  std::size_t n = static_cast<std::size_t>(t.numel());
  std::size_t row = t.shape().empty() ? 1 : static_cast<std::size_t>(std::max<std::int64_t>(t.shape().back(), 1));
  std::size_t shown = std::min(n, limit);
  for (std::size_t i = 0; i < shown; ++i) {
    if (i % row == 0) std::printf("  ");
    switch (t.dtype()) {
      case kiln::DType::f32: std::printf("%.6f", static_cast<double>(t.data_as<float>()[i])); break;
      case kiln::DType::i64: std::printf("%lld", static_cast<long long>(t.data_as<std::int64_t>()[i])); break;
      case kiln::DType::i32: std::printf("%d", t.data_as<std::int32_t>()[i]); break;
      case kiln::DType::f64: std::printf("%.6f", t.data_as<double>()[i]); break;
      case kiln::DType::i8: std::printf("%d", t.data_as<std::int8_t>()[i]); break;
      case kiln::DType::u8: std::printf("%d", t.data_as<std::uint8_t>()[i]); break;
      case kiln::DType::boolean: std::printf("%s", t.data_as<std::uint8_t>()[i] ? "true" : "false"); break;
      default: std::printf("?"); break;
    }
    std::printf((i + 1) % row == 0 || i + 1 == shown ? "\n" : " ");
  }
  if (shown < n) std::printf("  ... (%zu more)\n", n - shown);
}

std::map<std::string, kiln::Tensor> read_inputs(const std::vector<std::string>& specs) {
  std::map<std::string, kiln::Tensor> inputs;
  for (const auto& spec : specs) {
    auto eq = spec.find('=');
    if (eq == std::string::npos || eq == 0 || eq + 1 == spec.size())
      throw kiln::Error("error: --input expects NAME=FILE.npy, got '" + spec + "'");
    std::string name = spec.substr(0, eq);
    if (inputs.count(name)) throw kiln::Error("error: --input '" + name + "' given twice");
    inputs.emplace(name, kiln::read_npy(spec.substr(eq + 1)));
  }
  return inputs;
}

// What the passes did to one graph of a sequence-to-sequence model (quantized weights and their errors
// included), for --explain of check and generate.
void print_remarks(const char* part, const kiln::Model& m, const CompileFlags& flags) {
  std::printf("passes on the %s at -O%d:\n", part, flags.opt_level);
  if (m.impl()->remarks.empty()) std::printf("  (no fusion matched)\n");
  for (const auto& r : m.impl()->remarks) std::printf("  %s\n", r.str().c_str());
}

// A sequence-to-sequence file: both graphs through the same load as `generate` (its passes, quantization
// and remarks), each printed under a header.
int check_seq2seq(const std::string& model_path, bool locations, const CompileFlags& flags) {
  if (!flags.print_after.empty())
    throw kiln::Error("error: check: --print-after is not available for a sequence-to-sequence model (" + model_path +
                      "); --explain lists what the passes did to the encoder and the decoder");
  kiln::Seq2SeqModel model = kiln::Seq2SeqModel::load(model_path, kiln::load_options(flags));
  for (const auto& [part, m] : {std::pair{"encoder", model.encoder()}, std::pair{"decoder", model.decoder()}}) {
    if (flags.explain) print_remarks(part, m, flags);
    std::printf("# %s\n", part);
    std::cout << m.ir(locations) << std::flush;
  }
  return 0;
}

int cmd_check(const std::string& model_path, bool locations, const CompileFlags& flags) {
  if (kiln::is_yaml_seq2seq(model_path)) return check_seq2seq(model_path, locations, flags);
  kiln::Model model = compile(model_path, flags);
  std::cout << model.ir(locations);
  return 0;
}

int cmd_run(const std::string& model_path, const std::vector<std::string>& input_specs, const std::string& output_dir,
            int repeat, int warmup, std::size_t print_limit, const CompileFlags& flags) {
  kiln::Model model = compile(model_path, flags);
  auto inputs = read_inputs(input_specs);
  kiln::Session session(model);
  if (flags.explain) std::printf("plan for these input shapes:\n%s", session.explain(inputs).c_str());
  auto outputs = session.run(inputs);  // also the first warm-up: compiles the plan for these shapes
  // Timed runs write into these output tensors: the allocation-free path an embedding application uses.
  for (int i = 1; i < warmup; ++i) session.run(inputs, outputs);
  std::vector<double> times_ms;
  times_ms.reserve(static_cast<std::size_t>(repeat));
  for (int i = 0; i < repeat; ++i) {
    auto t0 = std::chrono::steady_clock::now();
    session.run(inputs, outputs);
    auto t1 = std::chrono::steady_clock::now();
    times_ms.push_back(std::chrono::duration<double, std::milli>(t1 - t0).count());
  }
  for (const auto& [name, t] : outputs) print_values(name, t, print_limit);
  if (!times_ms.empty()) {
    std::sort(times_ms.begin(), times_ms.end());
    std::printf("time per inference: median %.3f ms, min %.3f ms over %d runs (%d threads)\n",
                times_ms[times_ms.size() / 2], times_ms.front(), repeat, omp_get_max_threads());
  }
  if (!output_dir.empty()) {
    std::filesystem::create_directories(output_dir);
    for (const auto& [name, t] : outputs) {
      std::string base = name;  // value names from blocks hold '/': keep one flat folder
      std::replace(base.begin(), base.end(), '/', '_');
      std::string file = (std::filesystem::path(output_dir) / (base + ".npy")).string();
      kiln::write_npy(file, t);
      std::printf("wrote %s\n", file.c_str());
    }
  }
  return 0;
}

int cmd_profile(const std::string& model_path, const std::vector<std::string>& input_specs, int runs,
                const CompileFlags& flags) {
  auto impl = compile_impl(model_path, flags);
  kiln::Session session{kiln::Model(impl)};
  auto inputs = read_inputs(input_specs);
  std::printf("%s", session.profile(inputs, runs).c_str());
  bool any = false;
  for (const auto& r : impl->remarks) {
    if (!r.fired) continue;
    if (!any) std::printf("what the fused nodes absorbed (-O%d):\n", flags.opt_level);
    any = true;
    std::printf("  %s: %s\n", r.node.c_str(), r.message.c_str());
  }
  return 0;
}

int cmd_dot(const std::string& model_path, const CompileFlags& flags) {
  kiln::Model model = compile(model_path, flags);
  std::cout << model.impl()->graph->to_dot();
  return 0;
}

// `kilnc import m.onnx -o DIR`: DIR/model.yaml + DIR/model.safetensors, the imported graph after the passes
// of -O but before the layout pass (layouts have no YAML form), so that the files load to the same results.
int cmd_import(const std::string& model_path, const std::string& out_dir, const CompileFlags& flags) {
  if (std::filesystem::path(model_path).extension() != ".onnx")
    throw kiln::Error(model_path + ": error: import reads .onnx models (got '" +
                      std::filesystem::path(model_path).extension().string() + "')");
  std::unique_ptr<kiln::Graph> g = kiln::load_onnx_model(model_path);
  kiln::PipelineOptions options = kiln::pass_pipeline(flags);
  options.disabled.insert("assign-layouts");
  kiln::run_pipeline(*g, options);
  std::error_code ec;
  std::filesystem::create_directories(out_dir, ec);
  if (ec) throw kiln::Error(out_dir + ": error: cannot create the output folder (" + ec.message() + ")");
  const std::string source = std::filesystem::path(model_path).filename().string();
  kiln::YamlExport files = kiln::export_yaml(*g, "model.safetensors", "imported from " + source + " by kilnc import");
  const std::string yaml_path = (std::filesystem::path(out_dir) / "model.yaml").string();
  const std::string weights_path = (std::filesystem::path(out_dir) / "model.safetensors").string();
  kiln::detail::write_file_atomic(weights_path, files.weights.data(), files.weights.size());
  kiln::detail::write_file_atomic(yaml_path, files.yaml.data(), files.yaml.size());
  std::printf("wrote %s (%zu nodes) and %s (%zu bytes)", yaml_path.c_str(), g->nodes().size(), weights_path.c_str(),
              files.weights.size());
  if (files.renamed) std::printf("; %d names changed to characters YAML names keep", files.renamed);
  std::printf("\n");
  return 0;
}

int cmd_passes() {
  for (const auto& p : kiln::all_passes()) std::printf("%-24s %s\n", p->name(), p->summary());
  std::printf("\nafter them, at every level (-O0 included):\n");
  for (const auto& p : kiln::lowering_passes()) std::printf("%-24s %s\n", p->name(), p->summary());
  return 0;
}

int cmd_ops() {
  for (const kiln::OpSchema* s : kiln::all_ops()) {
    std::printf("%-12s %s\n", s->name.c_str(), s->doc.c_str());
    std::string ins;
    for (const auto& i : s->inputs)
      ins += (ins.empty() ? "" : ", ") + i.name + (i.optional ? "?" : "") +
             (i.weight.empty() ? "" : " (weight ." + i.weight + ")");
    std::printf("%-12s   inputs: %s\n", "", ins.c_str());
    for (const auto& a : s->attrs)
      std::printf("%-12s   attr %s: %s%s — %s\n", "", a.name.c_str(), kiln::attr_type_name(a.type),
                  a.default_value ? (" = " + kiln::attr_str(*a.default_value)).c_str() : " (required)", a.doc.c_str());
  }
  return 0;
}

// `kilnc generate`: seq2seq models (docs/yaml-format.md). Sources come from the command line or a file
// (one per line; an optional TAB and reference after it makes kilnc print the exact-match accuracy).
struct GenerateFlags {
  std::vector<std::string> texts;
  std::string input_file, strategy;
  int beam_width = 0, max_length = 0, n_best = 1, batch = 32;
  double length_penalty = -1;
  bool quiet = false;
};

int cmd_generate(const std::string& model_path, const GenerateFlags& g, const CompileFlags& flags) {
  kiln::Seq2SeqModel model = kiln::Seq2SeqModel::load(model_path, kiln::load_options(flags));
  if (flags.explain)
    for (const auto& [part, m] : {std::pair{"encoder", model.encoder()}, std::pair{"decoder", model.decoder()}})
      print_remarks(part, m, flags);
  std::vector<std::string> sources = g.texts, references;
  if (!g.input_file.empty()) {
    std::ifstream in(g.input_file);
    if (!in) throw kiln::Error(g.input_file + ": error: cannot open the input file");
    std::string line;
    int number = 0;
    while (std::getline(in, line)) {
      ++number;
      if (line.empty() || line[0] == '#') continue;
      auto tab = line.find('\t');
      sources.push_back(line.substr(0, tab));
      if (tab != std::string::npos) references.push_back(line.substr(tab + 1));
      else if (!references.empty())
        throw kiln::Error(g.input_file + ":" + std::to_string(number) +
                          ": error: expected SOURCE<TAB>REFERENCE like the lines above");
    }
  }
  if (sources.empty()) throw kiln::Error("error: generate: no sources (give texts or --input-file FILE)");
  if (!references.empty() && references.size() != sources.size())
    throw kiln::Error(g.input_file + ": error: some lines have a reference and some do not");
  kiln::GenerateOptions options;
  options.strategy = g.strategy;
  options.beam_width = g.beam_width;
  options.max_length = g.max_length;
  options.length_penalty = g.length_penalty;
  options.n_best = g.n_best;
  kiln::Generator generator(model);
  std::size_t right = 0, tokens = 0;
  double ms = 0;
  for (std::size_t first = 0; first < sources.size(); first += static_cast<std::size_t>(g.batch)) {
    std::size_t last = std::min(sources.size(), first + static_cast<std::size_t>(g.batch));
    std::vector<std::vector<std::int64_t>> batch;
    for (std::size_t i = first; i < last; ++i) batch.push_back(model.encode(sources[i]));
    auto t0 = std::chrono::steady_clock::now();
    auto hyps = generator.generate(batch, options);
    ms += std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - t0).count();
    for (std::size_t i = first; i < last; ++i) {
      const auto& h = hyps[i - first];
      std::string best = h.empty() ? std::string() : model.decode(h[0].tokens);
      if (!references.empty()) right += best == references[i];
      for (const auto& x : h) tokens += x.tokens.size();
      if (g.quiet) continue;
      if (h.size() == 1 && g.n_best == 1) {
        std::printf("%s -> %s\n", sources[i].c_str(), best.c_str());
        continue;
      }
      std::printf("%s\n", sources[i].c_str());
      for (std::size_t r = 0; r < h.size(); ++r)
        std::printf("  %zu. %s  (score %.4f, normalized %.4f%s)\n", r + 1, model.decode(h[r].tokens).c_str(),
                    static_cast<double>(h[r].score), static_cast<double>(h[r].normalized_score),
                    h[r].finished ? "" : ", unfinished");
    }
  }
  if (!references.empty())
    std::printf("exact match: %zu/%zu (%.2f%%)\n", right, sources.size(),
                100.0 * static_cast<double>(right) / static_cast<double>(sources.size()));
  std::printf("generated %zu tokens for %zu sources in %.1f ms (%d threads)\n", tokens, sources.size(), ms,
              omp_get_max_threads());
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kilnc — Kiln's graph compiler: check and run YAML models on oneDNN"};
  app.require_subcommand(0, 1);
  app.fallthrough();  // --threads may follow the subcommand too
  int threads = 0;
  app.add_option("-t,--threads", threads, "intra-op threads (default: all cores)")->check(CLI::PositiveNumber);

  std::string model_path;
  bool locations = false;
  auto* check = app.add_subcommand(
      "check", "parse and verify a model, then print its IR (a sequence-to-sequence model: its encoder and decoder)");
  check->add_option("model", model_path, "model file (.yaml, .onnx or .kplan)")->required();
  check->add_flag("--locations", locations, "append each node's source location");
  CompileFlags flags;
  add_compile_flags(check, flags);

  std::vector<std::string> input_specs;
  std::string output_dir;
  int repeat = 0, warmup = 3;
  std::size_t print_limit = 64;
  auto* run = app.add_subcommand("run", "run a model on inputs read from .npy files and print its outputs");
  run->add_option("model", model_path, "model file (.yaml, .onnx or .kplan)")->required();
  run->add_option("-i,--input", input_specs, "an input as NAME=FILE.npy (repeat for each input)")->required();
  run->add_option("-o,--output-dir", output_dir, "write each output to DIR/NAME.npy");
  run->add_option("-r,--repeat", repeat, "time this many runs after warm-up and print the median")
      ->check(CLI::NonNegativeNumber);
  run->add_option("--warmup", warmup, "untimed runs before timing (default 3)")->check(CLI::NonNegativeNumber);
  run->add_option("--print-limit", print_limit, "print at most this many values per output (default 64)");
  add_compile_flags(run, flags);

  int profile_runs = 20;
  auto* profile = app.add_subcommand("profile", "time each node of a model on inputs read from .npy files");
  profile->add_option("model", model_path, "model file (.yaml or .onnx)")->required();
  profile->add_option("-i,--input", input_specs, "an input as NAME=FILE.npy (repeat for each input)")->required();
  profile->add_option("-r,--runs", profile_runs, "timed runs; the table shows each node's median (default 20)")
      ->check(CLI::PositiveNumber);
  profile->add_option("-O,--opt-level", flags.opt_level, "optimization level: 0, 1 or 2 (default)")
      ->check(CLI::Range(0, 2));
  profile->add_option("--disable-pass", flags.disabled, "do not run this pass (repeatable)");
  profile->add_option("--quantize", flags.quantize, kiln::kQuantizeHelp);

  auto* dot =
      app.add_subcommand("dot", "print the IR as a Graphviz DOT graph (after the passes of -O; -O0: as written)");
  dot->add_option("model", model_path, "model file (.yaml or .onnx)")->required();
  dot->add_option("-O,--opt-level", flags.opt_level, "optimization level: 0, 1 or 2 (default)")
      ->check(CLI::Range(0, 2));
  dot->add_option("--disable-pass", flags.disabled, "do not run this pass (repeatable)");
  dot->add_option("--quantize", flags.quantize, kiln::kQuantizeHelp);

  GenerateFlags gen_flags;
  auto* generate =
      app.add_subcommand("generate", "run a sequence-to-sequence model (encoder, decoder, generate) on texts");
  generate->add_option("model", model_path, "seq2seq model file (.yaml)")->required();
  generate->add_option("texts", gen_flags.texts, "source texts");
  generate->add_option("-f,--input-file", gen_flags.input_file,
                       "sources, one per line (SOURCE or SOURCE<TAB>REFERENCE)");
  generate->add_option("--strategy", gen_flags.strategy, "greedy or beam (default: the model file's)");
  generate->add_option("--beam-width", gen_flags.beam_width, "beams per source")->check(CLI::PositiveNumber);
  generate->add_option("--length-penalty", gen_flags.length_penalty, "rank hypotheses by score / length^this");
  generate->add_option("--max-length", gen_flags.max_length, "tokens generated at most")->check(CLI::PositiveNumber);
  generate->add_option("--n-best", gen_flags.n_best, "hypotheses printed per source (beam search)")
      ->check(CLI::PositiveNumber);
  generate->add_option("--batch", gen_flags.batch, "sources per batch (default 32)")->check(CLI::PositiveNumber);
  generate->add_flag("-q,--quiet", gen_flags.quiet, "print only the totals (and the accuracy)");
  generate->add_option("-O,--opt-level", flags.opt_level, "optimization level: 0, 1 or 2 (default)")
      ->check(CLI::Range(0, 2));
  generate->add_option("--quantize", flags.quantize, kiln::kQuantizeHelp);
  generate->add_flag("--explain", flags.explain,
                     "list what the passes did to the encoder and the decoder (with --quantize: each weight's error)");

  std::string import_dir;
  auto* import = app.add_subcommand("import", "convert an ONNX model into a Kiln YAML model and safetensors weights");
  import->add_option("model", model_path, "model file (.onnx)")->required();
  import->add_option("-o,--output-dir", import_dir, "write DIR/model.yaml and DIR/model.safetensors")->required();
  import
      ->add_option("-O,--opt-level", flags.opt_level,
                   "passes run before writing: 0 as imported, 1 (default) cleanup, 2 also fusions")
      ->check(CLI::Range(0, 2));
  import->add_option("--disable-pass", flags.disabled, "do not run this pass (repeatable)");

  auto* ops = app.add_subcommand("ops", "list the operators this build knows, with inputs and attributes");
  auto* passes = app.add_subcommand("passes", "list the optimization passes in pipeline order");

  kiln::AotCli aot;  // compile, inspect, bench (tools/kilnc_aot.cpp)
  kiln::add_aot_subcommands(app, aot);

  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& e) {
    return app.exit(e);
  }
  try {
    std::unique_ptr<tbb::global_control> tbb_threads;
    if (threads > 0) {
      omp_set_num_threads(threads);
      tbb_threads = std::make_unique<tbb::global_control>(tbb::global_control::max_allowed_parallelism, threads);
    }
    if (*check) return cmd_check(model_path, locations, flags);
    if (*run) return cmd_run(model_path, input_specs, output_dir, repeat, warmup, print_limit, flags);
    if (*profile) return cmd_profile(model_path, input_specs, profile_runs, flags);
    if (*dot) return cmd_dot(model_path, flags);
    if (*import) {
      if (import->count("--opt-level") == 0) flags.opt_level = 1;  // import's default: cleanup, no fusions
      return cmd_import(model_path, import_dir, flags);
    }
    if (*generate) return cmd_generate(model_path, gen_flags, flags);
    if (*ops) return cmd_ops();
    if (*passes) return cmd_passes();
    if (int code = kiln::run_aot_subcommand(aot); code >= 0) return code;
    std::fprintf(stderr,
                 "error: expected a subcommand: check, run, profile, dot, import, ops, passes, compile, inspect, bench "
                 "or generate (see kilnc --help)\n");
    return 2;
  } catch (const kiln::Error& e) {
    std::fprintf(stderr, "%s\n", e.what());
    return 1;
  } catch (const std::bad_alloc&) {
    std::fprintf(stderr, "error: out of memory\n");
    return 1;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "error: %s\n", e.what());
    return 1;
  }
  return 0;
}
