#include "loractl/cli_args.h"

#include <algorithm>
#include <cstdlib>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "base/yaml_fields.h"

namespace lora::loractl {
namespace {

bool LooksLikeNumber(const std::string& arg) {
  char* end = nullptr;
  std::strtod(arg.c_str(), &end);
  return end != nullptr && *end == '\0';
}

const FlagSpec* FindLong(const std::vector<FlagSpec>& flags,
                         const std::string& name) {
  for (const FlagSpec& flag : flags) {
    if (flag.name == name) return &flag;
  }
  return nullptr;
}

const FlagSpec* FindShort(const std::vector<FlagSpec>& flags, char name) {
  for (const FlagSpec& flag : flags) {
    if (flag.short_name != 0 && flag.short_name == name) return &flag;
  }
  return nullptr;
}

const CommandSpec* FindCommand(const std::vector<CommandSpec>& commands,
                               const std::string& name) {
  for (const CommandSpec& spec : commands) {
    if (spec.name == name) return &spec;
  }
  return nullptr;
}

// Subcommands of a group: "artifacts" -> {"get", "list"}.
std::vector<std::string> GroupMembers(const std::vector<CommandSpec>& commands,
                                      const std::string& group) {
  std::vector<std::string> members;
  for (const CommandSpec& spec : commands) {
    if (absl::StartsWith(spec.name, group + " ")) {
      members.push_back(spec.name.substr(group.size() + 1));
    }
  }
  return members;
}

// First words of every command, for suggestions.
std::vector<std::string> TopLevelNames(
    const std::vector<CommandSpec>& commands) {
  std::vector<std::string> names;
  std::set<std::string> seen;
  for (const CommandSpec& spec : commands) {
    const std::string first = spec.name.substr(0, spec.name.find(' '));
    if (seen.insert(first).second) names.push_back(first);
  }
  return names;
}

std::string FlagUsage(const FlagSpec& flag) {
  std::string usage = absl::StrCat("--", flag.name);
  if (flag.short_name != 0) {
    usage = absl::StrCat("-", std::string(1, flag.short_name), ", ", usage);
  }
  if (flag.takes_value) {
    absl::StrAppend(&usage, " ",
                    flag.choices.empty() ? flag.value_name
                                         : absl::StrJoin(flag.choices, "|"));
  }
  return usage;
}

std::string FlagList(const std::vector<FlagSpec>& flags) {
  size_t width = 0;
  for (const FlagSpec& flag : flags) {
    width = std::max(width, FlagUsage(flag).size());
  }
  std::string out;
  for (const FlagSpec& flag : flags) {
    const std::string usage = FlagUsage(flag);
    absl::StrAppend(&out, "  ", usage,
                    std::string(width - usage.size() + 3, ' '), flag.help,
                    "\n");
  }
  return out;
}

absl::Status UsageError(const std::string& message) {
  return absl::InvalidArgumentError(message);
}

}  // namespace

bool ParsedArgs::Has(const std::string& name) const {
  return flags.count(name) > 0;
}

std::optional<std::string> ParsedArgs::Get(const std::string& name) const {
  auto it = flags.find(name);
  if (it == flags.end() || it->second.empty()) return std::nullopt;
  return it->second.back();
}

std::string ParsedArgs::GetOr(const std::string& name,
                              const std::string& fallback) const {
  return Get(name).value_or(fallback);
}

std::vector<std::string> ParsedArgs::GetAll(const std::string& name) const {
  auto it = flags.find(name);
  return it == flags.end() ? std::vector<std::string>{} : it->second;
}

const std::vector<FlagSpec>& GlobalFlags() {
  static const std::vector<FlagSpec>* const kFlags = new std::vector<FlagSpec>{
      {"server", 0, true, "HOST:PORT",
       "lorad's gRPC address (see Settings in 'loractl --help')"},
      {"output",
       'o',
       true,
       "FORMAT",
       "output format (default table)",
       {"table", "json", "yaml"}},
      {"config", 0, true, "FILE",
       "config file (default ~/.config/loractl/config.yaml)"},
      {"request-timeout", 0, true, "DURATION",
       "deadline of each call, e.g. 30s, 2m (default 30s)"},
      {"help", 'h', false, "", "show help for the command"},
  };
  return *kFlags;
}

absl::StatusOr<ParsedArgs> ParseArgs(const std::vector<std::string>& args,
                                     const std::vector<CommandSpec>& commands) {
  ParsedArgs parsed;
  const CommandSpec* spec = nullptr;
  std::string group;  // a command group named so far ("artifacts")
  bool flags_ended = false;
  bool help_word = false;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (!flags_ended && arg == "--") {
      flags_ended = true;
      continue;
    }
    if (!flags_ended && arg.size() > 1 && arg[0] == '-' &&
        !LooksLikeNumber(arg)) {
      const FlagSpec* flag = nullptr;
      std::string shown;
      std::string value;
      bool has_value = false;
      if (arg[1] == '-') {
        std::string body = arg.substr(2);
        const size_t equals = body.find('=');
        if (equals != std::string::npos) {
          value = body.substr(equals + 1);
          has_value = true;
          body = body.substr(0, equals);
        }
        shown = "--" + body;
        flag = FindLong(GlobalFlags(), body);
        if (flag == nullptr && spec != nullptr)
          flag = FindLong(spec->flags, body);
      } else {
        shown = arg.substr(0, 2);
        // A command's own short flag wins over a global one (`plot -o
        // FILE` versus `runs -o json`).
        if (spec != nullptr) flag = FindShort(spec->flags, arg[1]);
        if (flag == nullptr) flag = FindShort(GlobalFlags(), arg[1]);
        if (arg.size() > 2) {
          value = arg.substr(arg[2] == '=' ? 3 : 2);
          has_value = true;
        }
      }
      if (flag == nullptr) {
        std::string message = absl::StrCat("unknown flag ", shown);
        if (spec != nullptr) {
          absl::StrAppend(&message, " for \"", spec->name, "\"");
          std::vector<std::string> known;
          for (const FlagSpec& f : spec->flags) known.push_back(f.name);
          for (const FlagSpec& f : GlobalFlags()) known.push_back(f.name);
          const std::string close =
              ClosestName(shown.substr(shown.find_first_not_of('-')), known);
          if (!close.empty())
            absl::StrAppend(&message, "; did you mean --", close, "?");
        } else if (!group.empty() || parsed.command.empty()) {
          absl::StrAppend(&message,
                          " (a command's flags go after the command)");
        }
        return UsageError(message);
      }
      if (flag->takes_value) {
        if (!has_value) {
          if (i + 1 >= args.size()) {
            return UsageError(absl::StrCat("--", flag->name, " needs a value (",
                                           flag->value_name, ")"));
          }
          value = args[++i];
        }
        if (!flag->choices.empty() &&
            std::find(flag->choices.begin(), flag->choices.end(), value) ==
                flag->choices.end()) {
          return UsageError(absl::StrCat("--", flag->name, ": expected one of ",
                                         absl::StrJoin(flag->choices, ", "),
                                         "; got \"", value, "\""));
        }
      } else if (has_value) {
        return UsageError(absl::StrCat("--", flag->name, " takes no value"));
      }
      if (flag->name == "help") {
        parsed.help = true;
        continue;
      }
      std::vector<std::string>& values = parsed.flags[flag->name];
      if (!flag->repeated) values.clear();
      values.push_back(value);
      continue;
    }
    if (spec != nullptr || flags_ended) {
      if (spec == nullptr) {
        return UsageError(
            absl::StrCat("unexpected argument \"", arg, "\" before a command"));
      }
      parsed.positional.push_back(arg);
      continue;
    }
    // A command word.
    if (parsed.command.empty() && !help_word && arg == "help") {
      help_word = true;
      parsed.help = true;
      continue;
    }
    const std::string candidate = group.empty() ? arg : group + " " + arg;
    if ((spec = FindCommand(commands, candidate)) != nullptr) {
      parsed.command = candidate;
      continue;
    }
    if (group.empty() && !GroupMembers(commands, arg).empty()) {
      group = arg;
      parsed.command = arg;
      continue;
    }
    if (!group.empty()) {
      return UsageError(absl::StrCat(
          "unknown command \"", candidate, "\"; \"", group,
          "\" has: ", absl::StrJoin(GroupMembers(commands, group), ", ")));
    }
    std::string message = absl::StrCat("unknown command \"", arg, "\"");
    const std::string close = ClosestName(arg, TopLevelNames(commands));
    if (!close.empty())
      absl::StrAppend(&message, "; did you mean ", close, "?");
    return UsageError(message);
  }
  if (parsed.help) return parsed;
  if (spec == nullptr) {
    if (!group.empty()) {
      return UsageError(
          absl::StrCat("\"", group, "\" needs a subcommand: ",
                       absl::StrJoin(GroupMembers(commands, group), ", ")));
    }
    return UsageError("no command given");
  }
  const int count = static_cast<int>(parsed.positional.size());
  if (count < spec->min_args) {
    return UsageError(absl::StrCat("\"", spec->name, "\" needs ", spec->args,
                                   count > 0 ? " (too few arguments)" : ""));
  }
  if (count > spec->max_args) {
    return UsageError(absl::StrCat(
        "\"", spec->name, "\" takes ",
        spec->max_args == 0 ? std::string("no arguments") : spec->args,
        "; unexpected \"", parsed.positional[spec->max_args], "\""));
  }
  return parsed;
}

