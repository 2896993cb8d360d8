// The `kiln` Python module's extension, kiln._kiln (docs/python.md): Kiln's C++ API for Python, with NumPy
// arrays in and out without copies and the GIL released while Kiln runs.
//
//   Inputs   read through the buffer protocol: a C-contiguous buffer of the input's exact dtype becomes a
//            kiln::Tensor::view over the caller's memory (held exported, so not resizable, until the call
//            returns); anything else is a TypeError or ValueError naming the input, never a cast or copy.
//   Outputs  the kiln::Tensor a Session returns owns its buffer: the NumPy array points into it and its
//            base is a kiln.Buffer that holds the Tensor (so the buffer lives as long as the array).
//   Errors   kiln::Error becomes kiln.Error with the file, line and column of its message.
#include <pybind11/numpy.h>
#include <pybind11/pybind11.h>
#include <pybind11/stl.h>

#include <algorithm>
#include <array>
#include <chrono>
#include <cstdint>
#include <cstring>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "kiln/kiln.hpp"
#include "runtime/compile.hpp"
#include "runtime/dims.hpp"
#include "runtime/file_io.hpp"
#include "runtime/kplan.hpp"
#include "runtime/kplan_isa.hpp"
#include "runtime/model_impl.hpp"

namespace py = pybind11;

