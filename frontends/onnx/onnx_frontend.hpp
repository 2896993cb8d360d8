#pragma once
// ONNX models (docs/onnx.md): a `.onnx` file read with Debian's ONNX library (libonnx), checked by its
// checker, and mapped node by node onto Kiln's ops, giving a verified, shape-inferred Graph. Errors name
// the file and the node as `FILE:NODE_INDEX+1:0` (ONNX files have no lines), the node's name and op type.

#include <memory>
#include <string>
#include <vector>

#include "graph/graph.hpp"

namespace kiln {

/// Loads `path` (external tensor data resolves against the model's folder). Throws kiln::Error, listing
/// every node whose op (type, domain, opset) has no exact Kiln mapping at once.
std::unique_ptr<Graph> load_onnx_model(const std::string& path);

/// One row of the importer's op table: an ONNX op of the default domain and the opsets it maps exactly.
struct OnnxOpSupport {
  std::string op;
  int min_opset = 0;
  int max_opset = 0;
};
/// The op table, in its order (docs/onnx.md describes each row; the node-test runner checks its list
/// covers every backend test of these ops).
std::vector<OnnxOpSupport> onnx_supported_ops();

}  // namespace kiln
