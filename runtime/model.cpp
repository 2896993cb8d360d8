#include <map>

#include "frontends/yaml/yaml_frontend.hpp"
#include "runtime/model_impl.hpp"

namespace kiln {

namespace detail {

const dnnl::engine& cpu_engine() {
  static const dnnl::engine engine(dnnl::engine::kind::cpu, 0);
  return engine;
}

std::vector<const Tensor*> SessionImpl::bind(const std::map<std::string, Tensor>& inputs) const {
  const Graph& g = *model->graph;
  std::vector<const Tensor*> out;
  std::map<std::string, std::pair<std::int64_t, std::string>> symbols;  // symbol -> (value, where bound)
  for (const auto& [name, t] : inputs) {
    bool known = false;
    for (const Value* in : g.inputs) known = known || in->name == name;
    if (!known) {
      std::string names;
      for (const Value* in : g.inputs) names += (names.empty() ? "" : ", ") + in->name;
      fail("model '" + g.name + "' has no input '" + name + "' (its inputs: " + names + ")");
    }
  }
  for (const Value* in : g.inputs) {
    auto it = inputs.find(in->name);
    if (it == inputs.end()) fail("missing input '" + in->name + "' (" + in->type.str() + ")");
    const Tensor& t = it->second;
    const std::string got = std::string(dtype_name(t.dtype())) + shape_to_string(t.shape());
    if (t.dtype() != in->type.dtype || t.shape().size() != in->type.shape.size())
      fail("input '" + in->name + "': expected " + in->type.str() + ", got " + got);
    for (std::size_t d = 0; d < t.shape().size(); ++d) {
      const Dim& want = in->type.shape[d];
      std::int64_t have = t.shape()[d];
      if (want.concrete()) {
        if (want.value != have)
          fail("input '" + in->name + "': expected " + in->type.str() + ", got " + got + " (dim " + std::to_string(d) + ")");
        continue;
      }
      if (have == 0) fail("input '" + in->name + "': dim " + std::to_string(d) + " ('" + want.sym + "') is 0");
      auto [pos, fresh] = symbols.emplace(want.sym, std::make_pair(have, in->name));
      if (!fresh && pos->second.first != have)
        fail("input '" + in->name + "': dim '" + want.sym + "' is " + std::to_string(have) + " here but " +
             std::to_string(pos->second.first) + " in input '" + pos->second.second + "'");
    }
    if (!t.data() && t.numel() > 0) fail("input '" + in->name + "' has no data");
    out.push_back(&t);
  }
  return out;
}

Plan& SessionImpl::plan_for(const std::vector<const Tensor*>& inputs) {
  std::vector<std::vector<std::int64_t>> dims;
  for (const Tensor* t : inputs) dims.push_back(t->shape());
  for (auto it = plans.begin(); it != plans.end(); ++it) {
    if (it->dims == dims) {
      plans.splice(plans.begin(), plans, it);
      return *plans.front().plan;
    }
  }
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
  if (ext == ".yaml" || ext == ".yml") {
    impl->graph = load_yaml_model(path);
  } else {
    fail_at(SourceLoc{path, 0, 0}, "unrecognized model file type '" + ext + "' (expected .yaml or .yml)");
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

void Session::prepare(const std::map<std::string, Tensor>& inputs) { impl_->plan_for(impl_->bind(inputs)); }

std::map<std::string, Tensor> Session::run(const std::map<std::string, Tensor>& inputs) {
  auto bound = impl_->bind(inputs);
  Plan& plan = impl_->plan_for(bound);
  const Graph& g = *impl_->model->graph;
  std::map<std::string, Tensor> result;
  std::vector<const void*> in_ptrs;
  for (const Tensor* t : bound) in_ptrs.push_back(t->data());
  std::vector<void*> out_ptrs;
  for (std::size_t j = 0; j < g.outputs.size(); ++j) {
    const TensorType& t = plan.output_type(j);
    auto [it, fresh] = result.emplace(g.outputs[j]->name, Tensor::empty(t.dtype, dims_of(t.shape)));
    out_ptrs.push_back(it->second.data());
  }
  plan.run(impl_->stream, in_ptrs.data(), out_ptrs.data());
  return result;
}

std::size_t Session::plan_count() const { return impl_->compiled; }

std::string Session::explain(const std::map<std::string, Tensor>& inputs) {
  return impl_->plan_for(impl_->bind(inputs)).describe();
}

}  // namespace kiln