namespace {

// ---- dtypes ----------------------------------------------------------------------------------------------

// NumPy's name for a Kiln dtype; bf16 has no NumPy type.
const char* numpy_name(kiln::DType t) {
  switch (t) {
    case kiln::DType::f32: return "float32";
    case kiln::DType::f16: return "float16";
    case kiln::DType::f64: return "float64";
    case kiln::DType::i64: return "int64";
    case kiln::DType::i32: return "int32";
    case kiln::DType::i8: return "int8";
    case kiln::DType::u8: return "uint8";
    case kiln::DType::boolean: return "bool";
    case kiln::DType::bf16: return nullptr;
  }
  return nullptr;
}

py::object numpy_dtype(kiln::DType t) {
  const char* n = numpy_name(t);
  if (!n) return py::none();
  return py::dtype(n);
}

// The Kiln dtype of a buffer's struct-module format ("<f", "l", "?", ...), or nullopt (with `why`).
std::optional<kiln::DType> dtype_of_format(const char* format, Py_ssize_t itemsize, std::string* why) {
  std::string f = format ? format : "B";
  if (!f.empty() && (f[0] == '@' || f[0] == '=' || f[0] == '<')) f.erase(0, 1);
  else if (!f.empty() && (f[0] == '>' || f[0] == '!')) {
    *why = "a big-endian buffer ('" + std::string(format) + "')";
    return std::nullopt;
  }
  if (f.size() == 1) {
    const char c = f[0];
    const bool signed_int = c == 'b' || c == 'h' || c == 'i' || c == 'l' || c == 'q' || c == 'n';
    if (c == 'f' && itemsize == 4) return kiln::DType::f32;
    if (c == 'd' && itemsize == 8) return kiln::DType::f64;
    if (c == 'e' && itemsize == 2) return kiln::DType::f16;
    if (c == '?' && itemsize == 1) return kiln::DType::boolean;
    if (c == 'B' && itemsize == 1) return kiln::DType::u8;
    if (signed_int && itemsize == 1) return kiln::DType::i8;
    if (signed_int && itemsize == 4) return kiln::DType::i32;
    if (signed_int && itemsize == 8) return kiln::DType::i64;
  }
  *why = "elements of format '" + std::string(format ? format : "B") + "' (" + std::to_string(itemsize) +
         " bytes), which Kiln has no dtype for";
  return std::nullopt;
}

std::string dtype_text(kiln::DType t) {
  const char* n = numpy_name(t);
  return n ? std::string(n) : std::string(kiln::dtype_name(t));
}

// ---- errors ------------------------------------------------------------------------------------------------

PyObject* g_error_type = nullptr;  // kiln.Error

// Raises kiln.Error for `message` ("FILE:LINE:COL: error: WHAT", "FILE: error: WHAT" or "error: WHAT"),
// setting its attributes file, line, column (None when unknown) and message (WHAT).
void raise_kiln_error(const std::string& message) {
  py::object file = py::none(), line = py::none(), column = py::none();
  std::string what = message;
  const std::string tag = "error: ";
  const std::size_t at = message.find(tag);
  if (at != std::string::npos) {
    what = message.substr(at + tag.size());
    std::string where = message.substr(0, at);
    if (where.size() >= 2 && where.compare(where.size() - 2, 2, ": ") == 0) where.resize(where.size() - 2);
    auto all_digits = [](const std::string& s) {
      return !s.empty() && s.find_first_not_of("0123456789") == std::string::npos;
    };
    if (!where.empty()) {
      const std::size_t c2 = where.rfind(':');
      const std::size_t c1 = c2 == std::string::npos || c2 == 0 ? std::string::npos : where.rfind(':', c2 - 1);
      if (c1 != std::string::npos && all_digits(where.substr(c1 + 1, c2 - c1 - 1)) &&
          all_digits(where.substr(c2 + 1))) {
        file = py::str(where.substr(0, c1));
        line = py::int_(std::stoll(where.substr(c1 + 1, c2 - c1 - 1)));
        column = py::int_(std::stoll(where.substr(c2 + 1)));
      } else {
        file = py::str(where);
      }
    }
  }
  py::object exc = py::reinterpret_borrow<py::object>(g_error_type)(message);
  exc.attr("file") = file;
  exc.attr("line") = line;
  exc.attr("column") = column;
  exc.attr("message") = py::str(what);
  PyErr_SetObject(g_error_type, exc.ptr());
}

// ---- buffers -----------------------------------------------------------------------------------------------

// An exported buffer, released when this goes away (with the GIL held: only on the calling thread).
class ExportedBuffer {
 public:
  ExportedBuffer() = default;
  ExportedBuffer(const ExportedBuffer&) = delete;
  ExportedBuffer& operator=(const ExportedBuffer&) = delete;
  ~ExportedBuffer() {
    if (held_) PyBuffer_Release(&view_);
  }
  // Exports `obj`'s buffer (writable when asked); on failure raises TypeError naming `what`.
  void acquire(PyObject* obj, bool writable, const std::string& what) {
    const int flags = PyBUF_STRIDES | PyBUF_FORMAT | (writable ? PyBUF_WRITABLE : 0);
    if (PyObject_GetBuffer(obj, &view_, flags) != 0) {
      PyErr_Clear();
      if (writable && PyObject_CheckBuffer(obj)) {
        Py_buffer ro;
        if (PyObject_GetBuffer(obj, &ro, PyBUF_STRIDES | PyBUF_FORMAT) == 0) {
          PyBuffer_Release(&ro);
          throw py::value_error(what + ": the array is read-only (outputs are written into)");
        }
        PyErr_Clear();
      }
      throw py::type_error(what + ": expected a NumPy array (or another object with the buffer protocol), got " +
                           std::string(Py_TYPE(obj)->tp_name));
    }
    held_ = true;
  }
  const Py_buffer& view() const { return view_; }

