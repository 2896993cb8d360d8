#pragma once
/// \file
/// Loading a model and running it.

#include <cstdint>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "kiln/tensor.hpp"

namespace kiln {

namespace detail {
struct ModelImpl;
struct SessionImpl;
}  // namespace detail

/// A graph input or output as declared by the model. Symbolic dims (e.g. `batch`) appear in `dims` as
/// their names; concrete dims as decimal numbers.
struct IoInfo {
  std::string name;
  DType dtype = DType::f32;
  std::vector<std::string> dims;
};

/// Options for loading a model.
struct LoadOptions {
  /// Optimization level: 0 runs the graph as written; 1 removes dead code; 2 (default) also fuses
  /// (see `kilnc passes`).
  int opt_level = 2;
  /// Names of passes not to run.
  std::vector<std::string> disabled_passes;
};

/// A loaded, verified model: the graph with its weights (memory-mapped from the weights file, which stays
/// mapped while any Model or Session copy refers to it). Cheap to copy: copies share the same graph.
class Model {
 public:
  Model() = default;
  /// Wraps an already compiled model (used by tools inside Kiln).
  explicit Model(std::shared_ptr<const detail::ModelImpl> impl) : impl_(std::move(impl)) {}

  /// Loads a `.yaml` model file and the weights file it names, or a `.kplan` plan file compiled by
  /// `kilnc compile` (memory-mapped; `options` then do not apply: the passes ran at compile time).
  /// Throws kiln::Error with file, line and column on any problem in either file.
  static Model load(const std::string& path, const LoadOptions& options = {});
  /// Loads a plan file image already in memory (e.g. embedded by `kilnc compile --emit cpp`). No copy is
  /// made when `data` is 64-byte aligned: it must then stay valid and unchanged while any Model, Session
  /// or copy made from the result lives. `name` is used in error messages. Throws kiln::Error when the
  /// image is truncated, corrupt, of another format version or built for an ISA this CPU lacks.
  static Model load_plan(const void* data, std::size_t size, const std::string& name = "<memory>");

  const std::string& name() const;
  std::vector<IoInfo> inputs() const;
  std::vector<IoInfo> outputs() const;
  /// The IR as text (stable; one node per line).
  std::string ir(bool with_locations = false) const;

  std::shared_ptr<const detail::ModelImpl> impl() const { return impl_; }

 private:
  std::shared_ptr<const detail::ModelImpl> impl_;
};

/// Runs a model. A session compiles one execution plan per distinct set of input shapes (primitives,
/// buffers) on first use and reuses it afterwards; after that warm-up, `run` allocates only the output
/// tensors it returns (or nothing, with the overload that takes output tensors).
/// Not yet safe to call from several threads at once: use one Session per thread.
class Session {
 public:
  explicit Session(Model model);
  ~Session();
  Session(Session&&) noexcept;
  Session& operator=(Session&&) noexcept;

  /// Runs the model on named inputs; returns every declared output by name (owned tensors).
  std::map<std::string, Tensor> run(const std::map<std::string, Tensor>& inputs);

  /// Runs the model writing into caller-provided output tensors (every declared output, by name, with
  /// the exact dtype and shape; a `Tensor::view` over the caller's memory works). Once the plan for
  /// these shapes exists, this call performs no heap allocation in Kiln's code.
  void run(const std::map<std::string, Tensor>& inputs, std::map<std::string, Tensor>& outputs);

  /// Compiles (or finds) the plan for these input shapes without running it.
  void prepare(const std::map<std::string, Tensor>& inputs);

  /// Number of plans compiled so far (one per distinct input-shape set).
  std::size_t plan_count() const;

  /// Describes the plan for these input shapes (compiling it if needed): one line per kernel with the
  /// implementation oneDNN or Kiln chose, then activation arena bytes and weight bytes.
  std::string explain(const std::map<std::string, Tensor>& inputs);

  /// Time per node, as a table sorted by total time: runs the model `runs` times (after one warm-up run)
  /// timing each kernel, and reports the median per node, its share, and its implementation.
  std::string profile(const std::map<std::string, Tensor>& inputs, int runs);

 private:
  std::unique_ptr<detail::SessionImpl> impl_;
};

}  // namespace kiln
