#pragma once
// Shared by the fuzz targets (docs/fuzzing.md): the source tree's files a harness may read, a private
// temporary folder that is removed at exit, and the rule that keeps file names in fuzzed model text inside it.
//
// Contract of every target: bad input must end in kiln::Error (caught here: the expected outcome). Any
// other exception escaping, a crash, or a sanitizer report is a finding. Harnesses are deterministic and
// write nothing outside their temporary folder.

#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <string>
#include <utility>
#include <vector>

#ifndef KILN_SOURCE_DIR
#error "KILN_SOURCE_DIR must name the source tree"
#endif

namespace kiln::fuzz {

inline std::string source_path(const std::string& rel) { return std::string(KILN_SOURCE_DIR) + "/" + rel; }

inline std::string read_file(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) {
    std::fprintf(stderr, "fuzz: cannot read %s\n", path.c_str());
    std::abort();
  }
  return std::string(std::istreambuf_iterator<char>(in), {});
}

/// A temporary folder holding symbolic links to the given source files under the given names (the weights
/// files that fuzzed model text may name); removed at exit.
class LinkDir {
 public:
  explicit LinkDir(const std::vector<std::pair<std::string, std::string>>& links) {
    std::string templ = (std::filesystem::temp_directory_path() / "kiln-fuzz-XXXXXX").string();
    if (!mkdtemp(templ.data())) {
      std::perror("fuzz: mkdtemp");
      std::abort();
    }
    path_ = templ;
    for (const auto& [name, target] : links) std::filesystem::create_symlink(source_path(target), path_ + "/" + name);
  }
  ~LinkDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

/// Model text may name a weights file, which the frontend opens read-only (regular files only), relative to
/// the model's folder (the LinkDir) unless the name is absolute. Names reaching /dev, /proc, /sys, /run or
/// /tmp could open a FIFO (open blocks) or files that change between runs (not deterministic): inputs that
/// could spell such a name are rejected (return -1: libFuzzer does not add them to the corpus). '\\' is
/// rejected because a YAML escape could spell any character, "/." because "/./dev" names /dev.
inline bool confined(const std::string& text) {
  for (const char* bad : {"\\", "/.", "/dev", "/proc", "/sys", "/run", "/tmp"})
    if (text.find(bad) != std::string::npos) return false;
  return true;
}

/// Reads every byte of a buffer the library handed back, so that ASan checks it lies inside its allocation.
inline unsigned touch(const void* data, std::size_t bytes) {
  const auto* p = static_cast<const volatile unsigned char*>(data);
  unsigned sum = 0;
  for (std::size_t i = 0; i < bytes; ++i) sum += p[i];
  return sum;
}

}  // namespace kiln::fuzz
