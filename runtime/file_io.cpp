#include "runtime/file_io.hpp"

#include <fcntl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstring>

#include "graph/types.hpp"

namespace kiln::detail {

namespace {
// The temporary file being written, for a tool's signal handler (which may only call async-signal-safe
// functions: it reads this fixed buffer and calls unlink).
char g_temp_path[4096];
std::atomic<bool> g_temp_active{false};
static_assert(std::atomic<bool>::is_always_lock_free, "read from signal handlers");
}  // namespace

const char* atomic_write_temp_path() noexcept { return g_temp_active.load() ? g_temp_path : nullptr; }

void write_file_atomic(const std::string& path, const void* bytes, std::size_t size) {
  std::string tmp = path + ".tmp." + std::to_string(::getpid());
  if (tmp.size() >= sizeof g_temp_path) fail("path too long: " + path);
  auto bad = [&](const std::string& what) -> void {
    int err = errno;
    g_temp_active = false;
    ::unlink(tmp.c_str());
    throw Error(path + ": error: " + what + ": " + std::strerror(err));
  };
  std::memcpy(g_temp_path, tmp.c_str(), tmp.size() + 1);
  g_temp_active = true;
  int fd = ::open(tmp.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
  if (fd < 0) {
    int err = errno;
    g_temp_active = false;
    throw Error(path + ": error: cannot create file: " + std::strerror(err));
  }
  const auto* p = static_cast<const char*>(bytes);
  std::size_t done = 0;
  while (done < size) {
    ssize_t n = ::write(fd, p + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      ::close(fd);
      bad("cannot write file");
    }
    done += static_cast<std::size_t>(n);
  }
  if (::fsync(fd) != 0) {
    ::close(fd);
    bad("cannot flush file");
  }
  if (::close(fd) != 0) bad("cannot close file");
  if (::rename(tmp.c_str(), path.c_str()) != 0) bad("cannot rename the temporary file into place");
  g_temp_active = false;
}

MappedFile map_file(const std::string& path, const std::string& what) {
  auto bad = [&](const std::string& why) -> void { throw Error(path + ": error: " + why); };
  int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0) bad("cannot open " + what + ": " + std::strerror(errno));
  struct stat st {};
  if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode)) {
    ::close(fd);
    bad("not a regular file");
  }
  MappedFile out;
  out.size = static_cast<std::size_t>(st.st_size);
  if (out.size == 0) {  // mmap refuses an empty range; the caller reports the file as too short
    ::close(fd);
    return out;
  }
  // MAP_POPULATE: the caller reads every page anyway (a plan file's checksum); faulting them in one call
  // is faster.
  void* map = mmap(nullptr, out.size, PROT_READ, MAP_PRIVATE | MAP_POPULATE, fd, 0);
  ::close(fd);
  if (map == MAP_FAILED) bad("cannot map " + what + ": " + std::strerror(errno));
  out.data = map;
  out.owner =
      std::shared_ptr<const void>(map, [size = out.size](const void* q) { munmap(const_cast<void*>(q), size); });
  return out;
}

}  // namespace kiln::detail
