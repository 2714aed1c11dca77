// Reading untrusted HDF5 files without letting libhdf5 take the process down. libhdf5 (1.10)
// trusts a file's internal structures: fuzzing found corrupt global heaps, object headers and
// B-trees that make it crash (SEGV), loop forever or allocate gigabytes inside the library,
// before Orrery sees a value to check. So, once enabled, opening an h5ad or 10x .h5 file first
// runs a child process (this same executable) that reads the file's whole structure: every
// group and attribute, every string array, lookups across every 1-D array's chunk index,
// small arrays whole and the first and last rows of large ones. A crash, a hang or a runaway
// allocation then happens in the child, under a memory limit and a deadline, and the parent gets an
// orrery::Error naming the file and the element that was being read. The data of large arrays are
// only sampled (their chunk indexes are visited leaf by leaf), so a chunk whose compressed bytes
// are damaged is found when it is read, as a decoding error (`orrery check` streams all of X).
#pragma once

#include <cstddef>
#include <functional>
#include <optional>
#include <string>
#include <string_view>

namespace orrery::io {

// The flag the child is started with: `executable --orrery-check-hdf5 PATH`.
inline constexpr const char* kHdf5CheckFlag = "--orrery-check-hdf5";

struct Hdf5GuardLimits {
  // Seconds the child may take; 0 means 120 s plus 60 s per GiB of file.
  double timeout_s = 0;
  // Address-space limit for the child (RLIMIT_AS); 0 means the larger of 8 GiB and half the
  // physical memory.
  std::size_t memory_bytes = 0;
};

// Turns the check on for this process: `executable` must answer kHdf5CheckFlag by calling
// hdf5_check_main (the orrery executable does). Off until called, so libraries, tests and
// fuzzers read in-process. ORRERY_HDF5_GUARD=0 in the environment turns it off again;
// ORRERY_HDF5_GUARD_TIMEOUT (seconds) overrides the deadline.
void enable_hdf5_guard(const std::string& executable, Hdf5GuardLimits limits = {});
bool hdf5_guard_enabled();

// Runs the child's check of `path` and returns when it passed; throws orrery::Error naming the
// file and element otherwise. Returns at once when the guard is off, or when this file passed
// before and is unchanged (same device, inode, size and modification time). If the child cannot be
// started at all the file is read in-process as before, with a warning on stderr. `progress`
// (when given) is called a few times a second while the child works; a Cancelled it throws
// (or the child dying of SIGINT/SIGTERM) stops the check, and the child is killed.
void guard_hdf5_file(const std::string& path,
                     const std::function<void(std::string_view, double)>& progress = {});

// The child's side, for main(): `argv` is {executable, kHdf5CheckFlag, PATH, MEMORY_BYTES,
// CPU_SECONDS}. The child dies with its parent (PR_SET_PDEATHSIG).
// Reads the structure of PATH, naming each element on stdout before reading it, and returns the
// process exit status (0 when the file is readable, 3 after an orrery::Error it printed).
int hdf5_check_main(int argc, char** argv);

// For an executable's main(): when started as the child, runs hdf5_check_main and returns its
// exit status; otherwise enables the guard with this executable (/proc/self/exe), resets
// SIGCHLD to its default (an inherited SIG_IGN would reap the child before it can be waited
// for) and returns nothing.
std::optional<int> hdf5_guard_main(int argc, char** argv);

}  // namespace orrery::io
