// `loractl submit FILE`: validate locally, upload local inputs, submit,
// print the runs with their parameter counts; --dry-run, --wait,
// --retry-failed.
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "loractl/commands.h"
#include "loractl/display.h"
#include "loractl/submission.h"

namespace lora::loractl {
namespace {

std::string FormatBytes(int64_t bytes) {
  if (bytes < 1024) return absl::StrCat(bytes, " B");
  if (bytes < (int64_t{1} << 20)) {
    return absl::StrFormat("%.1f KiB", bytes / 1024.0);
  }
  if (bytes < (int64_t{1} << 30)) {
    return absl::StrFormat("%.1f MiB", bytes / 1048576.0);
  }
  return absl::StrFormat("%.2f GiB", bytes / 1073741824.0);
}

// A sweep that is refused, locally or by lorad, is a validation error.
absl::Status Invalid(absl::Status status) {
  if (absl::IsInvalidArgument(status) || absl::IsResourceExhausted(status)) {
    return WithExitCode(std::move(status), kExitUsage);
  }
  return status;
}

std::string RunsTable(const v1::SubmitSweepResponse& response) {
  TextTable table;
  table.header = {"run",  "parameters",  "model", "total params", "trainable",
                  "lora", "trainable %", "state", "run id"};
  table.align = "lllrrrrll";
  for (const v1::Run& run : response.runs()) {
    const v1::ParameterCounts& counts = run.parameter_counts();
    const double percent =
        counts.total() > 0 ? 100.0 * counts.trainable() / counts.total() : 0.0;
    table.rows.push_back(
        {absl::StrCat("#", run.index()), FormatParameters(run.parameters()),
         run.config().model(), FormatCount(counts.total()),
         FormatCount(counts.trainable()), FormatCount(counts.lora()),
         absl::StrFormat("%.3f%%", percent), RunStateName(run.state()),
         run.run_id()});
  }
  return table.Render();
}

absl::StatusOr<int> Submit(CommandContext& context) {
  const std::string& path = context.args().positional[0];
  const bool dry_run = context.args().Has("dry-run");
  absl::StatusOr<PreparedSweep> prepared = PrepareSweep(path);
  if (!prepared.ok()) return Invalid(prepared.status());

  v1::SubmitSweepResponse response;
  nlohmann::json uploads = nlohmann::json::array();
  if (dry_run) {
    response = DryRunResponse(prepared->expanded);
  } else {
    absl::StatusOr<LoradClient*> client = context.Client();
    if (!client.ok()) return client.status();
    absl::StatusOr<std::string> text =
        UploadInputs(*client, *prepared, [&](const UploadedInput& uploaded) {
          const UploadedFolder& upload = uploaded.upload;
          context.err() << uploaded.input.key << " " << uploaded.input.value
                        << ": "
                        << (upload.already_on_server ? "already on lorad as "
                                                     : "uploaded as ")
                        << upload.artifact_id << " (" << upload.files
                        << (upload.files == 1 ? " file, " : " files, ")
                        << FormatBytes(upload.size_bytes) << ")\n";
          uploads.push_back({{"key", uploaded.input.key},
                             {"path", uploaded.input.path},
                             {"artifact_id", upload.artifact_id},
                             {"already_on_server", upload.already_on_server},
                             {"files", upload.files},
                             {"size_bytes", upload.size_bytes}});
        });
    if (!text.ok()) return text.status();
    v1::SubmitSweepRequest request;
    request.set_spec_yaml(*text);
    request.set_source_name(path);
    request.set_retry_failed(context.args().Has("retry-failed"));
    absl::StatusOr<v1::SubmitSweepResponse> submitted =
        (*client)->SubmitSweep(request);
    if (!submitted.ok()) return Invalid(submitted.status());
    response = *std::move(submitted);
  }

  const v1::Sweep& sweep = response.sweep();
  if (context.output() != OutputFormat::kTable) {
    nlohmann::json json = ProtoToJson(response);
    json["dry_run"] = dry_run;
    json["uploaded_inputs"] = uploads;
    if (context.args().Has("wait") && !dry_run &&
        context.output() == OutputFormat::kJson) {
      // Events follow as JSON lines: keep every line one JSON value.
      context.out() << json.dump() << "\n";
    } else {
      context.out() << StructuredText(json, context.output());
    }
  } else {
    std::string what;
    if (dry_run) {
      what = "is valid (dry run: nothing was sent to lorad)";
    } else if (response.already_existed()) {
      what = response.requeued_runs() > 0
                 ? absl::StrCat("already existed; ", response.requeued_runs(),
                                " failed or cancelled runs requeued")
                 : "already existed (nothing new to train)";
    } else {
      what = "submitted";
    }
    context.out() << "sweep " << sweep.sweep_id() << " " << what << "\n"
                  << "  name " << sweep.name() << ", " << response.runs_size()
                  << " runs, state " << SweepStateName(sweep.state())
                  << ", metric " << sweep.metric().name() << " ("
                  << (sweep.metric().goal() == v1::METRIC_GOAL_MINIMIZE
                          ? "minimize"
                          : "maximize")
                  << ")\n\n"
                  << RunsTable(response);
  }
  context.out().flush();
  if (context.args().Has("wait") && !dry_run) {
    if (context.output() == OutputFormat::kTable) context.out() << "\n";
    return WatchUntilDone(context, sweep.sweep_id());
  }
  return kExitOk;
}

}  // namespace

Command SubmitCommand() {
  Command command;
  command.spec.name = "submit";
  command.spec.args = "FILE";
  command.spec.min_args = command.spec.max_args = 1;
  command.spec.summary =
      "Validate a sweep file, upload its local inputs and submit it";
  command.spec.description =
      "Validates FILE with the coordinator's own rules before anything is "
      "sent\n"
      "(errors read FILE:LINE: KEY: PROBLEM, exit status 2), expands it into "
      "runs and\n"
      "counts each run's total, trainable and LoRA parameters. Local dataset "
      "and\n"
      "checkpoint folders it names are uploaded once as content-addressed "
      "artifacts\n"
      "(skipped when lorad already holds them) and the sweep is submitted "
      "with their\n"
      "ids in place of the paths. Submitting the same sweep again returns the "
      "existing\n"
      "one and trains nothing twice.\n";
  command.spec.examples = {
      "loractl submit sweep.yaml --dry-run",
      "loractl submit sweep.yaml --wait",
      "loractl submit sweep.yaml --retry-failed --output json",
  };
  command.spec.flags = {
      {"dry-run", 0, false, "",
       "validate, expand and count locally; contact no server"},
      {"wait", 0, false, "", "watch the sweep until it ends (as `watch`)"},
      {"retry-failed", 0, false, "",
       "if the sweep exists, requeue its failed and cancelled runs"},
  };
  command.run = Submit;
  return command;
}

}  // namespace lora::loractl
