#pragma once
// A pass rewrites a Graph and reports whether it changed it, leaving remarks (what fired, what declined
// and why) for `kilnc --explain`. The pipeline per optimization level is written out in make_pipeline.

#include <iosfwd>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "graph/graph.hpp"

namespace kiln {

/// One line of `--explain`: a rewrite that fired, or one that matched partly and declined, with why.
struct Remark {
  std::string pass;
  bool fired = false;
  std::string node;  // the node's label, e.g. "linear 'encoder_layer.0/h'"
  SourceLoc loc;
  std::string message;
  std::string str() const;  // "model.yaml:17:9: fuse-activation: fired on linear 'h': absorbed relu 'h1'"
};

class PassContext {
 public:
  explicit PassContext(std::string pass = {}, Quantize quantize = Quantize::none)
      : pass_(std::move(pass)), quantize_(quantize) {}
  void set_pass(std::string pass) { pass_ = std::move(pass); }
  /// The weight quantization the model is compiled with (pack-weights applies it; docs/quantization.md).
  Quantize quantize() const { return quantize_; }
  void fired(const Node& node, const std::string& message);
  void declined(const Node& node, const std::string& reason);
  const std::vector<Remark>& remarks() const { return remarks_; }

 private:
  std::string pass_;
  Quantize quantize_ = Quantize::none;
  std::vector<Remark> remarks_;
};

class Pass {
 public:
  virtual ~Pass() = default;
  /// The name used by --disable-pass and --print-after.
  virtual const char* name() const = 0;
  /// One line for `kilnc passes`.
  virtual const char* summary() const = 0;
  /// Rewrites `g`; returns true when it changed anything.
  virtual bool run(Graph& g, PassContext& ctx) = 0;
};

// The passes (one file each in passes/).
std::unique_ptr<Pass> make_dead_code_pass();
std::unique_ptr<Pass> make_assign_layouts_pass();
std::unique_ptr<Pass> make_pack_weights_pass();
std::unique_ptr<Pass> make_constant_fold_pass();
std::unique_ptr<Pass> make_cse_pass();
std::unique_ptr<Pass> make_remove_noops_pass();
std::unique_ptr<Pass> make_prepack_matmul_weights_pass();
std::unique_ptr<Pass> make_fuse_layer_norm_pass();
std::unique_ptr<Pass> make_fuse_gelu_pass();
std::unique_ptr<Pass> make_fuse_attention_pass();
std::unique_ptr<Pass> make_fuse_add_layer_norm_pass();
std::unique_ptr<Pass> make_fold_conv_batch_norm_pass();

/// fuse-activation and fuse-residual fold post-ops into any op whose schema accepts them
/// (OpSchema::post_ops), in the order the op applies them. Each runs twice: ActivationFirst, early, for
/// ops that apply the activation before the residual (linear: fuse-activation, then fuse-residual);
/// ResidualFirst, late, after fold-conv-batch-norm, for ops that apply it after (conv2d: fuse-residual,
/// then fuse-activation). --disable-pass and --print-after name both runs.
enum class PostOpStage { ActivationFirst, ResidualFirst };
std::unique_ptr<Pass> make_fuse_activation_pass(PostOpStage stage);
std::unique_ptr<Pass> make_fuse_residual_pass(PostOpStage stage);
/// For the passes' summaries: the ops folding post-ops in `stage` ("a/b"), and which ops those are.
std::string post_op_ops(PostOpStage stage);
const char* stage_str(PostOpStage stage);

struct PipelineOptions {
  int opt_level = 2;
  std::set<std::string> disabled;     // pass names not to run
  std::set<std::string> print_after;  // pass names, or "all", whose result is printed
  std::ostream* print_to = nullptr;   // where --print-after writes (IR after each listed pass)
  /// Weight quantization (LoadOptions::quantize, kilnc --quantize): set, it overrides the model file's
  /// (Graph::quantize); the compile driver resolves the two into `quantize` before lowering.
  std::optional<Quantize> quantize_override;
  Quantize quantize = Quantize::none;
#ifdef NDEBUG
  bool verify_each = false;  // debug builds verify the graph after every pass
#else
  bool verify_each = true;
#endif
};

/// Every pass at every level, in pipeline order (for --help and validation).
std::vector<std::unique_ptr<Pass>> all_passes();
/// The passes for a level, in order: -O0 none; -O1 cleanup (no-ops, constants, cse, dead code);
/// -O2 cleanup + fusions.
std::vector<std::unique_ptr<Pass>> make_pipeline(const PipelineOptions& options);
/// Runs the pipeline; re-infers shapes after each pass that changed the graph (and verifies, when
/// verify_each). Throws kiln::Error naming unknown pass names in options.
std::vector<Remark> run_pipeline(Graph& g, const PipelineOptions& options);
/// The passes that lower an optimized graph for its kernels, in order: pack-weights. They are not
/// optimizations: the compile driver runs them after the pipeline at every level, -O0 included, unless
/// options.disabled names them.
std::vector<std::unique_ptr<Pass>> lowering_passes();
/// Runs lowering_passes() as run_pipeline runs the pipeline.
std::vector<Remark> run_lowering(Graph& g, const PipelineOptions& options);

}  // namespace kiln
