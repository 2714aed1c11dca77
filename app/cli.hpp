// The command-line twin: `orrery run|synth|info`. Returns the process exit code (2 on errors).
#pragma once

namespace orrery::app {

// True when argv names a CLI subcommand (or --headless / --help); the GUI starts otherwise.
bool is_cli_invocation(int argc, char** argv);
int run_cli(int argc, char** argv);

}  // namespace orrery::app
