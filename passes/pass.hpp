#pragma once
// A pass rewrites a Graph and reports whether it changed it. A pipeline runs passes by optimization
// level; each pass has a name usable to disable it.

#include <memory>
#include <set>
#include <string>
#include <vector>

#include "graph/graph.hpp"

namespace kiln {

class Pass {
 public:
  virtual ~Pass() = default;
  virtual const char* name() const = 0;
  /// Rewrites `g`; returns true when it changed anything.
  virtual bool run(Graph& g) = 0;
};

/// Removes nodes whose outputs nothing uses and constants no node reads.
std::unique_ptr<Pass> make_dead_code_pass();

struct PipelineOptions {
  int opt_level = 2;
  std::set<std::string> disabled;
};

/// The passes for a level, in order: -O0 none; -O1 and up: dead-code.
std::vector<std::unique_ptr<Pass>> make_pipeline(const PipelineOptions& options);
/// Runs the pipeline; verifies and re-infers shapes after each pass that changed the graph.
void run_pipeline(Graph& g, const PipelineOptions& options);

}  // namespace kiln
