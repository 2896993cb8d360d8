#pragma once
// The YAML model format (docs/yaml-format.md): a model file plus the `.safetensors` weights it names,
// turned into a verified, shape-inferred Graph. Every error names the file, line and column.

#include <memory>
#include <string>

#include "graph/graph.hpp"

namespace kiln {

/// Loads `path` and the weights file it names (relative paths resolve against the model's folder).
std::unique_ptr<Graph> load_yaml_model(const std::string& path);

/// Parses model text; `filename` is used in messages, `base_dir` to find the weights file.
std::unique_ptr<Graph> parse_yaml_model(const std::string& text, const std::string& filename,
                                        const std::string& base_dir);

class WeightsFile;
/// Parses model text with weights already loaded (e.g. from memory): the model's `weights:` key, if any,
/// is not opened; every weight is looked up in `weights` (which may be null for a model without weights).
std::unique_ptr<Graph> parse_yaml_model(const std::string& text, const std::string& filename,
                                        std::shared_ptr<WeightsFile> weights);

}  // namespace kiln
