// The IR: Graph::print's stable text form, verify()'s structural checks, shape inference over symbolic
// dims, and the dead-code pass (fires and must-not-fire cases), all on graphs built programmatically.

#include <cstdint>
#include <string>
#include <vector>

#include "graph/graph.hpp"
#include "passes/pass.hpp"
#include "test_util.hpp"

using kiln::test::error_of;

namespace {

using namespace kiln;

using Ints = std::vector<std::int64_t>;

// Constant payloads (graphs only point at them; the owner is left empty for static storage).
alignas(64) const float kWeights[64] = {};

ConstData const_data(std::size_t bytes) { return ConstData{kWeights, bytes, nullptr}; }

TensorType f32(Shape shape) { return TensorType{DType::f32, std::move(shape)}; }
Dim sym(const char* s) { return Dim::symbol(s); }
Dim n(std::int64_t v) { return Dim::of(v); }

// A small graph touching every printed feature: symbolic input dims, constants, absent optional inputs,
// float/string/int-list/bool attributes (given out of order), defaults filled in (linear's activation,
// softmax's axis), a node whose name differs from its output, two graph outputs, source locations.
std::unique_ptr<Graph> make_tiny() {
  auto g = std::make_unique<Graph>();
  g->name = "tiny";
  Value* x = g->add_value("x", f32({sym("batch"), sym("seq"), n(4)}));
  Value* fw = g->add_constant("fc.weight", f32({n(3), n(4)}), const_data(12 * sizeof(float)));
  Value* fb = g->add_constant("fc.bias", f32({n(3)}), const_data(3 * sizeof(float)));
  Value* nrm = g->add_value("n", {});
  Value* h = g->add_value("h", {});
  Value* act = g->add_value("g", {});
  Value* pooled = g->add_value("pooled", {});
  Value* probs = g->add_value("probs", {});
  g->add_node("layer_norm", "n", {x, nullptr, nullptr}, {nrm}, {{"eps", 0.001}}, SourceLoc{"tiny.yaml", 7, 5});
  g->add_node("linear", "h", {nrm, fw, fb}, {h}, {}, SourceLoc{"tiny.yaml", 8, 5});
  g->add_node("gelu", "act", {h}, {act}, {{"approximate", std::string("tanh")}}, SourceLoc{"tiny.yaml", 9, 5});
  AttrMap reduce_attrs;
  reduce_attrs.emplace("keepdims", true);
  reduce_attrs.emplace("axes", Ints{1});
  g->add_node("reduce_mean", "pooled", {act}, {pooled}, std::move(reduce_attrs), SourceLoc{"tiny.yaml", 10, 5});
  g->add_node("softmax", "probs", {pooled}, {probs}, {}, SourceLoc{"tiny.yaml", 11, 5});  // axis defaults to -1
  g->inputs = {x};
  g->outputs = {probs, h};
  g->verify();
  g->infer_shapes();
  return g;
}

const char* const kTinyIr =
    "graph tiny(%x: f32[batch,seq,4]) -> (%probs, %h) {\n"
    "  %fc.weight = const : f32[3,4]\n"
    "  %fc.bias = const : f32[3]\n"
    "  %n = layer_norm(%x, _, _) {eps=0.001} : (f32[batch,seq,4], _, _) -> f32[batch,seq,4]\n"
    "  %h = linear(%n, %fc.weight, %fc.bias) {activation=\"none\"} : (f32[batch,seq,4], f32[3,4], f32[3]) -> f32[batch,seq,3]\n"
    "  %g = gelu(%h) {approximate=\"tanh\"} : (f32[batch,seq,3]) -> f32[batch,seq,3]  name(\"act\")\n"
    "  %pooled = reduce_mean(%g) {axes=[1], keepdims=true} : (f32[batch,seq,3]) -> f32[batch,1,3]\n"
    "  %probs = softmax(%pooled) {axis=-1} : (f32[batch,1,3]) -> f32[batch,1,3]\n"
    "  return %probs, %h\n"
    "}\n";

}  // namespace

TEST_CASE("Graph::print: known graph, full text") {
  auto g = make_tiny();
  CHECK(g->print() == kTinyIr);
}

