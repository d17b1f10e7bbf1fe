// `loractl cancel SWEEP|RUN`.
#include <string>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "loractl/commands.h"
#include "loractl/display.h"

namespace lora::loractl {
namespace {

absl::StatusOr<int> Cancel(CommandContext& context) {
  const std::string& id = context.args().positional[0];
  const bool is_sweep = absl::StartsWith(id, "sw-");
  if (!is_sweep && !absl::StartsWith(id, "run-")) {
    return absl::InvalidArgumentError(absl::StrCat(
        "\"", id, "\" is neither a sweep id (sw-...) nor a run id (run-...)"));
  }
  absl::StatusOr<LoradClient*> client = context.Client();
  if (!client.ok()) return client.status();
  if (is_sweep) {
    absl::StatusOr<v1::Sweep> sweep = (*client)->CancelSweep(id);
    if (!sweep.ok()) return sweep.status();
    if (context.output() != OutputFormat::kTable) {
      context.out() << StructuredText(ProtoToJson(*sweep), context.output());
    } else {
      context.out() << "sweep " << sweep->sweep_id() << " "
                    << SweepStateName(sweep->state())
                    << " (queued runs ended; running ones are told to stop)\n";
    }
    return kExitOk;
  }
  absl::StatusOr<v1::Run> run = (*client)->CancelRun(id);
  if (!run.ok()) return run.status();
  if (context.output() != OutputFormat::kTable) {
    context.out() << StructuredText(ProtoToJson(*run), context.output());
  } else {
    context.out() << "run " << run->run_id() << " "
                  << RunStateName(run->state()) << "\n";
  }
  return kExitOk;
}

}  // namespace

Command CancelCommand() {
  Command command;
  command.spec.name = "cancel";
  command.spec.args = "SWEEP|RUN";
  command.spec.min_args = command.spec.max_args = 1;
  command.spec.summary = "Cancel a sweep's unfinished runs, or one run";
  command.spec.description =
      "Queued runs end at once; running ones are told to stop at their "
      "worker's next\nprogress report or heartbeat. Cancelling a finished "
      "sweep changes nothing.\nResubmit with `submit --retry-failed` to run "
      "cancelled runs again.\n";
  command.spec.examples = {"loractl cancel sw-3f2a9c41d07b5e6a8c11",
                           "loractl cancel run-0c1d2e3f4a5b6c7d8e9f"};
  command.run = Cancel;
  return command;
}

}  // namespace lora::loractl
