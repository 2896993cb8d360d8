// The C API (include/kiln/kiln.h): thin wrappers over the C++ API that turn every exception into a status
// and a thread-local message.

#include "kiln/kiln.h"

#include <cstring>
#include <new>
#include <stdexcept>
#include <string>
#include <type_traits>

#include "kiln/kiln.hpp"

struct kiln_model {
  kiln::Model model;
  std::vector<std::string> input_names, output_names;
};

struct kiln_session {
  kiln::Session session;
};

namespace {

thread_local std::string t_last_error;

kiln_status set_error(kiln_status status, const std::string& message) {
  try {
    t_last_error = message;
  } catch (...) {  // out of memory while keeping the message: keep the status
  }
  return status;
}

template <class F>
kiln_status guarded(F&& body) {
  try {
    body();
    return KILN_OK;
  } catch (const kiln::Error& e) {
    return set_error(KILN_ERROR, e.what());
  } catch (const std::bad_alloc&) {
    return set_error(KILN_OUT_OF_MEMORY, "error: out of memory");
  } catch (const std::length_error& e) {  // a container asked for more than it can hold
    return set_error(KILN_OUT_OF_MEMORY, std::string("error: out of memory (") + e.what() + ")");
  } catch (const std::exception& e) {
    return set_error(KILN_INTERNAL_ERROR, std::string("error: internal: ") + e.what());
  } catch (...) {
    return set_error(KILN_INTERNAL_ERROR, "error: internal: unknown exception");
  }
}

kiln_status invalid(const std::string& what) { return set_error(KILN_INVALID_ARGUMENT, "error: " + what); }

// Builds the C++ tensor map for a call (views: nothing is copied).
void to_map(const kiln_tensor* tensors, size_t n, const char* kind, bool need_data,
            std::map<std::string, kiln::Tensor>& out) {
  const std::string what(kind);
  for (size_t i = 0; i < n; ++i) {
    const kiln_tensor& t = tensors[i];
    const std::string index = what + " " + std::to_string(i);
    if (!t.name) throw kiln::Error("error: " + index + " has no name");
    if (t.rank < 0 || t.rank > KILN_MAX_RANK)
      throw kiln::Error("error: " + what + " '" + t.name + "': rank " + std::to_string(t.rank) +
                        " is out of range (0.." + std::to_string(KILN_MAX_RANK) + ")");
    if (t.rank > 0 && !t.shape) throw kiln::Error("error: " + what + " '" + t.name + "' has no shape");
    if (static_cast<int>(t.dtype) < 0 || static_cast<int>(t.dtype) > KILN_BOOL)
      throw kiln::Error("error: " + what + " '" + t.name + "': unknown dtype " +
                        std::to_string(static_cast<int>(t.dtype)));
    if (need_data && !t.data) throw kiln::Error("error: " + what + " '" + t.name + "' has no data");
    std::vector<std::int64_t> shape(t.shape, t.shape + t.rank);
    auto [it, fresh] =
        out.emplace(t.name, kiln::Tensor::view(static_cast<kiln::DType>(t.dtype), std::move(shape), t.data));
    if (!fresh) throw kiln::Error("error: " + what + " '" + t.name + "' is given twice");
  }
}

}  // namespace