TEST_CASE("Graph::print: stable across builds, locations on request") {
  auto a = make_tiny();
  auto b = make_tiny();
  CHECK(a->print() == b->print());
  CHECK(a->print(true) == b->print(true));
  CHECK(a->print() == a->print());
  const std::string with_loc = a->print(true);
  CHECK(with_loc.find("%n = layer_norm(%x, _, _) {eps=0.001} : (f32[batch,seq,4], _, _) -> f32[batch,seq,4]  loc(tiny.yaml:7:5)\n") !=
        std::string::npos);
  CHECK(with_loc.find("name(\"act\")  loc(tiny.yaml:9:5)\n") != std::string::npos);
  // Attributes print sorted by name whatever order they were given in.
  CHECK(with_loc.find("{axes=[1], keepdims=true}") != std::string::npos);
}

TEST_CASE("Graph::print: attribute value forms") {
  Graph g;
  g.name = "attrs";
  Value* x = g.add_value("x", f32({n(2), n(3)}));
  Value* y = g.add_value("y", {});
  Value* z = g.add_value("z", {});
  g.add_node("layer_norm", "y", {x, nullptr, nullptr}, {y}, {{"eps", 1e-5}}, SourceLoc{});
  g.add_node("transpose", "z", {y}, {z}, {{"perm", Ints{-1, 0}}}, SourceLoc{});
  g.inputs = {x};
  g.outputs = {z};
  g.verify();
  g.infer_shapes();
  CHECK(g.print() ==
        "graph attrs(%x: f32[2,3]) -> (%z) {\n"
        "  %y = layer_norm(%x, _, _) {eps=1e-05} : (f32[2,3], _, _) -> f32[2,3]\n"
        "  %z = transpose(%y) {perm=[-1,0]} : (f32[2,3]) -> f32[3,2]\n"
        "  return %z\n"
        "}\n");
}

TEST_CASE("Graph::verify rejects a value used before it is defined") {
  Graph g;
  g.name = "g";
  Value* x = g.add_value("x", f32({n(2)}));
  Value* t = g.add_value("t", {});
  Value* u = g.add_value("u", {});
  g.add_node("relu", "u", {t}, {u}, {}, SourceLoc{"m.yaml", 3, 7});  // reads t ...
  g.add_node("relu", "t", {x}, {t}, {}, SourceLoc{"m.yaml", 4, 7});  // ... which is computed only here
  g.inputs = {x};
  g.outputs = {u};
  CHECK(error_of([&] { g.verify(); }) == "m.yaml:3:7: error: relu 'u': input 'src' uses value 't' before it is defined");

  // Same without a location; and a value that is never defined at all.
  Graph h;
  h.name = "h";
  Value* a = h.add_value("a", f32({n(2)}));
  Value* ghost = h.add_value("ghost", f32({n(2)}));  // neither an input nor a constant nor computed
  Value* s = h.add_value("s", {});
  h.add_node("add", "s", {a, ghost}, {s}, {}, SourceLoc{});
  h.inputs = {a};
  h.outputs = {s};
  CHECK(error_of([&] { h.verify(); }) == "error: add 's': input 'b' uses value 'ghost' before it is defined");
}

TEST_CASE("Graph::verify rejects a duplicate value name") {
  Graph g;
  g.name = "dup";
  Value* x = g.add_value("x", f32({n(2)}));
  Value* y = g.add_value("x", {});  // same name as the input
  g.add_node("relu", "y", {x}, {y}, {}, SourceLoc{});
  g.inputs = {x};
  g.outputs = {y};
  CHECK(error_of([&] { g.verify(); }) == "error: graph 'dup': value name 'x' is defined twice");
}

TEST_CASE("Graph::verify rejects other structural errors") {
  {
    Graph g;
    g.name = "g";
    Value* x = g.add_value("x", f32({n(2)}));
    Value* y = g.add_value("y", {});
    g.inputs = {x};
    g.outputs = {y};
    CHECK(error_of([&] { g.verify(); }) == "error: graph 'g': output 'y' is never computed");
  }
  {
    Graph g;
    g.name = "g";
    Value* x = g.add_value("x", f32({n(2)}));
    Value* y = g.add_value("y", {});
    g.add_node("add", "y", {x}, {y}, {}, SourceLoc{"m.yaml", 2, 3});
    g.inputs = {x};
    g.outputs = {y};
    CHECK(error_of([&] { g.verify(); }) == "m.yaml:2:3: error: add 'y': expected 2 inputs, got 1");
  }
  {
    Graph g;
    g.name = "g";
    Value* x = g.add_value("x", f32({n(2)}));
    Value* y = g.add_value("y", {});
    g.add_node("linear", "y", {x, nullptr, nullptr}, {y}, {}, SourceLoc{});
    g.inputs = {x};
    g.outputs = {y};
    CHECK(error_of([&] { g.verify(); }) == "error: linear 'y': required input 'weight' is missing");
  }
  Graph g;
  CHECK(error_of([&] { g.add_node("softmax", "s", {}, {}, {{"dim", std::int64_t{1}}}, SourceLoc{}); }) ==
        "error: softmax 's': unknown attribute 'dim' (expected one of: axis)");
  CHECK(error_of([&] { g.add_node("reduce_sum", "r", {}, {}, {}, SourceLoc{}); }) ==
        "error: reduce_sum 'r': missing required attribute 'axes' (int list)");
}

