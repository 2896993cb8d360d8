#include "runtime/compile.hpp"

#include <algorithm>
#include <cstdlib>
#include <cstring>
#include <map>
#include <utility>
#include <vector>

#include <sys/mman.h>
#include <unistd.h>

#include "frontends/onnx/onnx_frontend.hpp"
#include "frontends/safetensors.hpp"
#include "frontends/yaml/yaml_frontend.hpp"
#include "graph/checked.hpp"
#include "ops/isa.hpp"
#include "ops/qgemm.hpp"
#include "runtime/model_impl.hpp"

namespace kiln::detail {

namespace {

// A YAML model in memory: one aligned copy of the weights the model owns, so that tensors are aligned views
// and the caller may free its buffer.
std::unique_ptr<Graph> parse_in_memory(const CompileRequest& r) {
  std::shared_ptr<WeightsFile> file;
  if (r.weights) {
    if (r.weights_size > static_cast<std::size_t>(checked::kMaxSize) - 63)  // (weights_size + 63) must not wrap
      fail("cannot copy " + std::to_string(r.weights_size) + " bytes of weights: more than " +
           std::to_string(checked::kMaxSize) + " bytes");
    void* mem = std::aligned_alloc(64, std::max<std::size_t>((r.weights_size + 63) / 64 * 64, 64));
    if (!mem) fail("out of memory copying " + std::to_string(r.weights_size) + " bytes of weights");
    std::shared_ptr<const void> owner(mem, [](const void* p) { std::free(const_cast<void*>(p)); });
    std::memcpy(mem, r.weights, r.weights_size);
    file = WeightsFile::from_memory(r.path + " (weights)", mem, r.weights_size, owner);
  }
  return parse_yaml_model(*r.yaml_text, r.path, std::move(file));
}

// The byte ranges of the constants `g` uses now.
std::vector<std::pair<const char*, std::size_t>> constant_ranges(const Graph& g) {
  std::vector<std::pair<const char*, std::size_t>> out;
  for (const auto& v : g.values())
    if (v->is_constant() && v->constant.bytes > 0 && !v->users.empty())
      out.emplace_back(static_cast<const char*>(v->constant.data), v->constant.bytes);
  return out;
}

// Quantized weights replace the f32 ones (docs/quantization.md): the pages of the weights the passes
// dropped (in `before`, overlapping nothing the graph still uses) are handed back to the OS with
// MADV_PAGEOUT, a hint that keeps their contents (a mapped file's clean pages are dropped and read again if
// ever touched; anonymous memory is swapped at most), so that the process's RSS counts the quantized copies
// only. Best effort: a kernel without MADV_PAGEOUT ignores it.
void release_dropped_weights(const std::vector<std::pair<const char*, std::size_t>>& before, const Graph& g) {
#ifdef MADV_PAGEOUT
  const auto page = static_cast<std::uintptr_t>(sysconf(_SC_PAGESIZE));
  const auto used = constant_ranges(g);
  for (const auto& [data, bytes] : before) {
    const auto begin = reinterpret_cast<std::uintptr_t>(data), end = begin + bytes;
    const std::uintptr_t first = (begin + page - 1) / page * page, last = end / page * page;
    if (first >= last) continue;
    bool overlaps = false;
    for (const auto& [d, n] : used) {
      const auto b = reinterpret_cast<std::uintptr_t>(d);
      // Any page the kept constant touches.
      overlaps = overlaps || (b / page * page < last && (b + n + page - 1) / page * page > first);
    }
    if (!overlaps) madvise(const_cast<char*>(data) + (first - begin), last - first, MADV_PAGEOUT);
  }
#else
  (void)before;
  (void)g;
#endif
}

std::string extension(const std::string& path) {
  auto dot = path.find_last_of('.');
  return dot == std::string::npos ? std::string() : path.substr(dot);
}

}  // namespace

PipelineOptions pipeline_options(const LoadOptions& options) {
  PipelineOptions pipeline;
  pipeline.opt_level = options.opt_level;
  pipeline.disabled.insert(options.disabled_passes.begin(), options.disabled_passes.end());
  pipeline.quantize_override = options.quantize;
  return pipeline;
}

Quantize resolve_quantize(const Graph& g, const PipelineOptions& pipeline) {
  const Quantize q = pipeline.quantize_override.value_or(g.quantize.value_or(Quantize::none));
  if (q == Quantize::none) return q;
  if (pipeline.disabled.count("pack-weights")) {
    const std::string what = "quantize " + std::string(quantize_name(q)) +
                             ": the pack-weights pass quantizes the weights, and --disable-pass turns it off";
    if (pipeline.quantize_override) fail(what);
    fail_at(g.quantize_loc, what);
  }
  const qgemm::Format f = q == Quantize::int8 ? qgemm::Format::s8 : qgemm::Format::bf16;
  if (qgemm::available(f)) return q;
  const std::string what =
      std::string(q == Quantize::int8 ? "int8 weights need AVX2 (AVX512_VNNI or AVX_VNNI for the fast kernel)"
                                      : "bf16 weights need AVX512_BF16 (or AVX2 for the emulated kernel)") +
      ", which this CPU lacks under the instruction-set cap (" + isa::name(isa::effective()) +
      "); load the model without quantization (quantize: none) or on a CPU that has it";
  if (pipeline.quantize_override)
    fail("quantize " + std::string(quantize_name(q)) + " (--quantize, LoadOptions::quantize): " + what);
  fail_at(g.quantize_loc, "quantize: " + std::string(quantize_name(q)) + ": " + what);
}

std::shared_ptr<ModelImpl> compile(CompileRequest request) {
  std::shared_ptr<ModelImpl> impl;
  if (!request.graph && !request.yaml_text && extension(request.path) == ".kplan") {
    // Compiled ahead of time: the passes already ran and the dims were bound then.
    if (!request.dims.empty())
      throw Error(request.path +
                  ": error: a plan file's dims were bound when it was compiled (expected a .yaml model to bind)");
    impl = load_kplan_file(request.path);
    impl->options = request.options;
    return impl;
  }

  impl = std::make_shared<ModelImpl>();
  impl->path = request.path;
  impl->options = request.options;
  if (request.stage) request.stage("reading the model and its weights");
  if (request.graph) {
    impl->graph = std::move(request.graph);
  } else if (request.yaml_text) {
    impl->graph = parse_in_memory(request);
  } else {
    const std::string ext = extension(request.path);
    if (ext == ".onnx") impl->graph = load_onnx_model(request.path);
    else if (ext == ".yaml" || ext == ".yml") impl->graph = load_yaml_model(request.path);
    else
      fail_at(SourceLoc{request.path, 0, 0},
              "unrecognized model file type '" + ext + "' (expected .yaml, .yml, .onnx or .kplan)");
  }
  Graph& g = *impl->graph;
  if (!request.dims.empty()) impl->dim_ranges = bind_dims(g, request.dims);
  request.pipeline.quantize = resolve_quantize(g, request.pipeline);
  const auto weights_before =
      request.pipeline.quantize == Quantize::none ? decltype(constant_ranges(g))() : constant_ranges(g);
  if (request.stage) request.stage("running the optimization passes");
  impl->remarks = run_pipeline(g, request.pipeline);
  const std::vector<Remark> lowered = run_lowering(g, request.pipeline);
  impl->remarks.insert(impl->remarks.end(), lowered.begin(), lowered.end());
  release_dropped_weights(weights_before, g);
  impl->weight_bytes = weight_bytes_of(g);
  return impl;
}

std::vector<PlanSummary> summarize_plans(const ModelImpl& model) {
  const Graph& g = *model.graph;
  // Every combination of the ranges' ends.
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

}  // namespace kiln::detail
