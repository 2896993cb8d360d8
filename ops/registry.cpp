#include <map>

#include "ops/op.hpp"

namespace kiln {

#define KILN_OP(name) const OpSchema& op_##name();
#include "ops/op_list.inc"
#undef KILN_OP

namespace {
const std::map<std::string, const OpSchema*, std::less<>>& registry() {
  static const auto* table = [] {
    auto* m = new std::map<std::string, const OpSchema*, std::less<>>();
#define KILN_OP(name) m->emplace(#name, &op_##name());
#include "ops/op_list.inc"
#undef KILN_OP
    return m;
  }();
  return *table;
}
}  // namespace

const OpSchema* find_op(std::string_view name) {
  const auto& r = registry();
  auto it = r.find(name);
  return it == r.end() ? nullptr : it->second;
}

std::vector<const OpSchema*> all_ops() {
  std::vector<const OpSchema*> out;
  for (const auto& [name, schema] : registry()) out.push_back(schema);
  return out;
}

}  // namespace kiln
