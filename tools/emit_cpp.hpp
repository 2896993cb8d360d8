#pragma once
// `kilnc compile --emit cpp`: C++ source for one model — a header declaring a typed class (inputs and
// outputs as named members, shaped arrays where the dims are fixed) and a source file that loads the
// compiled plan, embedded in the binary or read from a plan file beside it, through Model::load_plan.

#include <string>
#include <vector>

#include "graph/graph.hpp"

namespace kiln {

struct EmitCppOptions {
  std::string name;        // file stem: NAME.hpp, NAME.cpp (and NAME.kplan with embed = false)
  std::string class_name;  // default: the model name in UpperCamelCase
  std::string ns = "kiln_models";
  bool embed = true;      // embed the plan's bytes, else read the plan file at run time
  std::string plan_file;  // default path of that file (embed = false)
  std::string source;     // the model file, for the comment
  std::string shapes;     // the --shape bindings, for the comment
  int opt_level = 2;
};

struct EmittedCpp {
  std::string header, source;
  std::string class_name;
};

/// Generates the header and source for `graph` whose compiled plan file is `plan`.
EmittedCpp emit_cpp(const Graph& graph, const std::vector<unsigned char>& plan, const EmitCppOptions& options);

/// A C++ identifier made from `name` (invalid characters become '_').
std::string cpp_identifier(const std::string& name);

}  // namespace kiln