 private:
  Py_buffer view_{};
  bool held_ = false;
};

// A Tensor view over an exported buffer, after checking it is C-contiguous and of dtype `want` (when known).
kiln::Tensor tensor_over(const ExportedBuffer& b, const std::optional<kiln::DType>& want, const std::string& what) {
  const Py_buffer& v = b.view();
  std::string why;
  std::optional<kiln::DType> got = dtype_of_format(v.format, v.itemsize, &why);
  if (!got) {
    throw py::type_error(what + ": " + why + (want ? "; expected " + dtype_text(*want) : std::string()));
  }
  if (want && *got != *want) {
    throw py::type_error(what + ": expected dtype " + dtype_text(*want) + ", got " + dtype_text(*got) +
                         " (Kiln does not convert: pass array.astype(numpy." + dtype_text(*want) + "))");
  }
  if (!PyBuffer_IsContiguous(&v, 'C')) {
    throw py::value_error(what +
                          ": expected a C-contiguous array, got a strided one (Kiln does not copy: pass "
                          "numpy.ascontiguousarray(array))");
  }
  std::vector<std::int64_t> shape(v.shape ? static_cast<std::size_t>(v.ndim) : 1);
  if (v.shape) {
    for (int i = 0; i < v.ndim; ++i) shape[static_cast<std::size_t>(i)] = v.shape[i];
  } else {
    shape[0] = v.len / v.itemsize;
  }
  return kiln::Tensor::view(*got, std::move(shape), v.buf);
}

// The base of an output array: holds the kiln::Tensor whose buffer the array points into.
struct Buffer {
  kiln::Tensor tensor;
};

// NumPy's dtype objects, made once (with the GIL held) and never freed: they must not be released after
// the interpreter has gone at exit.
const py::dtype& cached_dtype(kiln::DType t, const char* name) {
  static std::array<py::dtype*, 16> cache{};
  py::dtype*& d = cache[static_cast<std::size_t>(t)];
  if (!d) d = new py::dtype(name);  // NOLINT(cppcoreguidelines-owning-memory): deliberately leaked
  return *d;
}

py::array to_numpy(kiln::Tensor t, const std::string& name) {
  const char* n = numpy_name(t.dtype());
  if (!n) throw py::type_error("output '" + name + "' is bf16, which NumPy has no dtype for");
  const py::dtype& dt = cached_dtype(t.dtype(), n);
  std::vector<py::ssize_t> shape(t.shape().begin(), t.shape().end());
  void* data = t.data();
  py::object base = py::cast(Buffer{std::move(t)});
  return py::array(dt, std::move(shape), data, base);
}

// Test hook (tests/test_zero_copy.py): the data pointer of each input Tensor the last run on this thread
// handed to Session::run.
thread_local std::vector<std::pair<std::string, std::uintptr_t>> t_last_inputs;

// ---- models and sessions -----------------------------------------------------------------------------------

py::tuple io_shape(const kiln::IoInfo& io) {
  py::tuple t(io.dims.size());
  for (std::size_t i = 0; i < io.dims.size(); ++i) {
    const std::string& d = io.dims[i];
    if (!d.empty() && d.find_first_not_of("0123456789") == std::string::npos) {
      t[i] = py::int_(std::stoll(d));
    } else {
      t[i] = py::str(d);
    }
  }
  return t;
}

kiln::LoadOptions load_options(int opt_level, const py::object& quantize,
                               const std::vector<std::string>& disabled_passes) {
  kiln::LoadOptions o;
  if (!quantize.is_none()) {
    // "none", "int8" or "bf16" (docs/quantization.md); unset: the model file's `quantize:` key decides.
    kiln::Quantize q{};
    if (!py::isinstance<py::str>(quantize) || !kiln::parse_quantize(quantize.cast<std::string>(), &q))
      throw py::value_error("quantize must be None, \"none\", \"int8\" or \"bf16\", got " +
                            py::repr(quantize).cast<std::string>());
    o.quantize = q;
  }
  if (opt_level < 0 || opt_level > 2) throw py::value_error("opt_level must be 0, 1 or 2");
  o.opt_level = opt_level;
  o.disabled_passes = disabled_passes;
  return o;
}

kiln::ThreadingMode parse_mode(const std::string& mode) {
  if (mode == "latency") return kiln::ThreadingMode::latency;
  if (mode == "throughput") return kiln::ThreadingMode::throughput;
  throw py::value_error("mode must be \"latency\" or \"throughput\", got \"" + mode + "\"");
}

class PySession {
 public:
  PySession(const kiln::Model& model, const kiln::SessionOptions& options)
      : model_(model), session_(std::make_shared<kiln::Session>(model, options)) {
    for (const kiln::IoInfo& io : model.inputs()) input_types_.emplace(io.name, io.dtype);
    for (const kiln::IoInfo& io : model.outputs()) output_names_.push_back(io.name);
  }

