#include "tests/pass_test_util.hpp"

#include <cstdio>

#include "frontends/yaml/yaml_frontend.hpp"

namespace kiln::test {

std::string fixture_dir() { return source_path("tests/fixtures/classifier_d64_l2"); }

std::unique_ptr<Graph> parse(const std::string& yaml, const std::string& base_dir) {
  return parse_yaml_model(yaml, "model.yaml", base_dir);
}

PassResult run_pass(Graph& g, PassFactory make) {
  auto pass = make();
  PassContext ctx(pass->name());
  PassResult r;
  r.changed = pass->run(g, ctx);
  g.toposort();
  g.verify();
  g.infer_shapes();
  r.remarks = ctx.remarks();
  return r;
}

int line_of(const std::string& text, const std::string& needle) {
  auto at = text.find(needle);
  REQUIRE_MESSAGE(at != std::string::npos, "'" << needle << "' not in the model text");
  REQUIRE_MESSAGE(text.find(needle, at + 1) == std::string::npos, "'" << needle << "' occurs twice");
  int line = 1;
  for (std::size_t i = 0; i < at; ++i) line += text[i] == '\n';
  return line;
}

void check_remark(const Remark& r, const char* pass, bool fired, const std::string& node, const std::string& message,
                  int line) {
  INFO("remark: " << r.str());
  CHECK(r.pass == pass);
  CHECK(r.fired == fired);
  CHECK(r.node == node);
  CHECK_MESSAGE(r.message.find(message) != std::string::npos, "expected the message to contain: " << message);
  CHECK(r.loc.file == "model.yaml");
  CHECK(r.loc.line == line);
  CHECK(r.loc.column == 5);
}

std::vector<Tensor> random_inputs(const Graph& g, Rng& rng, const Bindings& dims) {
  std::vector<Tensor> out;
  for (const Value* in : g.inputs) {
    std::vector<std::int64_t> concrete;
    for (const Dim& d : in->type.shape) {
      if (d.concrete()) {
        concrete.push_back(d.value);
      } else {
        auto it = dims.find(d.sym);
        REQUIRE_MESSAGE(it != dims.end(), "unexpected symbol " << d.sym);
        concrete.push_back(it->second);
      }
    }
    REQUIRE(in->type.dtype == DType::f32);
    out.push_back(random_f32(rng, concrete));
  }
  return out;
}

std::vector<Tensor> random_inputs(const Graph& g, Rng& rng, std::int64_t batch) {
  return random_inputs(g, rng, Bindings{{"batch", batch}});
}

namespace {

std::string bindings_str(const Bindings& dims) {
  std::string s;
  for (const auto& [sym, value] : dims) {
    if (!s.empty()) s += ' ';
    s += sym;
    s += '=';
    s += std::to_string(value);
  }
  return s;
}

}  // namespace

void check_same_results(const std::string& yaml, PassFactory make, std::uint32_t salt, const std::string& base_dir,
                        const std::vector<Bindings>& runs) {
  auto before = parse(yaml, base_dir);
  auto after = parse(yaml, base_dir);
  run_pass(*after, make);
  CHECK(after->print() != before->print());  // the pass did rewrite something
  REQUIRE(before->outputs.size() == after->outputs.size());
  Rng rng = make_rng(salt);
  for (const Bindings& dims : runs) {
    const std::string where = bindings_str(dims);
    auto inputs = random_inputs(*before, rng, dims);
    auto want = run_graph(*before, inputs);
    auto got = run_graph(*after, inputs);
    REQUIRE(want.size() == got.size());
    for (std::size_t j = 0; j < want.size(); ++j) {
      const std::string& name = before->outputs[j]->name;
      CHECK_MESSAGE(got[j].shape() == want[j].shape(), "output '" << name << "': shape " << dims_str(got[j].shape())
                                                                  << " after the pass, " << dims_str(want[j].shape())
                                                                  << " before");
      if (got[j].shape() != want[j].shape()) continue;
      double diff = max_abs_diff(got[j], want[j]);
      std::printf("%s, %s, output '%s': max abs diff with/without the pass %.3g\n", make()->name(), where.c_str(),
                  name.c_str(), diff);
      CHECK_MESSAGE(diff <= 1e-5, "output '" << name << "' " << where << ": max abs diff " << diff);
    }
  }
}

PassResult check_unchanged(const std::string& yaml, PassFactory make, const std::string& base_dir) {
  auto g = parse(yaml, base_dir);
  const std::string before = g->print();
  const std::size_t nodes = g->nodes().size(), values = g->num_values();
  PassResult r = run_pass(*g, make);
  CHECK_FALSE(r.changed);
  CHECK(g->print() == before);
  CHECK(g->nodes().size() == nodes);
  CHECK(g->num_values() == values);
  return r;
}

const float* f32_data(const Value* v) {
  REQUIRE(v != nullptr);
  REQUIRE(v->is_constant());
  return static_cast<const float*>(v->constant.data);
}

}  // namespace kiln::test
