// assign-layouts: gives every kernel its inputs in the layout it needs and the caller plain outputs,
// inserting a reorder only where a producer's layout and a consumer's need differ:
//   - each op's schema says which layout it needs (OpSchema::layout: plain unless the op is layout-
//     preserving, like elementwise ops, which take their first input's layout);
//   - a value needed in layout L is reordered once, and the reorder shared by all consumers needing L;
//   - a value that is itself a reorder of something already in L is not reordered back: the consumer
//     reads the original (the pair cancels), and dead-code removes what nobody reads any more;
//   - reorders to the layout a value already has are removed;
//   - an op that can run in several layouts (conv2d: plain or nChw8c) is switched to the one its schema
//     prefers (OpSchema::preferred_layout), before its inputs are matched to it. Layout-preserving ops
//     after it (eltwise, add, pooling, concat) then run in that layout too, so a CNN stays blocked
//     from its first convolution to its last;
//   - constant weight inputs are left alone: kernels pack them once, when they are created.
// Shape rules propagate layouts, so the types downstream of each rewrite are re-inferred on the way.

#include <map>

#include "graph/schema.hpp"
#include "passes/match.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

std::string layout_name(const std::string& l) { return l.empty() ? "plain" : l; }

void reinfer(Node* n) {
  std::vector<const TensorType*> in;
  for (Value* v : n->inputs) in.push_back(v ? &v->type : nullptr);
  auto out = n->schema->infer(ShapeCtx(*n, std::move(in)));
  for (std::size_t i = 0; i < out.size(); ++i) n->outputs[i]->type = std::move(out[i]);
}

class AssignLayouts : public Pass {
 public:
  const char* name() const override { return "assign-layouts"; }
  const char* summary() const override {
    return "run ops in the layout they prefer (conv2d: nChw8c); insert reorders where producer and consumer layouts "
           "differ; cancel inverse pairs";
  }

  bool run(Graph& g, PassContext& ctx) override {
    bool changed = false;
    std::map<std::pair<const Value*, std::string>, Value*> reordered;  // (value, layout) -> value in that layout
    std::vector<Node*> nodes;
    for (const auto& n : g.nodes()) nodes.push_back(n.get());
    for (Node* n : nodes) {
      // A reorder to the layout its input already has does nothing.
      if (n->op == "reorder" && !g.is_output(n->outputs[0])) {
        reinfer(n);
        if (n->inputs[0]->type.layout == n->outputs[0]->type.layout) {
          ctx.fired(*n, "removed: '" + n->inputs[0]->name + "' is already " + layout_name(n->inputs[0]->type.layout));
          g.replace_uses(n->outputs[0], n->inputs[0]);
          g.remove_node(n);
          changed = true;
          continue;
        }
        // A reorder back to the layout its input was reordered from cancels: read the original.
        Node* back = producer_of(n->inputs[0], "reorder");
        if (back && back->inputs[0]->type.layout == n->outputs[0]->type.layout) {
          ctx.fired(*n, "removed: it undoes " + back->label() + "; its uses read '" + back->inputs[0]->name + "'");
          g.replace_uses(n->outputs[0], back->inputs[0]);
          g.remove_node(n);
          changed = true;
          continue;
        }
      }
      // An op with a choice runs in the layout it prefers (given its inputs' types, known by now).
      if (n->schema->preferred_layout) {
        std::string best = n->schema->preferred_layout(*n);
        if (n->attr_string("layout") != best) {
          ctx.fired(*n, "runs in " + best);
          n->attrs["layout"] = best;
          changed = true;
        }
      }
      const std::string want = n->schema->required_layout(*n);
      for (std::size_t i = 0; i < n->inputs.size(); ++i) {
        Value* v = n->inputs[i];
        if (!v || v->type.layout == want || (v->is_constant() && n->schema->is_weight_input(i))) continue;
        g.set_input(n, i, in_layout(g, ctx, *n, v, want, reordered));
        changed = true;
      }
      reinfer(n);
    }
    // The caller gets plain outputs, under their own names.
    for (Value*& out : g.outputs) {
      if (out->type.plain()) continue;
      Node* producer = out->producer;
      Value* blocked = g.add_value(out->name + "." + out->type.layout, out->type);
      g.set_output(producer, 0, blocked);
      for (Node* user : std::vector<Node*>(out->users))
        for (std::size_t i = 0; i < user->inputs.size(); ++i)
          if (user->inputs[i] == out) g.set_input(user, i, blocked);
      Value* plain = in_layout(g, ctx, *producer, blocked, "", reordered);
      // Give the plain copy the output's value (and so its name).
      Node* r = plain->producer;
      if (r && r->op == "reorder") {
        out->type = plain->type;
        g.set_output(r, 0, out);
      }
      changed = true;
    }
    if (changed) g.compact();
    return changed;
  }

 private:
  // `v` in layout `want`: a shared reorder, or the original when `v` is a reorder of something in `want`.
  static Value* in_layout(Graph& g, PassContext& ctx, const Node& consumer, Value* v, const std::string& want,
                          std::map<std::pair<const Value*, std::string>, Value*>& reordered) {
    if (Node* back = producer_of(v, "reorder"); back && back->inputs[0]->type.layout == want) {
      ctx.fired(consumer, "reads '" + back->inputs[0]->name + "' directly: reordering '" + v->name + "' back to " +
                              layout_name(want) + " would cancel " + back->label());
      return back->inputs[0];
    }
    auto key = std::make_pair(static_cast<const Value*>(v), want);
    if (auto it = reordered.find(key); it != reordered.end()) return it->second;
    TensorType t = v->type;
    t.layout = want;
    Value* out = g.add_value(v->name + "." + layout_name(want), t);
    Node* r = g.add_node("reorder", out->name, {v}, {out}, AttrMap{{"to", Attr{layout_name(want)}}}, consumer.loc);
    (void)r;
    ctx.fired(consumer, "inserted a reorder of '" + v->name + "' from " + layout_name(v->type.layout) + " to " +
                            layout_name(want) + ", the layout it needs");
    reordered.emplace(key, out);
    return out;
  }
};

}  // namespace

std::unique_ptr<Pass> make_assign_layouts_pass() { return std::make_unique<AssignLayouts>(); }

}  // namespace kiln