  py::dict run(const py::dict& inputs, const py::object& outputs) {
    std::vector<std::unique_ptr<ExportedBuffer>> held;
    held.reserve(inputs.size() + 2);
    std::map<std::string, kiln::Tensor> in = tensors(inputs, held);
    py::dict result;
    if (outputs.is_none()) {
      std::map<std::string, kiln::Tensor> out;
      {
        py::gil_scoped_release unlocked;
        out = session_->run(in);
      }
      for (auto& [name, t] : out) result[py::str(name)] = to_numpy(std::move(t), name);
      return result;
    }
    if (!py::isinstance<py::dict>(outputs)) throw py::type_error("outputs must be a dict of name -> numpy array");
    std::map<std::string, kiln::Tensor> out;
    for (auto item : py::reinterpret_borrow<py::dict>(outputs)) {
      if (!py::isinstance<py::str>(item.first)) throw py::type_error("outputs: keys must be output names (str)");
      std::string name = item.first.cast<std::string>();
      bool known = false;
      for (const std::string& o : output_names_) known = known || o == name;
      if (!known) {
        raise_kiln_error("error: model '" + model_.name() + "' has no output '" + name + "'");
        throw py::error_already_set();
      }
      const std::string what = "output '" + name + "'";
      held.push_back(std::make_unique<ExportedBuffer>());
      held.back()->acquire(item.second.ptr(), true, what);
      out.emplace(name, tensor_over(*held.back(), output_type(name), what));
      result[item.first] = item.second;
    }
    // Outputs not preallocated are allocated by Kiln (and returned like run(inputs)'s).
    std::vector<std::string> missing;
    for (const std::string& o : output_names_)
      if (!out.count(o)) missing.push_back(o);
    {
      py::gil_scoped_release unlocked;
      if (!missing.empty()) {
        auto shapes = session_->output_shapes(in);
        for (const std::string& o : missing) out.emplace(o, kiln::Tensor::empty(output_type(o), shapes.at(o)));
      }
      session_->run(in, out);
    }
    for (const std::string& o : missing) result[py::str(o)] = to_numpy(out.at(o), o);
    return result;
  }

  py::dict output_shapes(const py::dict& inputs) {
    std::vector<std::unique_ptr<ExportedBuffer>> held;
    std::map<std::string, kiln::Tensor> in = tensors(inputs, held);
    std::map<std::string, std::vector<std::int64_t>> shapes;
    {
      py::gil_scoped_release unlocked;
      shapes = session_->output_shapes(in);
    }
    py::dict d;
    for (const auto& [name, s] : shapes) d[py::str(name)] = py::tuple(py::cast(s));
    return d;
  }

  std::string explain(const py::dict& inputs) {
    std::vector<std::unique_ptr<ExportedBuffer>> held;
    std::map<std::string, kiln::Tensor> in = tensors(inputs, held);
    py::gil_scoped_release unlocked;
    return session_->explain(in);
  }

  std::string profile(const py::dict& inputs, int runs) {
    std::vector<std::unique_ptr<ExportedBuffer>> held;
    std::map<std::string, kiln::Tensor> in = tensors(inputs, held);
    py::gil_scoped_release unlocked;
    return session_->profile(in, runs);
  }

  void prepare(const py::dict& inputs) {
    std::vector<std::unique_ptr<ExportedBuffer>> held;
    std::map<std::string, kiln::Tensor> in = tensors(inputs, held);
    py::gil_scoped_release unlocked;
    session_->prepare(in);
  }

  // bench/bench_python_overhead.py: nanoseconds of each of `runs` calls of Session::run made from C++ on
  // these inputs (into Kiln-allocated outputs reused across calls when `preallocated`), GIL released.
  std::vector<double> bench_cpp_run(const py::dict& inputs, int runs, bool preallocated) {
    std::vector<std::unique_ptr<ExportedBuffer>> held;
    std::map<std::string, kiln::Tensor> in = tensors(inputs, held);
    std::vector<double> ns(static_cast<std::size_t>(std::max(runs, 0)));
    py::gil_scoped_release unlocked;
    std::map<std::string, kiln::Tensor> out;
    if (preallocated) {
      for (const auto& [name, shape] : session_->output_shapes(in))
        out.emplace(name, kiln::Tensor::empty(output_type(name), shape));
    }
    for (double& t : ns) {
      const auto t0 = std::chrono::steady_clock::now();
      if (preallocated) {
        session_->run(in, out);
      } else {
        auto result = session_->run(in);
      }
      t = static_cast<double>(
          std::chrono::duration_cast<std::chrono::nanoseconds>(std::chrono::steady_clock::now() - t0).count());
    }
    return ns;
  }

