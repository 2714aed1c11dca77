#include "hdf5_guard.hpp"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <mutex>
#include <new>
#include <optional>
#include <set>
#include <thread>
#include <tuple>
#include <vector>

#include "anndata_reader.hpp"
#include "element.hpp"
#include "error.hpp"

extern char** environ;

namespace orrery::io {

namespace {

struct Guard {
  std::string executable;
  Hdf5GuardLimits limits;
};

std::mutex guard_mutex;
std::optional<Guard> guard;

// Files that passed, by identity and version: (device, inode, size, modification time in ns).
// Opening one of them again (a re-run from the GUI) needs no second check.
using FileVersion = std::tuple<std::uint64_t, std::uint64_t, std::int64_t, std::int64_t>;
std::set<FileVersion> passed;

std::optional<FileVersion> version_of(const std::string& path) {
  struct stat st {};
  if (::stat(path.c_str(), &st) != 0) return std::nullopt;
  return FileVersion{
      static_cast<std::uint64_t>(st.st_dev), static_cast<std::uint64_t>(st.st_ino),
      static_cast<std::int64_t>(st.st_size),
      static_cast<std::int64_t>(st.st_mtim.tv_sec) * 1000000000 + st.st_mtim.tv_nsec};
}

constexpr int kExitError = 3;   // the child printed an orrery::Error
constexpr int kExitMemory = 4;  // the child ran out of its address space
constexpr int kMaxDepth = 64;   // deeper nesting is a cycle of hard links
constexpr std::size_t kWholeArrayBytes = std::size_t{64} << 20;

// ---- the child -----------------------------------------------------------------------------

void say(const std::string& line) {
  std::string s = line + "\n";
  const char* p = s.data();
  std::size_t left = s.size();
  while (left > 0) {
    const ssize_t n = ::write(STDOUT_FILENO, p, left);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return;
    p += n;
    left -= static_cast<std::size_t>(n);
  }
}

std::string where(const Element& e) {
  return e.path().empty() ? "/" : e.path();
}

// Reads what any of Orrery's readers could touch: attributes, members, strings, small arrays
// whole and the first and last rows of large ones.
void walk(const Element& e, int depth) {
  if (depth > kMaxDepth)
    e.fail("groups nested more than " + std::to_string(kMaxDepth) +
           " levels deep (a cycle of links?)");
  say("at " + where(e));
  (void)e.attrs();
  const ElementKind kind = e.kind();
  if (kind == ElementKind::Group) {
    for (const auto& name : e.members())
      if (auto member = e.open(name)) walk(*member, depth + 1);
    return;
  }
  const auto fields = e.fields();
  for (const auto& f : fields)
    if (auto field = e.field(f)) walk(*field, depth + 1);
  if (!fields.empty() || kind == ElementKind::Other) return;
  const auto shape = e.shape();
  if (kind == ElementKind::String) {
    if (shape.size() <= 1) (void)e.read_strings();
    return;
  }
  const std::int64_t rows = shape.empty() ? 1 : shape[0];
  if (rows <= 0) return;
  e.visit_chunk_index();  // across the chunk index, where a large array is only sampled below
  // Bytes per row along the first axis; a row over the whole-array budget is not read (the
  // readers refuse such shapes themselves).
  std::size_t row_bytes = num_type_size(e.stored_type());
  for (std::size_t d = 1; d < shape.size(); ++d) {
    if (shape[d] <= 0) return;
    if (static_cast<std::size_t>(shape[d]) > kWholeArrayBytes / row_bytes) return;
    row_bytes *= static_cast<std::size_t>(shape[d]);
  }
  std::vector<unsigned char> buffer;
  auto read_rows = [&](std::int64_t begin, std::int64_t count) {
    buffer.resize(static_cast<std::size_t>(count) * row_bytes);
    e.read(begin, begin + count, e.stored_type(), buffer.data());
  };
  if (static_cast<std::size_t>(rows) <= kWholeArrayBytes / row_bytes) {
    read_rows(0, rows);
  } else {
    read_rows(0, 1);
    read_rows(rows - 1, 1);
  }
}

// ---- the parent ----------------------------------------------------------------------------

struct ChildReport {
  std::string last_element;  // the element the child announced last
  std::string error_element, error_message;
  bool has_error = false;
};

void parse_line(const std::string& line, ChildReport& report) {
  if (line.rfind("at ", 0) == 0) {
    report.last_element = line.substr(3);
  } else if (line.rfind("error ", 0) == 0) {
    const auto tab = line.find('\t', 6);
    report.has_error = true;
    report.error_element = tab == std::string::npos ? std::string() : line.substr(6, tab - 6);
    report.error_message = tab == std::string::npos ? line.substr(6) : line.substr(tab + 1);
  }
}

std::string signal_name(int sig) {
  const char* name = sigabbrev_np(sig);
  return name ? std::string("SIG") + name : "signal " + std::to_string(sig);
}

std::string seconds_text(double s) {
  return std::to_string(static_cast<long long>(s)) + " s";
}

// The running child: its output pipe is closed and the child killed and reaped however the
// parent leaves (a throw included), so no process or descriptor outlives the check.
struct Child {
  pid_t pid = -1;
  int fd = -1;
  int status = 0;
  bool reaped = false;
  ~Child() {
    if (fd >= 0) ::close(fd);
    if (pid > 0 && !reaped) {
      ::kill(pid, SIGKILL);
      while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
      }
    }
  }
};

std::size_t default_memory_limit() {
  const long pages = ::sysconf(_SC_PHYS_PAGES), page = ::sysconf(_SC_PAGESIZE);
  const std::size_t physical =
      pages > 0 && page > 0 ? static_cast<std::size_t>(pages) * static_cast<std::size_t>(page) : 0;
  return std::max(std::size_t{8} << 30, physical / 2);
}

void warn_unchecked(const std::string& path, const std::string& why) {
  std::fprintf(stderr,
               "orrery: warning: %s: the HDF5 structure check did not run (%s); reading it "
               "in-process\n",
               path.c_str(), why.c_str());
}

}  // namespace

