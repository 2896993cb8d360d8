// cse: common-subexpression elimination. Two nodes with the same op, the same inputs and the same
// attributes compute the same values; later uses read the first one's outputs.
//   %a = relu(%x); %b = relu(%x); %y = add(%a, %b)   ->   %a = relu(%x); %y = add(%a, %a)

#include <map>

#include "passes/match.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

class Cse : public Pass {
 public:
  const char* name() const override { return "cse"; }
  const char* summary() const override { return "merge nodes with the same op, inputs and attributes"; }

  bool run(Graph& g, PassContext& ctx) override {
    std::map<std::string, Node*> seen;
    std::vector<Node*> nodes;
    for (const auto& n : g.nodes()) nodes.push_back(n.get());
    bool changed = false;
    for (Node* n : nodes) {
      std::string key = n->op + "(";
      for (const Value* v : n->inputs) key += (v ? std::to_string(v->id) : std::string("_")) + ",";
      key += ")";
      for (const auto& [k, v] : n->attrs) key += k + "=" + attr_str(v) + ";";
      auto [it, fresh] = seen.emplace(key, n);
      if (fresh) continue;
      Node* first = it->second;
      bool outputs_free = true;
      for (const Value* out : n->outputs) outputs_free = outputs_free && !g.is_output(out);
      if (!outputs_free) {
        ctx.declined(*n, "same as " + first->label() + ", but its outputs are graph outputs, whose names must stay");
        continue;
      }
      ctx.fired(*n, "same as " + first->label() + "; removed");
      for (std::size_t i = 0; i < n->outputs.size(); ++i) g.replace_uses(n->outputs[i], first->outputs[i]);
      g.remove_node(n);
      changed = true;
    }
    if (changed) g.compact();
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> make_cse_pass() { return std::make_unique<Cse>(); }

}  // namespace kiln