std::string ProgramHelp(const std::vector<CommandSpec>& commands) {
  std::string out =
      "loractl: submit, follow and read LoRA sweeps on lorad, the lora-sweep "
      "coordinator.\n\n"
      "Usage:\n"
      "  loractl [--server HOST:PORT] [--output table|json|yaml] COMMAND "
      "[ARGS] [FLAGS]\n\n"
      "Commands:\n";
  size_t width = 0;
  for (const CommandSpec& spec : commands) {
    width = std::max(width, spec.name.size() + 1 + spec.args.size());
  }
  for (const CommandSpec& spec : commands) {
    const std::string usage =
        spec.args.empty() ? spec.name : absl::StrCat(spec.name, " ", spec.args);
    absl::StrAppend(&out, "  ", usage,
                    std::string(width - usage.size() + 3, ' '), spec.summary,
                    "\n");
  }
  absl::StrAppend(
      &out, "\nGlobal flags (accepted by every command):\n",
      FlagList(GlobalFlags()),
      "\nSettings:\n"
      "  server  --server, then $LORACTL_SERVER, then `server:` in the config "
      "file, then 127.0.0.1:7070\n"
      "  token   $LORACTL_TOKEN, then `token:` in the config file (none: no "
      "authorization)\n"
      "  config  --config, then $LORACTL_CONFIG, then "
      "$XDG_CONFIG_HOME/loractl/config.yaml (~/.config/loractl/config.yaml);\n"
      "          YAML with the keys `server` and `token`\n"
      "\nExit status: 0 success; 1 server error, or a watched sweep that did "
      "not succeed;\n"
      "2 usage or validation error.\n"
      "\nRun 'loractl COMMAND --help' for a command's flags and examples.\n");
  return out;
}