  kiln::Session& session() { return *session_; }
  const kiln::Model& model() const { return model_; }

 private:
  kiln::DType output_type(const std::string& name) const {
    for (const kiln::IoInfo& io : model_.outputs())
      if (io.name == name) return io.dtype;
    return kiln::DType::f32;
  }

  std::map<std::string, kiln::Tensor> tensors(const py::dict& inputs,
                                              std::vector<std::unique_ptr<ExportedBuffer>>& held) {
    std::map<std::string, kiln::Tensor> in;
    t_last_inputs.clear();
    for (auto item : inputs) {
      if (!py::isinstance<py::str>(item.first)) throw py::type_error("inputs: keys must be input names (str)");
      std::string name = item.first.cast<std::string>();
      const std::string what = "input '" + name + "'";
      auto it = input_types_.find(name);
      std::optional<kiln::DType> want;
      if (it != input_types_.end()) want = it->second;  // else Kiln's error names the model's inputs
      held.push_back(std::make_unique<ExportedBuffer>());
      held.back()->acquire(item.second.ptr(), false, what);
      kiln::Tensor t = tensor_over(*held.back(), want, what);
      t_last_inputs.emplace_back(name, reinterpret_cast<std::uintptr_t>(t.data()));
      in.emplace(std::move(name), std::move(t));
    }
    return in;
  }

  kiln::Model model_;
  std::shared_ptr<kiln::Session> session_;
  std::map<std::string, kiln::DType> input_types_;
  std::vector<std::string> output_names_;
};

// A Generator is not safe for concurrent calls: one Python Generator serializes its callers.
struct PyGenerator {
  explicit PyGenerator(const kiln::Seq2SeqModel& m) : model(m), gen(m) {}
  kiln::Seq2SeqModel model;
  kiln::Generator gen;
  std::mutex mutex;
};

kiln::GenerateOptions generate_options(const std::optional<std::string>& strategy, int beam_width, int n_best,
                                       int max_length, const std::optional<double>& length_penalty, bool stop_at_end) {
  kiln::GenerateOptions o;
  if (strategy) o.strategy = *strategy;
  o.beam_width = beam_width;
  o.n_best = n_best;
  o.max_length = max_length;
  if (length_penalty) o.length_penalty = *length_penalty;
  o.stop_at_end = stop_at_end;
  return o;
}

kiln::DimRanges dims_of(const py::object& shapes) {
  if (shapes.is_none()) return {};
  if (!py::isinstance<py::dict>(shapes))
    throw py::type_error("shapes must be a dict: name -> int, (min, max) or \"min..max\"");
  std::vector<std::string> args;
  for (auto item : py::reinterpret_borrow<py::dict>(shapes)) {
    std::string name = py::str(item.first).cast<std::string>();
    py::handle v = item.second;
    std::string value;
    if (py::isinstance<py::int_>(v)) {
      value = std::to_string(v.cast<long long>());
    } else if (py::isinstance<py::tuple>(v) && py::len(v) == 2) {
      auto t = py::reinterpret_borrow<py::tuple>(v);
      value = std::to_string(t[0].cast<long long>()) + ".." + std::to_string(t[1].cast<long long>());
    } else if (py::isinstance<py::str>(v)) {
      value = v.cast<std::string>();
    } else {
      throw py::type_error("shapes['" + name + "']: expected an int, a (min, max) tuple or \"min..max\"");
    }
    args.push_back(name + "=" + value);
  }
  return kiln::parse_shape_args(args);
}

}  // namespace

