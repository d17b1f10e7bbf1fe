// loractl's commands and the code that runs one: parse the command line
// (cli_args.h), print help, resolve where lorad is (client_config.h),
// connect lazily, run the command, print its error and choose the exit
// status:
//
//   0  success;
//   1  an error from lorad or the network (or a watched sweep that ended
//      FAILED or CANCELLED);
//   2  a usage error or a validation error (bad flags, a bad sweep file,
//      INVALID_ARGUMENT from lorad).
//
// Each command is data plus a handler (Command), so adding one — such as a
// later `demo` that starts lorad and workers itself — means appending an
// entry to the list main() passes to RunLoractl; its help and flag parsing
// come with it. Handlers write results to `out` (stdout) and progress and
// diagnostics to `err` (stderr), so `--output json` stays parseable.
//
// Thread-compatible: RunLoractl runs one command on the calling thread.
#ifndef LORA_SWEEP_LORACTL_COMMANDS_H_
#define LORA_SWEEP_LORACTL_COMMANDS_H_

#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "loractl/cli_args.h"
#include "loractl/client.h"
#include "loractl/client_config.h"
#include "loractl/output.h"

namespace lora::loractl {

inline constexpr int kExitOk = 0;
inline constexpr int kExitError = 1;
inline constexpr int kExitUsage = 2;

// `status` carrying the exit code loractl ends with (see ExitCodeOf).
absl::Status WithExitCode(absl::Status status, int exit_code);
// The exit code for an error: the one set by WithExitCode, else 2 for
// InvalidArgument, else 1.
int ExitCodeOf(const absl::Status& status);

// The process's surroundings, injected so tests run commands in-process.
struct CliIo {
  std::ostream* out = nullptr;
  std::ostream* err = nullptr;
  EnvLookup env;
  // stdout is a terminal: `watch` redraws lines in place.
  bool out_is_terminal = false;
  // Columns of that terminal (0 = unknown); longer lines are cut.
  int terminal_width = 0;
  std::function<absl::Time()> now = [] { return absl::Now(); };
};

// What a handler gets.
class CommandContext {
 public:
  CommandContext(const ParsedArgs& args, CliIo& io, OutputFormat output)
      : args_(args), io_(io), output_(output) {}

  const ParsedArgs& args() const { return args_; }
  std::ostream& out() { return *io_.out; }
  std::ostream& err() { return *io_.err; }
  CliIo& io() { return io_; }
  OutputFormat output() const { return output_; }

  // The client, created on first use from --server, the environment and
  // the config file. Errors: a malformed config file (exit 2).
  absl::StatusOr<LoradClient*> Client();

 private:
  const ParsedArgs& args_;
  CliIo& io_;
  const OutputFormat output_;
  std::unique_ptr<LoradClient> client_;
};

// Returns the exit code for outcomes that are not errors (0, or 1 for a
// watched sweep that did not succeed); errors come back as a status.
using CommandHandler = std::function<absl::StatusOr<int>(CommandContext&)>;

struct Command {
  CommandSpec spec;
  CommandHandler run;
};

// submit, sweeps, runs, show, workers, watch, cancel, results, plot,
// artifacts get, artifacts list.
std::vector<Command> BuiltinCommands();

// Runs one command line (`args` without the program name) and returns the
// exit status. Help goes to `out` (exit 0); usage errors to `err` with a
// pointer to the help (exit 2).
int RunLoractl(const std::vector<std::string>& args,
               const std::vector<Command>& commands, CliIo& io);

// Follows a sweep until it ends, printing one line per run (redrawn in
// place on a terminal; appended as changes happen otherwise; JSON lines of
// events with --output json). Shared by `watch` and `submit --wait`.
// Returns 0 when the sweep SUCCEEDED, 1 when it ended otherwise.
absl::StatusOr<int> WatchUntilDone(CommandContext& context,
                                   const std::string& sweep_id);

// The built-in commands, one factory per file (loractl/*_command.cc).
Command SubmitCommand();
Command WatchCommand();
Command ResultsCommand();
Command PlotCommand();
std::vector<Command> QueryCommands();  // sweeps, runs, show, workers
Command CancelCommand();
std::vector<Command> ArtifactCommands();  // artifacts get, artifacts list

// `demo`: lorad, a worker and the rank-ablation sweep on this machine
// (loractl/demo_command.cc). Not in BuiltinCommands(): main() appends it.
Command DemoCommand();

}  // namespace lora::loractl

#endif  // LORA_SWEEP_LORACTL_COMMANDS_H_
