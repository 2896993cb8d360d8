#include <algorithm>
#include <cstdio>
#include <map>
#include <sstream>

#include "frontends/yaml/yaml_frontend.hpp"
#include "runtime/model_impl.hpp"

namespace kiln {

namespace {
bool same_dims(const std::vector<std::int64_t>& dims, const Shape& shape) {
  if (dims.size() != shape.size()) return false;
  for (std::size_t i = 0; i < dims.size(); ++i)
    if (!shape[i].is(dims[i])) return false;
  return true;
}
}  // namespace

namespace detail {

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

void SessionImpl::bind(const std::map<std::string, Tensor>& inputs) {
  const Graph& g = *model->graph;
  // Names no declared input: reported first, since a misspelled input also shows up as a missing one.
  auto reject_unknown = [&] {
    for (const auto& [name, t] : inputs) {
      bool known = false;
      for (const Value* in : g.inputs) known = known || in->name == name;
      if (known) continue;
      std::string names;
      for (const Value* in : g.inputs) names += (names.empty() ? "" : ", ") + in->name;
      fail("model '" + g.name + "' has no input '" + name + "' (its inputs: " + names + ")");
    }
  };
  if (inputs.size() > g.inputs.size()) reject_unknown();
  bound.clear();
  symbols.clear();
  for (const Value* in : g.inputs) {
    auto it = inputs.find(in->name);
    if (it == inputs.end()) {
      reject_unknown();
      fail("missing input '" + in->name + "' (" + in->type.str() + ")");
    }
    const Tensor& t = it->second;
    auto got = [&] { return std::string(dtype_name(t.dtype())) + shape_to_string(t.shape()); };
    if (t.dtype() != in->type.dtype || t.shape().size() != in->type.shape.size())
      fail("input '" + in->name + "': expected " + in->type.str() + ", got " + got());
    for (std::size_t d = 0; d < t.shape().size(); ++d) {
      const Dim& want = in->type.shape[d];
      std::int64_t have = t.shape()[d];
      if (want.concrete()) {
        if (want.value != have)
          fail("input '" + in->name + "': expected " + in->type.str() + ", got " + got() + " (dim " + std::to_string(d) + ")");
        continue;
      }
      if (have == 0) fail("input '" + in->name + "': dim " + std::to_string(d) + " ('" + want.sym + "') is 0");
      auto seen = std::find_if(symbols.begin(), symbols.end(), [&](const Binding& b) { return *b.symbol == want.sym; });
      if (seen == symbols.end()) {
        symbols.push_back(Binding{&want.sym, have, &in->name});
      } else if (seen->value != have) {
        fail("input '" + in->name + "': dim '" + want.sym + "' is " + std::to_string(have) + " here but " +
             std::to_string(seen->value) +
             (*seen->input == in->name ? " in an earlier dim" : " in input '" + *seen->input + "'"));
      }
    }
    if (!t.data() && t.numel() > 0) fail("input '" + in->name + "' has no data");
    bound.push_back(&t);
  }
  for (const Binding& b : symbols) {  // dims a plan file was compiled for as a bounded range
    auto r = model->dim_ranges.find(*b.symbol);
    if (r != model->dim_ranges.end() && (b.value < r->second.min || b.value > r->second.max))
      fail("input '" + *b.input + "': dim '" + *b.symbol + "' is " + std::to_string(b.value) + ", outside the range " +
           r->second.str() + " the model was compiled for (kilnc compile --shape " + *b.symbol + "=MIN..MAX)");
  }
}

Plan& SessionImpl::plan_for_bound() {
  auto same = [&](const Entry& e) {
    for (std::size_t i = 0; i < bound.size(); ++i)
      if (e.dims[i] != bound[i]->shape()) return false;
    return true;
  };
  for (auto it = plans.begin(); it != plans.end(); ++it) {
    if (same(*it)) {
      if (it != plans.begin()) plans.splice(plans.begin(), plans, it);
      return *plans.front().plan;
    }
  }
  std::vector<std::vector<std::int64_t>> dims;
  for (const Tensor* t : bound) dims.push_back(t->shape());
  auto plan = std::make_unique<Plan>(*model->graph, dims, cpu_engine());
  ++compiled;
  plans.push_front(Entry{dims, std::move(plan)});
  if (plans.size() > kMaxPlans) plans.pop_back();
  return *plans.front().plan;
}

std::shared_ptr<ModelImpl> compile_model(const std::string& path, const PipelineOptions& options) {
  auto impl = std::make_shared<ModelImpl>();
  impl->path = path;
  auto dot = path.find_last_of('.');
  std::string ext = dot == std::string::npos ? std::string() : path.substr(dot);
  if (ext == ".kplan") return load_kplan_file(path);  // compiled ahead of time: the passes already ran
  if (ext == ".yaml" || ext == ".yml") {
    impl->graph = load_yaml_model(path);
  } else {
    fail_at(SourceLoc{path, 0, 0}, "unrecognized model file type '" + ext + "' (expected .yaml, .yml or .kplan)");
  }
  impl->remarks = run_pipeline(*impl->graph, options);
  return impl;
}

}  // namespace detail

Model Model::load(const std::string& path, const LoadOptions& options) {
  PipelineOptions pipeline;
  pipeline.opt_level = options.opt_level;
  pipeline.disabled.insert(options.disabled_passes.begin(), options.disabled_passes.end());
  return Model(detail::compile_model(path, pipeline));
}

const std::string& Model::name() const { return impl_->graph->name; }

namespace {
std::vector<IoInfo> io_of(const std::vector<Value*>& values) {
  std::vector<IoInfo> out;
  for (const Value* v : values) {
    IoInfo info{v->name, v->type.dtype, {}};
    for (const auto& d : v->type.shape) info.dims.push_back(d.str());
    out.push_back(std::move(info));
  }
  return out;
}
}  // namespace

std::vector<IoInfo> Model::inputs() const { return io_of(impl_->graph->inputs); }
std::vector<IoInfo> Model::outputs() const { return io_of(impl_->graph->outputs); }
std::string Model::ir(bool with_locations) const { return impl_->graph->print(with_locations); }

Session::Session(Model model) : impl_(std::make_unique<detail::SessionImpl>()) {
  impl_->model = model.impl();
  impl_->stream = dnnl::stream(detail::cpu_engine());
}
Session::~Session() = default;
Session::Session(Session&&) noexcept = default;
Session& Session::operator=(Session&&) noexcept = default;

void Session::prepare(const std::map<std::string, Tensor>& inputs) {
  impl_->bind(inputs);
  impl_->plan_for_bound();
}

std::map<std::string, Tensor> Session::run(const std::map<std::string, Tensor>& inputs) {
  impl_->bind(inputs);
  Plan& plan = impl_->plan_for_bound();
  const Graph& g = *impl_->model->graph;
  std::map<std::string, Tensor> result;
  for (std::size_t j = 0; j < g.outputs.size(); ++j) {
    const TensorType& t = plan.output_type(j);
    result.emplace(g.outputs[j]->name, Tensor::empty(t.dtype, dims_of(t.shape)));
  }
  run(inputs, result);
  return result;
}

void Session::run(const std::map<std::string, Tensor>& inputs, std::map<std::string, Tensor>& outputs) {
  impl_->bind(inputs);
  Plan& plan = impl_->plan_for_bound();
  const Graph& g = *impl_->model->graph;
  impl_->in_ptrs.clear();
  for (const Tensor* t : impl_->bound) impl_->in_ptrs.push_back(t->data());
  impl_->out_ptrs.clear();
  for (std::size_t j = 0; j < g.outputs.size(); ++j) {
    const std::string& name = g.outputs[j]->name;
    auto it = outputs.find(name);
    const TensorType& want = plan.output_type(j);
    if (it == outputs.end()) fail("output tensor '" + name + "' (" + want.str() + ") was not provided");
    const Tensor& t = it->second;
    if (t.dtype() != want.dtype || !same_dims(t.shape(), want.shape))
      fail("output '" + name + "': expected " + want.str() + ", got " + std::string(dtype_name(t.dtype())) +
           shape_to_string(t.shape()));
    impl_->out_ptrs.push_back(t.data());
  }
  plan.run(impl_->stream, impl_->in_ptrs.data(), impl_->out_ptrs.data());
}

std::size_t Session::plan_count() const { return impl_->compiled; }

std::string Session::profile(const std::map<std::string, Tensor>& inputs, int runs) {
  std::map<std::string, Tensor> outputs = run(inputs);  // warm-up; compiles the plan
  Plan& plan = impl_->plan_for_bound();
  const auto steps = plan.steps();
  std::vector<std::vector<double>> samples(steps.size());
  std::vector<double> ms;
  for (int r = 0; r < std::max(runs, 1); ++r) {
    plan.profile(impl_->stream, impl_->in_ptrs.data(), impl_->out_ptrs.data(), ms);
    for (std::size_t s = 0; s < steps.size(); ++s) samples[s].push_back(ms[s]);
  }
  std::vector<std::pair<double, std::size_t>> order;
  double total = 0;
  for (std::size_t s = 0; s < steps.size(); ++s) {
    auto& v = samples[s];
    std::sort(v.begin(), v.end());
    order.emplace_back(v[v.size() / 2], s);
    total += v[v.size() / 2];
  }
  std::stable_sort(order.begin(), order.end(), [](const auto& a, const auto& b) { return a.first > b.first; });
  std::ostringstream os;
  char line[512];
  std::snprintf(line, sizeof line, "%10s %6s  %-44s %s\n", "median ms", "share", "node", "kernel");
  os << line;
  for (const auto& [t, s] : order) {
    if (steps[s].impl == "view") continue;
    std::snprintf(line, sizeof line, "%10.4f %5.1f%%  %-44s %s\n", t, total > 0 ? 100.0 * t / total : 0.0,
                  steps[s].node->label().c_str(), steps[s].impl.c_str());
    os << line;
  }
  std::snprintf(line, sizeof line, "%10.4f 100.0%%  total of the per-node medians over %d runs\n", total, std::max(runs, 1));
  os << line;
  return os.str();
}

std::string Session::explain(const std::map<std::string, Tensor>& inputs) {
  impl_->bind(inputs);
  return impl_->plan_for_bound().describe();
}

}  // namespace kiln
