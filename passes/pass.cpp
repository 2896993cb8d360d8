#include "passes/pass.hpp"

#include <ostream>

namespace kiln {

std::string Remark::str() const {
  std::string where = loc.known() ? loc.str() + ": " : std::string();
  return where + pass + ": " + (fired ? "fired on " : "declined on ") + node + ": " + message;
}

void PassContext::fired(const Node& node, const std::string& message) {
  remarks_.push_back(Remark{pass_, true, node.label(), node.loc, message});
}

void PassContext::declined(const Node& node, const std::string& reason) {
  remarks_.push_back(Remark{pass_, false, node.label(), node.loc, reason});
}

namespace {

// The pipeline, in order, with the level each pass starts at.
struct Entry {
  int level;
  std::unique_ptr<Pass> (*make)();
};
const std::vector<Entry>& pipeline() {
  static const std::vector<Entry> entries = {
      {1, make_remove_noops_pass},
      {1, make_constant_fold_pass},
      {1, make_cse_pass},
      {2, make_prepack_matmul_weights_pass},
      {2, make_fuse_layer_norm_pass},
      {2, make_fuse_gelu_pass},
      {2, make_fuse_attention_pass},
      {2, [] { return make_fuse_activation_pass(PostOpStage::ActivationFirst); }},
      {2, [] { return make_fuse_residual_pass(PostOpStage::ActivationFirst); }},
      {2, make_fuse_add_layer_norm_pass},
      {2, make_fold_conv_batch_norm_pass},
      {2, [] { return make_fuse_residual_pass(PostOpStage::ResidualFirst); }},
      {2, [] { return make_fuse_activation_pass(PostOpStage::ResidualFirst); }},
      {1, make_assign_layouts_pass},
      {1, make_dead_code_pass},
  };
  return entries;
}

}  // namespace

std::vector<std::unique_ptr<Pass>> all_passes() {
  std::vector<std::unique_ptr<Pass>> out;
  for (const auto& e : pipeline()) out.push_back(e.make());
  return out;
}

std::vector<std::unique_ptr<Pass>> lowering_passes() {
  std::vector<std::unique_ptr<Pass>> out;
  out.push_back(make_pack_weights_pass());
  return out;
}

std::vector<std::unique_ptr<Pass>> make_pipeline(const PipelineOptions& options) {
  std::set<std::string> known;
  std::string names;
  std::vector<std::unique_ptr<Pass>> every = all_passes();
  for (auto& p : lowering_passes()) every.push_back(std::move(p));
  for (const auto& p : every) {
    known.insert(p->name());
    names += (names.empty() ? "" : ", ") + std::string(p->name());
  }
  for (const auto& d : options.disabled)
    if (!known.count(d)) fail("unknown pass '" + d + "' in --disable-pass (passes: " + names + ")");
  for (const auto& d : options.print_after)
    if (d != "all" && !known.count(d))
      fail("unknown pass '" + d + "' in --print-after (passes: " + names + ", or all)");
  std::vector<std::unique_ptr<Pass>> out;
  for (const auto& e : pipeline()) {
    if (options.opt_level < e.level) continue;
    auto p = e.make();
    if (!options.disabled.count(p->name())) out.push_back(std::move(p));
  }
  return out;
}

namespace {

std::vector<Remark> run_passes(Graph& g, const PipelineOptions& options, std::vector<std::unique_ptr<Pass>> passes) {
  std::vector<Remark> remarks;
  for (auto& pass : passes) {
    if (options.disabled.count(pass->name())) continue;
    PassContext ctx(pass->name(), options.quantize);
    bool changed = pass->run(g, ctx);
    if (changed) {
      g.toposort();
      if (options.verify_each) g.verify();
      g.infer_shapes();
    }
    remarks.insert(remarks.end(), ctx.remarks().begin(), ctx.remarks().end());
    if (options.print_to && (options.print_after.count("all") || options.print_after.count(pass->name())))
      *options.print_to << "// after " << pass->name() << (changed ? "" : " (unchanged)") << "\n" << g.print();
  }
  return remarks;
}

}  // namespace

std::vector<Remark> run_pipeline(Graph& g, const PipelineOptions& options) {
  return run_passes(g, options, make_pipeline(options));
}

std::vector<Remark> run_lowering(Graph& g, const PipelineOptions& options) {
  make_pipeline(options);  // checks the pass names in options
  return run_passes(g, options, lowering_passes());
}

}  // namespace kiln
