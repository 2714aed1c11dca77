// orrery-cli: the command-line twin without Qt or Vulkan (run, synth, info, check,
// --headless), for servers and the GPU benchmark machine. The orrery executable answers the
// same subcommands; this one links only compute and io.
#include <cstdio>

#include "cli.hpp"
#include "io/hdf5_guard.hpp"

int main(int argc, char** argv) {
  if (auto status = orrery::io::hdf5_guard_main(argc, argv)) return *status;
  if (!orrery::app::is_cli_invocation(argc, argv)) {
    std::fprintf(stderr,
                 "orrery-cli: expected a subcommand (run, synth, info, check, --headless); "
                 "see orrery-cli --help\n");
    return 2;
  }
  return orrery::app::run_cli(argc, argv);
}
