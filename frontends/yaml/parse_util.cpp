#include "frontends/yaml/parse_util.hpp"

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

namespace kiln::yaml_detail {

std::string join(const std::vector<std::string>& items) {
  std::string out;
  for (const auto& s : items) out += (out.empty() ? "" : ", ") + s;
  return out;
}

std::string read_model_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) fail_at(SourceLoc{path, 0, 0}, std::string("cannot open model file: ") + std::strerror(errno));
  std::stringstream ss;
  ss << in.rdbuf();
  return ss.str();
}

std::string folder_of(const std::string& path) {
  std::string dir = std::filesystem::path(path).parent_path().string();
  return dir.empty() ? "." : dir;
}

YAML::Node NodeReader::load(const std::string& text) const {
  YAML::Node root;
  try {
    root.reset(YAML::Load(text));  // reset rebinds; operator= on a bound node assigns into it
  } catch (const YAML::ParserException& e) {
    fail_at(SourceLoc{file_, e.mark.line + 1, e.mark.column + 1}, "invalid YAML: " + e.msg);
  }
  return root;
}

SourceLoc NodeReader::loc(const YAML::Node& n) const {
  return SourceLoc{file_, n.Mark().line + 1, n.Mark().column + 1};
}

void NodeReader::error(const YAML::Node& n, const std::string& message) const {
  if (n.Mark().is_null()) fail_at(SourceLoc{file_, 0, 0}, message);
  fail_at(loc(n), message);
}

YAML::Node NodeReader::require(const YAML::Node& map, const char* key, const YAML::Node& where) const {
  YAML::Node v = map[key];
  if (!v) error(where, std::string("missing required key '") + key + "'");
  return v;
}

std::string NodeReader::scalar(const YAML::Node& n, const std::string& what) const {
  if (!n.IsScalar())
    error(n, "expected " + what + " (a scalar), got a " + (n.IsSequence() ? "list" : n.IsMap() ? "mapping" : "null"));
  return n.Scalar();
}

std::int64_t NodeReader::int_of(const YAML::Node& n, const std::string& what) const {
  std::string s = scalar(n, what);
  try {
    return n.as<std::int64_t>();
  } catch (const YAML::Exception&) {
    error(n, "expected " + what + " to be an integer, got '" + s + "'");
  }
}

std::vector<std::string> NodeReader::names(const YAML::Node& n, const std::string& what) const {
  std::vector<std::string> out;
  if (n.IsScalar()) return {n.Scalar()};
  if (!n.IsSequence()) error(n, "expected " + what + " as a name or a list of names");
  for (const auto& item : n) out.push_back(scalar(item, "a name in " + what));
  return out;
}

void NodeReader::check_keys(const YAML::Node& map, const std::vector<std::string>& allowed,
                            const std::string& where) const {
  const bool top = where.empty();
  for (const auto& kv : map) {
    std::string key = scalar(kv.first, top ? "a top-level key" : "a key");
    if (std::find(allowed.begin(), allowed.end(), key) != allowed.end()) continue;
    error(kv.first, (top ? "unknown top-level key '" + key + "'" : "unknown key '" + key + "' in " + where) +
                        " (expected " + (allowed.size() > 6 ? "one of: " : "") + join(allowed) + ")");
  }
}

void NodeReader::check_version(const YAML::Node& root) const {
  const YAML::Node version = require(root, "kiln", root);
  if (int_of(version, "the format version") != 1)
    error(version, "unsupported format version " + scalar(version, "") + " (this Kiln reads version 1)");
}

void NodeReader::read_quantize(const YAML::Node& root, Graph& g) const {
  const YAML::Node q = root["quantize"];
  if (!q) return;
  Quantize value;
  const std::string name = scalar(q, "none, int8 or bf16");
  if (!parse_quantize(name, &value)) error(q, "unknown quantize value '" + name + "' (expected none, int8 or bf16)");
  g.quantize = value;
  g.quantize_loc = loc(q);
}

}  // namespace kiln::yaml_detail