TEST_CASE("Graph::infer_shapes on symbolic dims") {
  // x[batch,seq,16] -> linear -> [batch,seq,32] -> reshape [0,0,4,-1] -> [batch,seq,4,8]
  // -> q = transpose [0,2,1,3], kt = transpose [0,2,3,1] -> scores = matmul(q, kt) [batch,4,seq,seq]
  // -> softmax -> reduce_sum over heads -> [batch,seq,seq]; and a flatten to [batch*seq,32].
  Graph g;
  g.name = "sym";
  Value* x = g.add_value("x", f32({sym("batch"), sym("seq"), n(16)}));
  Value* w = g.add_constant("w", f32({n(32), n(16)}), const_data(32 * 16 * sizeof(float)));
  auto v = [&](const char* name) { return g.add_value(name, {}); };
  Value *h = v("h"), *h4 = v("h4"), *q = v("q"), *kt = v("kt"), *s = v("s"), *p = v("p"), *r = v("r"), *flat = v("flat");
  g.add_node("linear", "h", {x, w, nullptr}, {h}, {}, SourceLoc{});
  g.add_node("reshape", "h4", {h}, {h4}, {{"shape", Ints{0, 0, 4, -1}}}, SourceLoc{});
  g.add_node("transpose", "q", {h4}, {q}, {{"perm", Ints{0, 2, 1, 3}}}, SourceLoc{});
  g.add_node("transpose", "kt", {h4}, {kt}, {{"perm", Ints{0, 2, 3, 1}}}, SourceLoc{});
  g.add_node("matmul", "s", {q, kt}, {s}, {}, SourceLoc{});
  g.add_node("softmax", "p", {s}, {p}, {}, SourceLoc{});
  g.add_node("reduce_sum", "r", {p}, {r}, {{"axes", Ints{1}}}, SourceLoc{});
  g.add_node("reshape", "flat", {h}, {flat}, {{"shape", Ints{-1, 32}}}, SourceLoc{});
  g.inputs = {x};
  g.outputs = {r, flat};
  g.verify();
  g.infer_shapes();
  CHECK(h->type.str() == "f32[batch,seq,32]");
  CHECK(h4->type.str() == "f32[batch,seq,4,8]");
  CHECK(q->type.str() == "f32[batch,4,seq,8]");
  CHECK(kt->type.str() == "f32[batch,4,8,seq]");
  CHECK(s->type.str() == "f32[batch,4,seq,seq]");
  CHECK(p->type.str() == "f32[batch,4,seq,seq]");
  CHECK(r->type.str() == "f32[batch,seq,seq]");
  CHECK(flat->type.str() == "f32[batch*seq,32]");

  // Distinct symbols never broadcast against each other.
  Graph bad;
  bad.name = "bad";
  Value* a = bad.add_value("a", f32({sym("batch"), sym("seq"), n(16)}));
  Value* b = bad.add_value("b", f32({sym("batch"), n(16)}));
  Value* c = bad.add_value("c", {});
  bad.add_node("add", "c", {a, b}, {c}, {}, SourceLoc{"m.yaml", 9, 1});
  bad.inputs = {a, b};
  bad.outputs = {c};
  bad.verify();
  CHECK(error_of([&] { bad.infer_shapes(); }) ==
        "m.yaml:9:1: error: add 'c': cannot broadcast shapes [batch,seq,16] and [batch,16] (dim 1: seq vs batch)");
}

