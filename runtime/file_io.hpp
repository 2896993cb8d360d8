#pragma once
// Whole-file I/O for compiled artifacts: atomic writes (a reader never sees a half-written file) and
// read-only memory maps (a plan file's weights are used in place).

#include <cstddef>
#include <memory>
#include <string>

namespace kiln::detail {

/// Writes `bytes` to `path` atomically: a temporary file beside it, flushed, then renamed over `path`.
/// On failure no partial file is left at `path` and the temporary is removed. Throws kiln::Error naming
/// `path` and what failed.
void write_file_atomic(const std::string& path, const void* bytes, std::size_t size);

/// The temporary file `write_file_atomic` is writing right now, or nullptr. Safe to call from a signal
/// handler (a lock-free load; the path is in a fixed buffer), so that a tool can remove the temporary on
/// SIGINT/SIGTERM: the library itself installs no signal handlers.
const char* atomic_write_temp_path() noexcept;

/// A file mapped read-only; `data` stays valid while `owner` (or a copy of it) lives.
struct MappedFile {
  const void* data = nullptr;
  std::size_t size = 0;
  std::shared_ptr<const void> owner;
};

/// Memory-maps the regular file `path`, its pages read in up front (the caller reads every byte). An empty
/// file maps to no data. Errors name `path` and call the file `what` ("plan file": "cannot open plan file:
/// No such file or directory").
MappedFile map_file(const std::string& path, const std::string& what);

}  // namespace kiln::detail
