#include "passes/pass.hpp"

namespace kiln {

std::vector<std::unique_ptr<Pass>> make_pipeline(const PipelineOptions& options) {
  std::vector<std::unique_ptr<Pass>> all;
  if (options.opt_level >= 1) all.push_back(make_dead_code_pass());
  std::vector<std::unique_ptr<Pass>> out;
  for (auto& p : all)
    if (!options.disabled.count(p->name())) out.push_back(std::move(p));
  return out;
}

void run_pipeline(Graph& g, const PipelineOptions& options) {
  for (auto& pass : make_pipeline(options)) {
    if (pass->run(g)) {
      g.verify();
      g.infer_shapes();
    }
  }
}

}  // namespace kiln
