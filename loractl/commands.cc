#include "loractl/commands.h"

#include <utility>

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"

namespace lora::loractl {
namespace {

constexpr char kExitCodePayload[] = "type.lora-sweep/loractl.exit_code";

}  // namespace

absl::Status WithExitCode(absl::Status status, int exit_code) {
  status.SetPayload(kExitCodePayload, absl::Cord(absl::StrCat(exit_code)));
  return status;
}

int ExitCodeOf(const absl::Status& status) {
  if (status.ok()) return kExitOk;
  if (auto payload = status.GetPayload(kExitCodePayload)) {
    int code = 0;
    if (absl::SimpleAtoi(std::string(*payload), &code)) return code;
  }
  return status.code() == absl::StatusCode::kInvalidArgument ? kExitUsage
                                                             : kExitError;
}

absl::StatusOr<LoradClient*> CommandContext::Client() {
  if (client_ != nullptr) return client_.get();
  absl::StatusOr<ClientSettings> settings =
      ResolveClientSettings(args_.Get("server"), args_.Get("config"), io_.env);
  if (!settings.ok()) return WithExitCode(settings.status(), kExitUsage);
  ClientOptions options;
  options.server = settings->server;
  options.token = settings->token;
  if (std::optional<std::string> timeout = args_.Get("request-timeout")) {
    absl::Duration parsed;
    if (!absl::ParseDuration(*timeout, &parsed) ||
        parsed <= absl::ZeroDuration()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--request-timeout: expected a duration such as 30s or 2m, got \"",
          *timeout, "\""));
    }
    options.call_timeout = parsed;
  }
  client_ = LoradClient::Create(options);
  return client_.get();
}

std::vector<Command> BuiltinCommands() {
  std::vector<Command> commands;
  commands.push_back(SubmitCommand());
  for (Command& command : QueryCommands()) {
    commands.push_back(std::move(command));
  }
  commands.push_back(WatchCommand());
  commands.push_back(CancelCommand());
  commands.push_back(ResultsCommand());
  commands.push_back(PlotCommand());
  for (Command& command : ArtifactCommands()) {
    commands.push_back(std::move(command));
  }
  return commands;
}

int RunLoractl(const std::vector<std::string>& args,
               const std::vector<Command>& commands, CliIo& io) {
  std::vector<CommandSpec> specs;
  for (const Command& command : commands) specs.push_back(command.spec);
  absl::StatusOr<ParsedArgs> parsed = ParseArgs(args, specs);
  if (!parsed.ok()) {
    *io.err << "error: " << parsed.status().message() << "\n";
    if (args.empty()) {
      *io.err << "\n" << ProgramHelp(specs);
    } else {
      // Point at the command's own help when one was named.
      std::string named;
      for (const std::string& arg : args) {
        for (const CommandSpec& spec : specs) {
          if (named.empty() &&
              (spec.name == arg || spec.name.rfind(arg + " ", 0) == 0)) {
            named = arg;
          }
        }
      }
      *io.err << "Run 'loractl " << (named.empty() ? "" : named + " ")
              << "--help' for usage.\n";
    }
    return kExitUsage;
  }
  if (parsed->help) {
    *io.out << (parsed->command.empty() ? ProgramHelp(specs)
                                        : CommandHelp(parsed->command, specs));
    return kExitOk;
  }
  absl::StatusOr<OutputFormat> output =
      ParseOutputFormat(parsed->GetOr("output", "table"));
  if (!output.ok()) {
    *io.err << "error: " << output.status().message() << "\n";
    return kExitUsage;
  }
  const Command* command = nullptr;
  for (const Command& candidate : commands) {
    if (candidate.spec.name == parsed->command) command = &candidate;
  }
  if (command == nullptr) {  // ParseArgs only names known commands
    *io.err << "error: unknown command \"" << parsed->command << "\"\n";
    return kExitUsage;
  }
  CommandContext context(*parsed, io, *output);
  absl::StatusOr<int> result = command->run(context);
  if (result.ok()) return *result;
  // Validation messages read "<file>:<line>: <key>: <problem>".
  *io.err << "error: " << result.status().message() << "\n";
  io.out->flush();
  return ExitCodeOf(result.status());
}

}  // namespace lora::loractl
