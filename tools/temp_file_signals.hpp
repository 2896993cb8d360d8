#pragma once
// kilnc's SIGINT/SIGTERM handling while it writes its outputs: the temporary file of the atomic write in
// progress (runtime/file_io.hpp) is removed, then the process ends by the signal as it would have. The
// library installs no signal handlers: it only says which temporary it is writing. Header-only, so that
// the tests check this very handler in a child process.

#include <unistd.h>

#include <csignal>

#include "runtime/file_io.hpp"

namespace kiln {

namespace signal_detail {
// Async-signal-safe only: a lock-free load, unlink, signal and raise.
inline void remove_temp_and_reraise(int sig) {
  if (const char* tmp = detail::atomic_write_temp_path()) ::unlink(tmp);
  std::signal(sig, SIG_DFL);
  std::raise(sig);
}
}  // namespace signal_detail

/// Installs SIGINT/SIGTERM handlers that remove a temporary file being written, then exit by the signal.
inline void remove_temp_files_on_signal() {
  std::signal(SIGINT, signal_detail::remove_temp_and_reraise);
  std::signal(SIGTERM, signal_detail::remove_temp_and_reraise);
}

}  // namespace kiln