extern "C" {

const char* kiln_last_error(void) { return t_last_error.c_str(); }

const char* kiln_version(void) { return KILN_VERSION_STRING; }

static kiln_status wrap_model(kiln::Model model, kiln_model** out) {
  auto* m = new kiln_model{std::move(model), {}, {}};
  for (const auto& io : m->model.inputs()) m->input_names.push_back(io.name);
  for (const auto& io : m->model.outputs()) m->output_names.push_back(io.name);
  *out = m;
  return KILN_OK;
}

namespace {

// The C++ load options of `options` (null: defaults), or a message saying which field is wrong.
bool to_load_options(const kiln_load_options* options, const char* call, kiln::LoadOptions& out, std::string& error) {
  if (!options) return true;
  if (options->opt_level < 0 || options->opt_level > 2) {
    error =
        std::string(call) + ": options->opt_level is " + std::to_string(options->opt_level) + " (expected 0, 1 or 2)";
    return false;
  }
  out.opt_level = options->opt_level;
  switch (options->quantize) {
    case KILN_QUANTIZE_MODEL: break;
    case KILN_QUANTIZE_NONE: out.quantize = kiln::Quantize::none; break;
    case KILN_QUANTIZE_INT8: out.quantize = kiln::Quantize::int8; break;
    case KILN_QUANTIZE_BF16: out.quantize = kiln::Quantize::bf16; break;
    default:
      error = std::string(call) + ": options->quantize is " + std::to_string(options->quantize) +
              " (expected KILN_QUANTIZE_MODEL, KILN_QUANTIZE_NONE, KILN_QUANTIZE_INT8 or KILN_QUANTIZE_BF16)";
      return false;
  }
  return true;
}

kiln_status load_file(const char* call, const char* path, const kiln_load_options* options, kiln_model** out) {
  if (!path) return invalid(std::string(call) + ": path is NULL");
  if (!out) return invalid(std::string(call) + ": out is NULL");
  kiln::LoadOptions lo;
  std::string error;
  if (!to_load_options(options, call, lo, error)) return invalid(error);
  return guarded([&] { wrap_model(kiln::Model::load(path, lo), out); });
}

kiln_status load_memory(const char* call, const char* yaml, size_t yaml_len, const void* weights, size_t weights_size,
                        const kiln_load_options* options, kiln_model** out) {
  const std::string c(call);
  if (!yaml) return invalid(c + ": yaml is NULL");
  if (!weights && weights_size) return invalid(c + ": weights is NULL but weights_size is not 0");
  if (!out) return invalid(c + ": out is NULL");
  // No buffer is that long: refuse before std::string(yaml, yaml_len) forms yaml + yaml_len (undefined).
  if (yaml_len > std::string().max_size())
    return invalid(c + ": yaml_len " + std::to_string(yaml_len) + " is longer than any string can be");
  kiln::LoadOptions lo;
  std::string error;
  if (!to_load_options(options, call, lo, error)) return invalid(error);
  return guarded(
      [&] { wrap_model(kiln::Model::load_from_memory(std::string(yaml, yaml_len), weights, weights_size, lo), out); });
}

}  // namespace

kiln_status kiln_model_load(const char* path, kiln_model** out) {
  return load_file("kiln_model_load", path, nullptr, out);
}

kiln_status kiln_model_load_from_memory(const char* yaml, size_t yaml_len, const void* weights, size_t weights_size,
                                        kiln_model** out) {
  return load_memory("kiln_model_load_from_memory", yaml, yaml_len, weights, weights_size, nullptr, out);
}

void kiln_load_options_init(kiln_load_options* options) {
  if (!options) return;
  options->opt_level = 2;
  options->quantize = KILN_QUANTIZE_MODEL;
}

kiln_status kiln_model_load_with_options(const char* path, const kiln_load_options* options, kiln_model** out) {
  return load_file("kiln_model_load_with_options", path, options, out);
}

kiln_status kiln_model_load_from_memory_with_options(const char* yaml, size_t yaml_len, const void* weights,
                                                     size_t weights_size, const kiln_load_options* options,
                                                     kiln_model** out) {
  return load_memory("kiln_model_load_from_memory_with_options", yaml, yaml_len, weights, weights_size, options, out);
}

void kiln_model_free(kiln_model* model) { delete model; }

size_t kiln_model_num_inputs(const kiln_model* model) { return model ? model->input_names.size() : 0; }
size_t kiln_model_num_outputs(const kiln_model* model) { return model ? model->output_names.size() : 0; }
const char* kiln_model_input_name(const kiln_model* model, size_t index) {
  return model && index < model->input_names.size() ? model->input_names[index].c_str() : nullptr;
}
const char* kiln_model_output_name(const kiln_model* model, size_t index) {
  return model && index < model->output_names.size() ? model->output_names[index].c_str() : nullptr;
}

void kiln_session_options_init(kiln_session_options* options) {
  if (!options) return;
  kiln::SessionOptions d;
  options->mode = KILN_LATENCY;
  options->intra_op_threads = d.intra_op_threads;
  options->max_plans = d.max_plans;
  options->memory_limit = d.memory_limit;
}

kiln_status kiln_session_create(const kiln_model* model, const kiln_session_options* options, kiln_session** out) {
  if (!model) return invalid("kiln_session_create: model is NULL");
  if (!out) return invalid("kiln_session_create: out is NULL");
  kiln::SessionOptions o = model->model.options().session;
  if (options) {
    // A C caller may store any int in the enum field; loading it as the C++ enum would be undefined outside
    // the enum's range, so read the field's bytes as its underlying integer type.
    std::underlying_type_t<kiln_threading_mode> mode = 0;
    static_assert(sizeof mode == sizeof options->mode);
    std::memcpy(&mode, &options->mode, sizeof mode);
    if (mode != KILN_LATENCY && mode != KILN_THROUGHPUT)
      return invalid("kiln_session_create: unknown threading mode " + std::to_string(mode));
    o.mode = mode == KILN_THROUGHPUT ? kiln::ThreadingMode::throughput : kiln::ThreadingMode::latency;
    o.intra_op_threads = options->intra_op_threads;
    o.max_plans = options->max_plans;
    o.memory_limit = options->memory_limit;
  }
  return guarded([&] { *out = new kiln_session{kiln::Session(model->model, o)}; });
}

void kiln_session_free(kiln_session* session) { delete session; }

kiln_status kiln_session_run(kiln_session* session, const kiln_tensor* inputs, size_t num_inputs,
                             const kiln_tensor* outputs, size_t num_outputs) {
  if (!session) return invalid("kiln_session_run: session is NULL");
  if ((!inputs && num_inputs) || (!outputs && num_outputs)) return invalid("kiln_session_run: tensor array is NULL");
  return guarded([&] {
    std::map<std::string, kiln::Tensor> in, out;
    to_map(inputs, num_inputs, "input", true, in);
    to_map(outputs, num_outputs, "output", true, out);
    session->session.run(in, out);
  });
}

kiln_status kiln_session_output_shape(kiln_session* session, const kiln_tensor* inputs, size_t num_inputs,
                                      const char* output_name, int64_t* shape, int32_t* rank) {
  if (!session) return invalid("kiln_session_output_shape: session is NULL");
  if (!inputs && num_inputs) return invalid("kiln_session_output_shape: inputs is NULL");
  if (!output_name || !shape || !rank) return invalid("kiln_session_output_shape: output_name, shape or rank is NULL");
  return guarded([&] {
    std::map<std::string, kiln::Tensor> in;
    to_map(inputs, num_inputs, "input", false, in);
    auto shapes = session->session.output_shapes(in);
    auto it = shapes.find(output_name);
    if (it == shapes.end()) throw kiln::Error(std::string("error: the model has no output '") + output_name + "'");
    if (it->second.size() > KILN_MAX_RANK)
      throw kiln::Error(std::string("error: output '") + output_name + "' has rank " +
                        std::to_string(it->second.size()) + ", more than KILN_MAX_RANK");
    for (size_t d = 0; d < it->second.size(); ++d) shape[d] = it->second[d];
    *rank = static_cast<int32_t>(it->second.size());
  });
}

kiln_status kiln_session_memory(const kiln_session* session, kiln_memory_stats* out) {
  if (!session || !out) return invalid("kiln_session_memory: session or out is NULL");
  return guarded([&] {
    kiln::MemoryStats m = session->session.memory();
    *out = kiln_memory_stats{m.weight_bytes, m.arena_bytes, m.peak_arena_bytes, m.plans, m.contexts, m.memory_limit};
  });
}

}  // extern "C"