PYBIND11_MODULE(_kiln, m) {
  m.doc() = "Kiln: compiled models on CPUs (docs/python.md)";

  static py::exception<kiln::Error> error(m, "Error", PyExc_Exception);
  g_error_type = error.ptr();
  error.doc() =
      "Kiln's error: str(e) is Kiln's one-line message; file, line and column say where (None when unknown), "
      "message what.";
  error.attr("file") = py::none();
  error.attr("line") = py::none();
  error.attr("column") = py::none();
  error.attr("message") = py::none();
  py::register_exception_translator([](std::exception_ptr p) {
    try {
      if (p) std::rethrow_exception(p);
    } catch (const kiln::Error& e) {
      raise_kiln_error(e.what());
    }
  });

  py::class_<Buffer>(m, "Buffer",
                     "The base of an array Kiln returned: holds Kiln's buffer while the array (or a view of it) lives.")
      .def_property_readonly("address",
                             [](const Buffer& b) { return reinterpret_cast<std::uintptr_t>(b.tensor.data()); })
      .def_property_readonly("nbytes", [](const Buffer& b) { return b.tensor.bytes(); })
      .def("__repr__", [](const Buffer& b) {
        return "<kiln.Buffer " + std::string(kiln::dtype_name(b.tensor.dtype())) +
               kiln::shape_to_string(b.tensor.shape()) + ">";
      });

  py::class_<kiln::IoInfo>(m, "IoInfo", "A graph input or output: name, dtype and shape (ints and dim names).")
      .def_readonly("name", &kiln::IoInfo::name)
      .def_property_readonly("dtype", [](const kiln::IoInfo& io) { return numpy_dtype(io.dtype); })
      .def_property_readonly("dtype_name",
                             [](const kiln::IoInfo& io) { return std::string(kiln::dtype_name(io.dtype)); })
      .def_property_readonly("shape", &io_shape)
      .def("__repr__", [](const kiln::IoInfo& io) {
        std::string s = "IoInfo('" + io.name + "', " + std::string(kiln::dtype_name(io.dtype)) + ", [";
        for (std::size_t i = 0; i < io.dims.size(); ++i) s += (i ? "," : "") + io.dims[i];
        return s + "])";
      });

  py::class_<kiln::Model>(m, "Model", "A loaded, verified model (kiln::Model).")
      .def_static(
          "load",
          [](const std::string& path, int opt_level, const py::object& quantize,
             const std::vector<std::string>& disabled_passes) {
            kiln::LoadOptions o = load_options(opt_level, quantize, disabled_passes);
            py::gil_scoped_release unlocked;
            return kiln::Model::load(path, o);
          },
          py::arg("path"), py::kw_only(), py::arg("opt_level") = 2, py::arg("quantize") = py::none(),
          py::arg("disabled_passes") = std::vector<std::string>{},
          "Loads a .yaml model (and its weights), an .onnx model or a .kplan plan file.")
      .def_property_readonly("name", &kiln::Model::name)
      .def_property_readonly("inputs", &kiln::Model::inputs)
      .def_property_readonly("outputs", &kiln::Model::outputs)
      .def_property_readonly("weight_bytes", &kiln::Model::weight_bytes)
      .def("ir", &kiln::Model::ir, py::arg("with_locations") = false, "The optimized IR as text.")
      .def(
          "explain",
          [](const kiln::Model& model, const py::object& inputs) -> std::string {
            if (inputs.is_none()) return model.ir(true);
            PySession s(model, model.options().session);
            return s.explain(inputs.cast<py::dict>());
          },
          py::arg("inputs") = py::none(),
          "Without inputs: the optimized IR, one node per line with its source location. With inputs (a dict "
          "of arrays): the plan for their shapes, one line per kernel with its implementation.")
      .def(
          "session",
          [](const kiln::Model& model, int threads, const std::string& mode, std::size_t memory_limit,
             std::size_t max_plans) {
            kiln::SessionOptions o;
            o.intra_op_threads = threads;
            o.mode = parse_mode(mode);
            o.memory_limit = memory_limit;
            o.max_plans = max_plans;
            return std::make_unique<PySession>(model, o);
          },
          py::kw_only(), py::arg("threads") = 0, py::arg("mode") = "latency", py::arg("memory_limit") = 0,
          py::arg("max_plans") = 16,
          "A Session (threads 0: all cores; mode \"latency\" or \"throughput\"; memory_limit in bytes, 0: none).")
      .def("__repr__", [](const kiln::Model& model) { return "<kiln.Model '" + model.name() + "'>"; });

  py::class_<PySession>(m, "Session",
                        "Runs a model; safe to share between Python threads (the GIL is released while it runs).")
      .def("run", &PySession::run, py::arg("inputs"), py::arg("outputs") = py::none(),
           "Runs the model on a dict of input arrays; returns every output as a NumPy array over Kiln's "
           "buffer. With outputs (a dict of writable C-contiguous arrays), writes into them instead.")
      .def("output_shapes", &PySession::output_shapes, py::arg("inputs"))
      .def("prepare", &PySession::prepare, py::arg("inputs"))
      .def("explain", &PySession::explain, py::arg("inputs"))
      .def("profile", &PySession::profile, py::arg("inputs"), py::arg("runs") = 10)
      .def("_bench_cpp_run", &PySession::bench_cpp_run, py::arg("inputs"), py::arg("runs"),
           py::arg("preallocated") = false,
           "Benchmark hook: nanoseconds per call of `runs` calls of the C++ Session::run on these inputs.")
      .def_property_readonly("model", &PySession::model)
      .def_property_readonly("plan_count", [](PySession& s) { return s.session().plan_count(); })
      .def_property_readonly("threads_per_run", [](PySession& s) { return s.session().threads_per_run(); })
      .def_property_readonly("max_concurrent_runs", [](PySession& s) { return s.session().max_concurrent_runs(); })
      .def("memory", [](PySession& s) {
        kiln::MemoryStats st = s.session().memory();
        py::dict d;
        d["weight_bytes"] = st.weight_bytes;
        d["arena_bytes"] = st.arena_bytes;
        d["peak_arena_bytes"] = st.peak_arena_bytes;
        d["plans"] = st.plans;
        d["contexts"] = st.contexts;
        d["memory_limit"] = st.memory_limit;
        return d;
      });

  py::class_<kiln::Hypothesis>(m, "Hypothesis", "One generated sequence.")
      .def_readonly("tokens", &kiln::Hypothesis::tokens)
      .def_readonly("score", &kiln::Hypothesis::score)
      .def_readonly("normalized_score", &kiln::Hypothesis::normalized_score)
      .def_readonly("finished", &kiln::Hypothesis::finished)
      .def("__repr__", [](const kiln::Hypothesis& h) {
        return "Hypothesis(" + std::to_string(h.tokens.size()) + " tokens, score " + std::to_string(h.score) + ")";
      });

  py::class_<kiln::Seq2SeqModel>(m, "Seq2SeqModel", "An encoder-decoder model with its tokenizer.")
      .def_static(
          "load",
          [](const std::string& path, int opt_level, const py::object& quantize) {
            kiln::LoadOptions o = load_options(opt_level, quantize, {});
            py::gil_scoped_release unlocked;
            return kiln::Seq2SeqModel::load(path, o);
          },
          py::arg("path"), py::kw_only(), py::arg("opt_level") = 2, py::arg("quantize") = py::none())
      .def_property_readonly("name", &kiln::Seq2SeqModel::name)
      .def("encode", &kiln::Seq2SeqModel::encode, py::arg("text"))
      .def("decode", &kiln::Seq2SeqModel::decode, py::arg("tokens"))
      .def_property_readonly("vocab_size", &kiln::Seq2SeqModel::vocab_size)
      .def_property_readonly("start_token", &kiln::Seq2SeqModel::start_token)
      .def_property_readonly("end_token", &kiln::Seq2SeqModel::end_token)
      .def_property_readonly("max_length", &kiln::Seq2SeqModel::max_length)
      .def_property_readonly("encoder", &kiln::Seq2SeqModel::encoder)
      .def_property_readonly("decoder", &kiln::Seq2SeqModel::decoder);

  py::class_<PyGenerator>(m, "Generator", "Greedy and beam-search generation (one call at a time per Generator).")
      .def(py::init<const kiln::Seq2SeqModel&>(), py::arg("model"))
      .def(
          "generate",
          [](PyGenerator& g, const py::list& sources, std::optional<std::string> strategy, int beam_width, int n_best,
             int max_length, std::optional<double> length_penalty, bool stop_at_end) {
            std::vector<std::vector<std::int64_t>> src;
            for (py::handle s : sources) {
              if (py::isinstance<py::str>(s)) src.push_back(g.model.encode(s.cast<std::string>()));
              else src.push_back(s.cast<std::vector<std::int64_t>>());
            }
            kiln::GenerateOptions o =
                generate_options(strategy, beam_width, n_best, max_length, length_penalty, stop_at_end);
            py::gil_scoped_release unlocked;
            std::lock_guard<std::mutex> lock(g.mutex);
            return g.gen.generate(src, o);
          },
          py::arg("sources"), py::kw_only(), py::arg("strategy") = py::none(), py::arg("beam_width") = 0,
          py::arg("n_best") = 1, py::arg("max_length") = 0, py::arg("length_penalty") = py::none(),
          py::arg("stop_at_end") = true,
          "Generates for a list of sources (token-id sequences, or texts the model's tokenizer encodes); "
          "returns per source up to n_best Hypothesis objects, best first. 0 / None: the model's defaults.")
      .def(
          "translate",
          [](PyGenerator& g, const std::vector<std::string>& texts, std::optional<std::string> strategy, int beam_width,
             int max_length, std::optional<double> length_penalty) {
            kiln::GenerateOptions o = generate_options(strategy, beam_width, 1, max_length, length_penalty, true);
            py::gil_scoped_release unlocked;
            std::lock_guard<std::mutex> lock(g.mutex);
            return g.gen.translate(texts, o);
          },
          py::arg("texts"), py::kw_only(), py::arg("strategy") = py::none(), py::arg("beam_width") = 0,
          py::arg("max_length") = 0, py::arg("length_penalty") = py::none(),
          "Encodes texts, generates, and decodes the best hypothesis of each.")
      .def_property_readonly("step_ms", [](PyGenerator& g) { return g.gen.step_ms(); })
      .def_property_readonly("encoder_ms", [](PyGenerator& g) { return g.gen.encoder_ms(); })
      .def_property_readonly("decoder_plan_count", [](PyGenerator& g) { return g.gen.decoder_plan_count(); });

  m.def(
      "compile",
      [](const std::string& path, const std::string& output, const py::object& shapes, int opt_level,
         const py::object& quantize) {
        const kiln::DimRanges dims = dims_of(shapes);
        kiln::LoadOptions lo = load_options(opt_level, quantize, {});
        const auto dot = path.find_last_of('.');
        const std::string ext = dot == std::string::npos ? std::string() : path.substr(dot);
        if (ext != ".yaml" && ext != ".yml" && ext != ".onnx") {
          raise_kiln_error(path + ": error: expected a .yaml or .onnx model to compile, got '" + ext + "'");
          throw py::error_already_set();
        }
        py::gil_scoped_release unlocked;
        kiln::KplanInfo info;
        info.isa = kiln::host_isa();
        info.source = path;
        info.opt_level = opt_level;
        info.dims = dims;
        kiln::detail::CompileRequest request;
        request.path = path;
        request.options = lo;
        request.pipeline = kiln::detail::pipeline_options(lo);
        request.dims = dims;
        auto impl = kiln::detail::compile(std::move(request));
        info.plans = kiln::detail::summarize_plans(*impl);
        std::vector<unsigned char> bytes = kiln::detail::serialize_kplan(*impl, info);
        kiln::detail::write_file_atomic(output, bytes.data(), bytes.size());
      },
      py::arg("path"), py::arg("output"), py::kw_only(), py::arg("shapes") = py::none(), py::arg("opt_level") = 2,
      py::arg("quantize") = py::none(),
      "Compiles a .yaml or .onnx model ahead of time into a .kplan plan file (as `kilnc compile`): shapes "
      "binds symbolic dims, name -> int (fixed) or (min, max) / \"min..max\" (a range); quantize: None (the "
      "file's choice), \"none\", \"int8\" or \"bf16\", stored quantized in the plan file.");

  m.def(
      "_last_input_addresses",
      [] {
        py::dict d;
        for (const auto& [name, addr] : t_last_inputs) d[py::str(name)] = addr;
        return d;
      },
      "Test hook: the data address of each input tensor the last call on this thread passed to Kiln.");
  m.attr("__version__") = KILN_PY_VERSION;
}