std::string CommandHelp(const std::string& name,
                        const std::vector<CommandSpec>& commands) {
  const CommandSpec* spec = FindCommand(commands, name);
  if (spec == nullptr) {
    std::string out =
        absl::StrCat("Usage: loractl ", name, " COMMAND\n\n", "Commands:\n");
    std::vector<std::pair<std::string, std::string>> members;
    size_t width = 0;
    for (const CommandSpec& member : commands) {
      if (absl::StartsWith(member.name, name + " ")) {
        const std::string usage =
            member.args.empty() ? member.name
                                : absl::StrCat(member.name, " ", member.args);
        width = std::max(width, usage.size());
        members.emplace_back(usage, member.summary);
      }
    }
    for (const auto& [usage, summary] : members) {
      absl::StrAppend(&out, "  ", usage,
                      std::string(width - usage.size() + 3, ' '), summary,
                      "\n");
    }
    absl::StrAppend(&out, "\nRun 'loractl ", name,
                    " COMMAND --help' for a command's flags and examples.\n");
    return out;
  }
  std::string out = absl::StrCat("Usage: loractl ", spec->name);
  if (!spec->args.empty()) absl::StrAppend(&out, " ", spec->args);
  if (!spec->flags.empty()) absl::StrAppend(&out, " [flags]");
  absl::StrAppend(&out, "\n\n", spec->summary, "\n");
  if (!spec->description.empty()) {
    absl::StrAppend(&out, "\n", spec->description);
    if (spec->description.back() != '\n') out += "\n";
  }
  if (!spec->flags.empty()) {
    absl::StrAppend(&out, "\nFlags:\n", FlagList(spec->flags));
  }
  absl::StrAppend(&out, "\nGlobal flags:\n", FlagList(GlobalFlags()));
  if (!spec->examples.empty()) {
    absl::StrAppend(&out, "\nExamples:\n");
    for (const std::string& example : spec->examples) {
      absl::StrAppend(&out, "  ", example, "\n");
    }
  }
  return out;
}

}  // namespace lora::loractl