namespace {

// x -> h = matmul(x, w) -> y = add(h, k): the live chain. d = mul(x, dw) -> d2 = relu(d): dead, and dw is
// read only by the dead node.
std::unique_ptr<Graph> make_with_dead_code() {
  auto g = std::make_unique<Graph>();
  g->name = "dce";
  Value* x = g->add_value("x", f32({sym("batch"), n(4)}));
  Value* w = g->add_constant("w", f32({n(4), n(4)}), const_data(16 * sizeof(float)));
  Value* k = g->add_constant("k", f32({n(4)}), const_data(4 * sizeof(float)));
  Value* dw = g->add_constant("dw", f32({n(4)}), const_data(4 * sizeof(float)));
  Value* h = g->add_value("h", {});
  Value* d = g->add_value("d", {});
  Value* d2 = g->add_value("d2", {});
  Value* y = g->add_value("y", {});
  g->add_node("matmul", "h", {x, w}, {h}, {}, SourceLoc{});
  g->add_node("mul", "d", {x, dw}, {d}, {}, SourceLoc{});
  g->add_node("relu", "d2", {d}, {d2}, {}, SourceLoc{});
  g->add_node("add", "y", {h, k}, {y}, {}, SourceLoc{});
  g->inputs = {x};
  g->outputs = {y};
  g->verify();
  g->infer_shapes();
  return g;
}

}  // namespace

TEST_CASE("dead-code pass removes unused nodes and their now-unused constants") {
  auto g = make_with_dead_code();
  CHECK(g->print() ==
        "graph dce(%x: f32[batch,4]) -> (%y) {\n"
        "  %w = const : f32[4,4]\n"
        "  %k = const : f32[4]\n"
        "  %dw = const : f32[4]\n"
        "  %h = matmul(%x, %w) : (f32[batch,4], f32[4,4]) -> f32[batch,4]\n"
        "  %d = mul(%x, %dw) : (f32[batch,4], f32[4]) -> f32[batch,4]\n"
        "  %d2 = relu(%d) : (f32[batch,4]) -> f32[batch,4]\n"
        "  %y = add(%h, %k) : (f32[batch,4], f32[4]) -> f32[batch,4]\n"
        "  return %y\n"
        "}\n");
  auto pass = make_dead_code_pass();
  PassContext ctx(pass->name());
  CHECK(std::string(pass->name()) == "dead-code");
  CHECK(pass->run(*g, ctx));
  g->verify();
  g->infer_shapes();
  const std::string after =
      "graph dce(%x: f32[batch,4]) -> (%y) {\n"
      "  %w = const : f32[4,4]\n"
      "  %k = const : f32[4]\n"
      "  %h = matmul(%x, %w) : (f32[batch,4], f32[4,4]) -> f32[batch,4]\n"
      "  %y = add(%h, %k) : (f32[batch,4], f32[4]) -> f32[batch,4]\n"
      "  return %y\n"
      "}\n";
  CHECK(g->print() == after);
  // Removed from the graph, not merely hidden from the printout (print skips constants without users).
  CHECK(g->find_value("dw") == nullptr);
  CHECK(g->find_value("d") == nullptr);
  CHECK(g->find_value("d2") == nullptr);
  CHECK(g->nodes().size() == 2);
  CHECK(g->num_values() == 5);  // x, w, k, h, y
  for (std::size_t i = 0; i < g->values().size(); ++i) CHECK(g->values()[i]->id == static_cast<int>(i));
  // A second run finds nothing left.
  CHECK_FALSE(pass->run(*g, ctx));
  CHECK(g->print() == after);
}

TEST_CASE("dead-code pass must not fire when everything is live") {
  auto g = make_tiny();  // two outputs; every node and constant feeds one of them
  const std::string before = g->print();
  const std::size_t values = g->num_values(), nodes = g->nodes().size();
  auto pass = make_dead_code_pass();
  PassContext ctx(pass->name());
  CHECK_FALSE(pass->run(*g, ctx));
  CHECK(g->print() == before);
  CHECK(g->print() == kTinyIr);
  CHECK(g->num_values() == values);
  CHECK(g->nodes().size() == nodes);
}

TEST_CASE("dead-code pass keeps a node whose output is a graph output even if it also feeds dead code") {
  Graph g;
  g.name = "keep";
  Value* x = g.add_value("x", f32({n(3)}));
  Value* a = g.add_value("a", {});
  Value* b = g.add_value("b", {});
  g.add_node("relu", "a", {x}, {a}, {}, SourceLoc{});
  g.add_node("tanh", "b", {a}, {b}, {}, SourceLoc{});  // dead: b is no output
  g.inputs = {x};
  g.outputs = {a};
  g.verify();
  g.infer_shapes();
  PassContext ctx("dead-code");
  CHECK(make_dead_code_pass()->run(g, ctx));
  CHECK(g.print() ==
        "graph keep(%x: f32[3]) -> (%a) {\n"
        "  %a = relu(%x) : (f32[3]) -> f32[3]\n"
        "  return %a\n"
        "}\n");
  CHECK(g.find_value("a")->users.empty());
}
