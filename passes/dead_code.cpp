// dead-code: drops nodes none of whose outputs reach a graph output, then values nothing refers to.

#include <unordered_set>

#include "passes/pass.hpp"

namespace kiln {
namespace {

class DeadCode : public Pass {
 public:
  const char* name() const override { return "dead-code"; }
  const char* summary() const override { return "remove nodes whose outputs reach no graph output"; }
  bool run(Graph& g, PassContext&) override {
    std::unordered_set<const Value*> live(g.outputs.begin(), g.outputs.end());
    std::vector<Node*> dead;
    for (auto it = g.nodes().rbegin(); it != g.nodes().rend(); ++it) {
      Node* n = it->get();
      bool used = false;
      for (Value* out : n->outputs) used = used || live.count(out);
      if (!used) {
        dead.push_back(n);
        continue;
      }
      for (Value* in : n->inputs)
        if (in) live.insert(in);
    }
    std::size_t before = g.num_values();
    for (Node* n : dead) g.remove_node(n);
    g.compact();
    return !dead.empty() || g.num_values() != before;
  }
};

}  // namespace

std::unique_ptr<Pass> make_dead_code_pass() { return std::make_unique<DeadCode>(); }

}  // namespace kiln
