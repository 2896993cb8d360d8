#pragma once
// Internal to the YAML frontend (yaml_frontend.cpp, seq2seq.cpp): reading YAML nodes so that every error
// names the file, line and column and says what was expected.

#include <cstdint>
#include <string>
#include <vector>

#include <yaml-cpp/yaml.h>

#include "graph/graph.hpp"

namespace kiln::yaml_detail {

std::string join(const std::vector<std::string>& items);

/// The text of a model file; fails naming `path` when it cannot be read.
std::string read_model_file(const std::string& path);
/// The folder relative weights paths resolve against: the file's own folder, "." for a bare name.
std::string folder_of(const std::string& path);

/// Typed access to the nodes of one YAML file; errors carry FILE:LINE:COL.
class NodeReader {
 public:
  explicit NodeReader(std::string file) : file_(std::move(file)) {}

  /// Parses `text` as one YAML document; a syntax error fails with its location.
  YAML::Node load(const std::string& text) const;

  SourceLoc loc(const YAML::Node& n) const;
  [[noreturn]] void error(const YAML::Node& n, const std::string& message) const;
  YAML::Node require(const YAML::Node& map, const char* key, const YAML::Node& where) const;
  std::string scalar(const YAML::Node& n, const std::string& what) const;
  std::int64_t int_of(const YAML::Node& n, const std::string& what) const;
  std::vector<std::string> names(const YAML::Node& n, const std::string& what) const;

  /// Fails at the first key of `map` not in `allowed`: "unknown key 'K' in WHERE (expected A, B, C)", or
  /// "unknown top-level key 'K' (expected one of: ...)" when `where` is empty. Lists of more than six keys
  /// read "expected one of: ...".
  void check_keys(const YAML::Node& map, const std::vector<std::string>& allowed, const std::string& where) const;
  /// The `kiln:` format version of a model file's root mapping; only version 1 exists.
  void check_version(const YAML::Node& root) const;
  /// The root mapping's `quantize:` key (none, int8 or bf16; docs/quantization.md) into `g`, when present.
  void read_quantize(const YAML::Node& root, Graph& g) const;

 protected:
  std::string file_;
};

}  // namespace kiln::yaml_detail
