// loractl's command-line grammar, kubectl and gh style:
//
//   loractl [GLOBAL FLAGS] COMMAND [SUBCOMMAND] [ARGS] [FLAGS]
//
// Flags may come before or after arguments, as `--name value`,
// `--name=value`, `-x value` or `-xvalue`; switches take no value. `--`
// ends the flags. Global flags (--server, --output, --config,
// --request-timeout, --help) are accepted anywhere; a command's own flags
// only after the command. `help [COMMAND]`, `--help` and `-h` ask for help.
//
// Commands are described by data (CommandSpec), so a new command (e.g. a
// later `demo`) is one more entry in the list handed to ParseArgs, with its
// help text generated from the same entry. Pure functions; thread-safe.
#ifndef LORA_SWEEP_LORACTL_CLI_ARGS_H_
#define LORA_SWEEP_LORACTL_CLI_ARGS_H_

#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace lora::loractl {

struct FlagSpec {
  std::string name;     // used as --name
  char short_name = 0;  // used as -x; 0 for none
  bool takes_value = true;
  std::string value_name;  // shown in help: --state STATE
  std::string help;
  // When non-empty, the only values accepted.
  std::vector<std::string> choices;
  // May be given several times (values accumulate); otherwise the last one
  // counts.
  bool repeated = false;
};

struct CommandSpec {
  // One or two words: "runs", "artifacts get".
  std::string name;
  // Positional arguments as shown in help: "SWEEP", "FILE".
  std::string args;
  std::string summary;      // one line, for the command list
  std::string description;  // paragraphs for the command's own help
  std::vector<std::string> examples;
  std::vector<FlagSpec> flags;
  int min_args = 0;
  int max_args = 0;
};

struct ParsedArgs {
  // The command's name ("" when none was given).
  std::string command;
  std::vector<std::string> positional;
  // Flag name (long form) -> its values in order ("" for a switch).
  std::map<std::string, std::vector<std::string>> flags;
  // --help, -h or `help`: print the help of `command` (or of the program,
  // or of a command group such as "artifacts").
  bool help = false;

  bool Has(const std::string& name) const;
  // The last value given, if any.
  std::optional<std::string> Get(const std::string& name) const;
  std::string GetOr(const std::string& name, const std::string& fallback) const;
  std::vector<std::string> GetAll(const std::string& name) const;
};

// The flags every command accepts.
const std::vector<FlagSpec>& GlobalFlags();

// Parses `args` (without the program name). Errors are InvalidArgument with
// a message for the user: an unknown command (with the closest name), an
// unknown flag, a missing or unexpected value, a value not among `choices`,
// too few or too many arguments. Argument counts are not checked when help
// is asked for.
absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<CommandSpec>& commands);

// The program's help: usage, the commands with their summaries, the global
// flags, and where settings come from.
std::string ProgramHelp(const std::vector<CommandSpec>& commands);

// Help for one command, or for a group ("artifacts": its subcommands).
std::string CommandHelp(const std::string& name,
                        const std::vector<CommandSpec>& commands);

}  // namespace lora::loractl

#endif  // LORA_SWEEP_LORACTL_CLI_ARGS_H_