void enable_hdf5_guard(const std::string& executable, Hdf5GuardLimits limits) {
  std::lock_guard lock(guard_mutex);
  guard = Guard{executable, limits};
}

bool hdf5_guard_enabled() {
  std::lock_guard lock(guard_mutex);
  return guard.has_value();
}

int hdf5_check_main(int argc, char** argv) {
  if (argc < 3) return 2;
  const std::string path = argv[2];
  // Die with the parent: a file that makes libhdf5 loop must not leave the child spinning (and
  // should the parent die before this line, RLIMIT_CPU below still ends it).
  ::prctl(PR_SET_PDEATHSIG, SIGKILL);
  if (argc > 3) {
    const unsigned long long bytes = std::strtoull(argv[3], nullptr, 10);
    if (bytes > 0) {
      rlimit limit{static_cast<rlim_t>(bytes), static_cast<rlim_t>(bytes)};
      setrlimit(RLIMIT_AS, &limit);
    }
  }
  if (argc > 4) {
    const unsigned long long seconds = std::strtoull(argv[4], nullptr, 10);
    if (seconds > 0) {
      rlimit limit{static_cast<rlim_t>(seconds), static_cast<rlim_t>(seconds + 5)};
      setrlimit(RLIMIT_CPU, &limit);
    }
  }
  try {
    std::shared_ptr<const Element> root = open_hdf5_root(path);
    walk(*root, 0);
    // Then what opening reads by name (a corrupt group may list no members yet open by name):
    // obs, var and colours, and the first and last rows of a CSR or dense X.
    say("at obs and var (opening as AnnData)");
    OpenOptions options;
    options.open_x = false;
    Store store = open_anndata(root, "h5ad", options);
    if (auto x = root->open("X"); x && x->string_attr_or("encoding-type", "") != "csc_matrix") {
      say("at X");
      auto reader = open_matrix(std::move(x), static_cast<std::int64_t>(store.obs.index.size()),
                                static_cast<std::int64_t>(store.var.index.size()), {});
      const std::int64_t n = reader->n_rows();
      reader->read_rows(0, std::min<std::int64_t>(n, 64));
      reader->read_rows(std::max<std::int64_t>(0, n - 64), n);
    }
    return 0;
  } catch (const Error& e) {
    // what() is "file: element: message"; the parent puts the file and element back.
    std::string message = e.what();
    std::string prefix = e.file().empty() ? std::string() : e.file() + ": ";
    if (!e.element().empty()) prefix += e.element() + ": ";
    if (message.rfind(prefix, 0) == 0) message = message.substr(prefix.size());
    say("error " + e.element() + "\t" + message);
    return kExitError;
  } catch (const std::bad_alloc&) {
    return kExitMemory;
  } catch (const std::exception& e) {
    say(std::string("error \t") + e.what());
    return kExitError;
  }
}

std::optional<int> hdf5_guard_main(int argc, char** argv) {
  if (argc >= 3 && std::string(argv[1]) == kHdf5CheckFlag) return hdf5_check_main(argc, argv);
  std::signal(SIGCHLD, SIG_DFL);
  std::error_code ec;
  const auto self = std::filesystem::read_symlink("/proc/self/exe", ec);
  enable_hdf5_guard(ec ? std::string("/proc/self/exe") : self.string());
  return std::nullopt;
}

