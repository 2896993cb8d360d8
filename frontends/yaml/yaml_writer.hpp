#pragma once
// Writing a graph back out as a Kiln YAML model (docs/yaml-format.md) and its `.safetensors` weights:
// `kilnc import` turns an ONNX model into files a user can read and edit. Every constant becomes a named
// tensor of the weights file; each node is one line `{op, in, out, name, ATTR: ...}` with its inputs listed
// in schema order (`~` for an optional input left out). No blocks: the graph is written as it is.

#include <string>

#include "graph/graph.hpp"

namespace kiln {

struct YamlExport {
  std::string yaml;     // the model file's text
  std::string weights;  // the .safetensors image it names
  int renamed = 0;      // values and nodes whose names had to change (characters outside [A-Za-z0-9_.:/-])
};

/// The YAML text and weights image for `g`, whose YAML names the weights file `weights_file` (relative to
/// the model file). `doc`, when not empty, becomes the model's `doc:`. Throws kiln::Error when a value has a
/// layout other than plain row-major (written graphs must be taken before the layout pass).
YamlExport export_yaml(const Graph& g, const std::string& weights_file, const std::string& doc);

}  // namespace kiln
