// fuse-gelu: GELU written out becomes one gelu node, in either of PyTorch's forms:
//   erf:  0.5 · x · (1 + erf(x / √2))                                  -> gelu(x)
//   tanh: 0.5 · x · (1 + tanh(√(2/π) · (x + 0.044715 · x³)))           -> gelu(x) {approximate="tanh"}
// The outer product may associate either way: (x·t)·0.5, (x·0.5)·t, x·(t·0.5), with t = 1 + erf(...).

#include "passes/match.hpp"
#include "passes/pass.hpp"

namespace kiln {
namespace {

constexpr double kSqrt2 = 1.4142135623730951;
constexpr double kSqrt2OverPi = 0.7978845608028654;

// The single consumer of `v` when it is an `op` node and `v` is used nowhere else.
Node* only_user(const Graph& g, const Value* v, const char* op) {
  if (!why_not_single_use(g, v).empty()) return nullptr;
  Node* n = v->users[0];
  return n->op == op ? n : nullptr;
}

// x for u = x / √2 or x · (1/√2).
Value* erf_argument(Node* n, std::vector<Node*>& nodes) {
  if (!n) return nullptr;
  Value* x = n->op == "div"   ? other_than_scalar(n, kSqrt2, false)
             : n->op == "mul" ? other_than_scalar(n, 1 / kSqrt2, true)
                              : nullptr;
  if (x) nodes.push_back(n);
  return x;
}

// x for u = √(2/π) · (x + 0.044715 · pow(x, 3)).
Value* tanh_argument(Node* n, std::vector<Node*>& nodes) {
  if (!n || n->op != "mul") return nullptr;
  Value* inner = other_than_scalar(n, kSqrt2OverPi, true);
  Node* add = inner ? producer_of(inner, "add") : nullptr;
  if (!add) return nullptr;
  for (int side : {0, 1}) {
    Value* x = add->inputs[side];
    Node* cubic = producer_of(add->inputs[1 - side], "mul");
    Value* cube = cubic ? other_than_scalar(cubic, 0.044715, true) : nullptr;
    Node* pow = cube ? producer_of(cube, "pow") : nullptr;
    if (pow && pow->attr_float("exponent") == 3.0 && pow->inputs[0] == x) {
      nodes.insert(nodes.end(), {n, add, cubic, pow});
      return x;
    }
  }
  return nullptr;
}

class FuseGelu : public Pass {
 public:
  const char* name() const override { return "fuse-gelu"; }
  const char* summary() const override { return "0.5·x·(1 + erf(x/√2)) or its tanh form -> gelu"; }

  bool run(Graph& g, PassContext& ctx) override {
    std::vector<Node*> cores;
    for (const auto& n : g.nodes())
      if (n->op == "erf" || n->op == "tanh") cores.push_back(n.get());
    bool changed = false;
    for (Node* core : cores) {
      std::vector<Node*> nodes;
      Value* x = core->op == "erf" ? erf_argument(core->inputs[0]->producer, nodes)
                                   : tanh_argument(core->inputs[0]->producer, nodes);
      if (!x) continue;
      nodes.push_back(core);
      if (std::string why = why_not_single_use(g, core->outputs[0]); !why.empty()) {
        ctx.declined(*core, why);
        continue;
      }
      Node* one = only_user(g, core->outputs[0], "add");
      Value* t = one && other_than_scalar(one, 1.0, true) ? one->outputs[0] : nullptr;
      if (!t) {
        ctx.declined(*core, "its result is not used only by add(_, 1)");
        continue;
      }
      if (std::string why = why_not_single_use(g, t); !why.empty()) {
        ctx.declined(*core, "1 + " + core->op + "(...): " + why);
        continue;
      }
      nodes.push_back(one);
      // The outer product of x, t and 0.5.
      Node* m1 = only_user(g, t, "mul");
      Node* root = nullptr;
      if (m1) {
        Value* other = m1->inputs[0] == t ? m1->inputs[1] : m1->inputs[0];
        Node* half_x = producer_of(other, "mul");
        if (other == x) {  // (x·t)·0.5
          root = only_user(g, m1->outputs[0], "mul");
          if (root && !other_than_scalar(root, 0.5, true)) root = nullptr;
          if (root) nodes.push_back(m1);
        } else if (is_scalar(other, 0.5)) {  // x·(t·0.5)
          root = only_user(g, m1->outputs[0], "mul");
          if (root && !(root->inputs[0] == x || root->inputs[1] == x)) root = nullptr;
          if (root) nodes.push_back(m1);
        } else if (half_x && other_than_scalar(half_x, 0.5, true) == x &&
                   why_not_single_use(g, other).empty()) {  // (x·0.5)·t
          root = m1;
          nodes.push_back(half_x);
        }
      }
      if (!root) {
        ctx.declined(*core, "1 + " + core->op + "(...) is not multiplied by x and 0.5");
        continue;
      }
      std::string why;
      for (Node* n : nodes)
        if (n != core && n != one && why.empty())
          if (std::string w = why_not_single_use(g, n->outputs[0]); !w.empty()) why = n->label() + ": " + w;
      if (why.empty()) why = why_not_single_use(g, core->outputs[0]);
      if (!why.empty()) {
        ctx.declined(*core, why);
        continue;
      }
      Value* out = root->outputs[0];
      std::string name = root->name;
      SourceLoc loc = root->loc;
      const char* form = core->op == "erf" ? "none" : "tanh";
      ctx.fired(*root, std::string("became gelu {approximate=\"") + form + "\"}, absorbing " +
                           std::to_string(nodes.size() + 1) + " nodes");
      Value* fresh = g.add_value(out->name + ".fused", out->type);
      g.remove_node(root);
      for (Node* n : nodes) g.remove_node(n);
      Node* gelu = g.add_node("gelu", name, {x}, {fresh}, AttrMap{{"approximate", Attr{std::string(form)}}}, loc);
      g.set_output(gelu, 0, out);
      changed = true;
    }
    if (changed) g.compact();
    return changed;
  }
};

}  // namespace

std::unique_ptr<Pass> make_fuse_gelu_pass() { return std::make_unique<FuseGelu>(); }

}  // namespace kiln
