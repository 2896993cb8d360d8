#include "graph/schema.hpp"

namespace kiln {

const AttrSpec* OpSchema::find_attr(std::string_view attr) const {
  for (const auto& a : attrs)
    if (a.name == attr) return &a;
  return nullptr;
}

const InputSpec* OpSchema::find_weight(std::string_view suffix) const {
  for (const auto& i : inputs)
    if (!i.weight.empty() && i.weight == suffix) return &i;
  return nullptr;
}

void ShapeCtx::expect_dtype(std::size_t i, DType t) const {
  const auto& spec = node_.schema->inputs[std::min(i, node_.schema->inputs.size() - 1)];
  if (in(i).dtype != t)
    fail("expected input '" + spec.name + "' of type " + std::string(dtype_name(t)) + ", got " + in(i).str());
}

void ShapeCtx::expect_rank(std::size_t i, int rank) const {
  const auto& spec = node_.schema->inputs[std::min(i, node_.schema->inputs.size() - 1)];
  if (in(i).rank() != rank)
    fail("expected input '" + spec.name + "' of rank " + std::to_string(rank) + ", got " + in(i).str());
}

}  // namespace kiln