void guard_hdf5_file(const std::string& path,
                     const std::function<void(std::string_view, double)>& progress) {
  Guard g;
  const std::optional<FileVersion> version = version_of(path);
  {
    std::lock_guard lock(guard_mutex);
    if (!guard) return;
    if (version && passed.count(*version)) return;  // checked before, unchanged since
    g = *guard;
  }
  if (const char* off = std::getenv("ORRERY_HDF5_GUARD"); off && std::string(off) == "0") return;
  double timeout = g.limits.timeout_s;
  if (const char* t = std::getenv("ORRERY_HDF5_GUARD_TIMEOUT"); t && std::atof(t) > 0)
    timeout = std::atof(t);
  if (timeout <= 0) {
    std::error_code ec;
    const auto size = std::filesystem::file_size(path, ec);
    timeout = 120.0 + 60.0 * (ec ? 0.0 : static_cast<double>(size) / double(1ull << 30));
  }
  const std::size_t memory = g.limits.memory_bytes ? g.limits.memory_bytes : default_memory_limit();

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    warn_unchecked(path, std::string("pipe: ") + std::strerror(errno));
    return;
  }
  Child child;
  child.fd = fds[0];
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDIN_FILENO, "/dev/null", O_RDONLY, 0);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDOUT_FILENO);
  posix_spawn_file_actions_adddup2(&actions, fds[1], STDERR_FILENO);
  std::string exe = g.executable, flag = kHdf5CheckFlag, file = path;
  std::string memory_text = std::to_string(memory);
  std::string cpu_text = std::to_string(static_cast<long long>(timeout) + 1);
  char* argv[] = {exe.data(),         flag.data(),     file.data(),
                  memory_text.data(), cpu_text.data(), nullptr};
  const int spawned = posix_spawn(&child.pid, exe.c_str(), &actions, nullptr, argv, environ);
  posix_spawn_file_actions_destroy(&actions);
  ::close(fds[1]);
  if (spawned != 0) {
    child.pid = -1;
    warn_unchecked(path, "cannot start " + exe + ": " + std::strerror(spawned));
    return;
  }

  using Clock = std::chrono::steady_clock;
  const auto deadline = Clock::now() + std::chrono::duration<double>(timeout);
  ChildReport report;
  std::string pending;
  bool timed_out = false;
  char chunk[4096];
  for (;;) {  // read the child's lines until it closes its output
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - Clock::now());
    if (left.count() <= 0) {
      timed_out = true;
      break;
    }
    if (progress) progress("open: checking the HDF5 structure", 0.0);  // may throw Cancelled
    pollfd p{child.fd, POLLIN, 0};
    const int ready = ::poll(&p, 1, static_cast<int>(std::min<long long>(left.count(), 200)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready < 0) break;
    if (ready == 0) continue;
    const ssize_t n = ::read(child.fd, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;  // the child closed its output: it has exited (or is exiting)
    pending.append(chunk, static_cast<std::size_t>(n));
    for (auto nl = pending.find('\n'); nl != std::string::npos; nl = pending.find('\n')) {
      parse_line(pending.substr(0, nl), report);
      pending.erase(0, nl + 1);
    }
    if (pending.size() > (1u << 16)) pending.clear();  // not our protocol: ignore
  }
  while (!timed_out) {  // wait for its exit status, within the same deadline
    const pid_t done = ::waitpid(child.pid, &child.status, WNOHANG);
    if (done == child.pid) {
      child.reaped = true;
      break;
    }
    if (done < 0 && errno != EINTR) {
      child.reaped = true;  // nothing left to wait for
      warn_unchecked(path, std::string("waitpid: ") + std::strerror(errno));
      return;
    }
    if (Clock::now() >= deadline) {
      timed_out = true;
      break;
    }
    if (progress) progress("open: checking the HDF5 structure", 0.0);
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }

  const std::string& element = report.last_element;
  const int status = child.status;
  if (timed_out || (WIFSIGNALED(status) && WTERMSIG(status) == SIGXCPU))
    throw Error(path, element,
                "reading this element did not finish within " + seconds_text(timeout) +
                    "; the file's HDF5 structure is corrupt (ORRERY_HDF5_GUARD_TIMEOUT sets "
                    "the limit in seconds)");
  if (WIFSIGNALED(status)) {
    const int sig = WTERMSIG(status);
    if (sig == SIGINT || sig == SIGTERM || sig == SIGHUP || sig == SIGQUIT) throw Cancelled();
    if (sig == SIGKILL)
      throw Error(path, element,
                  "the HDF5 structure check was killed (SIGKILL) reading this element, e.g. by "
                  "the kernel for want of memory");
    throw Error(path, element,
                "the HDF5 library crashed reading this element (" + signal_name(sig) +
                    "): the file's HDF5 structure is corrupt");
  }
  const int code = WIFEXITED(status) ? WEXITSTATUS(status) : -1;
  if (code == 0) {
    if (version && version == version_of(path)) {  // unchanged while it was checked
      std::lock_guard lock(guard_mutex);
      passed.insert(*version);
    }
    return;
  }
  if (code == kExitError && report.has_error)
    throw Error(path, report.error_element, report.error_message);
  if (code == kExitMemory)
    throw Error(path, element,
                "reading this element needs more than " + std::to_string(memory >> 30) +
                    " GiB of memory: a size in the file's HDF5 structure is corrupt (or, for a "
                    "valid but enormous file, ORRERY_HDF5_GUARD=0 skips the check)");
  if (code == 127) {
    warn_unchecked(path, "cannot run " + exe);
    return;
  }
  throw Error(path, element, "checking the file failed (exit status " + std::to_string(code) + ")");
}

}  // namespace orrery::io
