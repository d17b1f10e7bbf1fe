// Read-only commands: `sweeps`, `runs SWEEP`, `show RUN|SWEEP`, `workers`.
#include <map>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/time.h"
#include "loractl/commands.h"
#include "loractl/display.h"

namespace lora::loractl {
namespace {

std::string Goal(const v1::MetricSpec& metric) {
  return metric.goal() == v1::METRIC_GOAL_MINIMIZE ? "minimize" : "maximize";
}

int Done(const v1::Sweep& sweep) {
  int done = 0;
  for (const char* state : {"SUCCEEDED", "FAILED", "CANCELLED"}) {
    auto it = sweep.run_counts().find(state);
    if (it != sweep.run_counts().end()) done += it->second;
  }
  return done;
}

template <typename T>
nlohmann::json JsonList(const std::vector<T>& items, const char* key) {
  nlohmann::json list = nlohmann::json::array();
  for (const T& item : items) list.push_back(ProtoToJson(item));
  return nlohmann::json{{key, list}};
}

absl::StatusOr<int> Sweeps(CommandContext& context) {
  absl::StatusOr<LoradClient*> client = context.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<std::vector<v1::Sweep>> sweeps = (*client)->ListSweeps();
  if (!sweeps.ok()) return sweeps.status();
  if (context.output() != OutputFormat::kTable) {
    context.out() << StructuredText(JsonList(*sweeps, "sweeps"),
                                    context.output());
    return kExitOk;
  }
  if (sweeps->empty()) {
    context.err() << "No sweeps. Submit one with 'loractl submit FILE'.\n";
    return kExitOk;
  }
  TextTable table;
  table.header = {"sweep id", "name",   "state", "done",
                  "running",  "metric", "age"};
  table.align = "lllrrll";
  const absl::Time now = context.io().now();
  for (const v1::Sweep& sweep : *sweeps) {
    auto running = sweep.run_counts().find("RUNNING");
    table.rows.push_back(
        {sweep.sweep_id(), sweep.name(), SweepStateName(sweep.state()),
         absl::StrCat(Done(sweep), "/", sweep.total_runs()),
         absl::StrCat(running == sweep.run_counts().end() ? 0
                                                          : running->second),
         absl::StrCat(sweep.metric().name(), " (", Goal(sweep.metric()), ")"),
         FormatAge(sweep.create_time(), now)});
  }
  context.out() << table.Render();
  return kExitOk;
}

absl::StatusOr<int> Runs(CommandContext& context) {
  std::vector<v1::RunState> states;
  for (const std::string& value : context.args().GetAll("state")) {
    for (absl::string_view name : absl::StrSplit(value, ',')) {
      absl::StatusOr<v1::RunState> state =
          ParseRunState(std::string(absl::StripAsciiWhitespace(name)));
      if (!state.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--state: ", state.status().message()));
      }
      states.push_back(*state);
    }
  }
  absl::StatusOr<LoradClient*> client = context.Client();
  if (!client.ok()) return client.status();
  const std::string& sweep_id = context.args().positional[0];
  absl::StatusOr<v1::Sweep> sweep = (*client)->GetSweep(sweep_id);
  if (!sweep.ok()) return sweep.status();
  absl::StatusOr<std::vector<v1::Run>> runs =
      (*client)->ListRuns(sweep_id, states);
  if (!runs.ok()) return runs.status();
  if (context.output() != OutputFormat::kTable) {
    context.out() << StructuredText(JsonList(*runs, "runs"), context.output());
    return kExitOk;
  }
  const std::string& metric = sweep->metric().name();
  TextTable table;
  table.header = {"run",
                  "parameters",
                  "state",
                  "attempt",
                  "step",
                  "loss",
                  absl::StrCat("best ", metric),
                  "worker",
                  "run id"};
  table.align = "llllrrrll";
  for (const v1::Run& run : *runs) {
    const auto& latest = run.latest_metrics();
    std::string loss = "-";
    if (latest.count("loss")) {
      loss = absl::StrFormat("%.4f", latest.at("loss"));
    } else if (latest.count("train_loss")) {
      loss = absl::StrFormat("%.4f", latest.at("train_loss"));
    }
    table.rows.push_back(
        {absl::StrCat("#", run.index()), FormatParameters(run.parameters()),
         RunStateName(run.state()),
         absl::StrCat(run.attempt(), "/", run.max_attempts()),
         absl::StrCat(run.step()), loss,
         run.best_epoch() > 0 ? FormatMetric(metric, run.best_metric()) : "-",
         run.worker_id().empty() ? "-" : run.worker_id(), run.run_id()});
  }
  context.out() << table.Render();
  return kExitOk;
}

// "key: value" lines with the keys aligned.
std::string Fields(
    const std::vector<std::pair<std::string, std::string>>& fields) {
  size_t width = 0;
  for (const auto& [key, value] : fields) width = std::max(width, key.size());
  std::string out;
  for (const auto& [key, value] : fields) {
    absl::StrAppend(&out, key, ":", std::string(width - key.size() + 2, ' '),
                    value, "\n");
  }
  return out;
}

std::string Time(const google::protobuf::Timestamp& time) {
  if (time.seconds() == 0 && time.nanos() == 0) return "-";
  return absl::FormatTime("%Y-%m-%d %H:%M:%S %Z", ToAbslTime(time),
                          absl::LocalTimeZone());
}

std::string ShowRun(const v1::Run& run, const std::string& metric) {
  const v1::RunConfig& config = run.config();
  const v1::ParameterCounts& counts = run.parameter_counts();
  const double percent =
      counts.total() > 0 ? 100.0 * counts.trainable() / counts.total() : 0.0;
  std::vector<std::pair<std::string, std::string>> fields = {
      {"run", run.run_id()},
      {"sweep", run.sweep_id()},
      {"index", absl::StrCat(run.index())},
      {"parameters", FormatParameters(run.parameters())},
      {"state", RunStateName(run.state())},
      {"attempt", absl::StrCat(run.attempt(), " of ", run.max_attempts())},
      {"worker", run.worker_id().empty() ? "-" : run.worker_id()},
      {"model", config.model_artifact_id().empty()
                    ? config.model()
                    : absl::StrCat(config.model(), " (",
                                   config.model_artifact_id(), ")")},
      {"task", config.dataset_artifact_id().empty()
                   ? config.task()
                   : absl::StrCat(config.task(), " (data ",
                                  config.dataset_artifact_id(), ")")},
      {"head", config.head()},
      {"lora", absl::StrCat("rank ", config.lora().rank(), ", alpha ",
                            FormatExact(config.lora().alpha()), ", dropout ",
                            FormatExact(config.lora().dropout()), ", targets [",
                            absl::StrJoin(config.lora().target_modules(), ", "),
                            "]", config.lora().use_rslora() ? ", rsLoRA" : "")},
      {"training",
       absl::StrCat(config.epochs(), " epochs, batch ", config.batch_size(),
                    " x ", config.grad_accum_steps(), ", lr ",
                    FormatExact(config.lr()), ", warmup ",
                    FormatExact(config.warmup_ratio()), ", max_seq_len ",
                    config.max_seq_len(), ", amp ",
                    absl::AsciiStrToLower(absl::StripPrefix(
                        v1::AmpMode_Name(config.amp()), "AMP_MODE_")),
                    ", seed ", config.seed())},
      {"parameters (total)", FormatCount(counts.total())},
      {"parameters (trainable)",
       absl::StrFormat("%s (%.3f%%)", FormatCount(counts.trainable()),
                       percent)},
      {"parameters (lora)", FormatCount(counts.lora())},
      {"parameters (head)", FormatCount(counts.head())},
      {"step", absl::StrCat(run.step())},
      {absl::StrCat("best ", metric),
       run.best_epoch() > 0
           ? absl::StrCat(FormatMetric(metric, run.best_metric()), " (epoch ",
                          run.best_epoch(), ")")
           : "-"},
  };
  std::map<std::string, double> latest(run.latest_metrics().begin(),
                                       run.latest_metrics().end());
  for (const auto& [name, value] : latest) {
    fields.push_back({absl::StrCat("latest ", name), FormatExact(value)});
  }
  fields.push_back({"checkpoint", run.checkpoint_artifact_id().empty()
                                      ? "-"
                                      : run.checkpoint_artifact_id()});
  fields.push_back({"adapter", run.adapter_artifact_id().empty()
                                   ? "-"
                                   : run.adapter_artifact_id()});
  fields.push_back({"created", Time(run.create_time())});
  fields.push_back({"started", Time(run.start_time())});
  fields.push_back({"ended", Time(run.end_time())});
  if (!run.error().empty()) fields.push_back({"error", run.error()});
  return Fields(fields);
}

std::string ShowSweep(const v1::Sweep& sweep) {
  std::vector<std::string> counts;
  std::map<std::string, int> sorted(sweep.run_counts().begin(),
                                    sweep.run_counts().end());
  for (const auto& [state, count] : sorted) {
    counts.push_back(absl::StrCat(count, " ", absl::AsciiStrToLower(state)));
  }
  std::string out = Fields({
      {"sweep", sweep.sweep_id()},
      {"name", sweep.name()},
      {"state", SweepStateName(sweep.state())},
      {"runs", absl::StrCat(sweep.total_runs(), " (",
                            absl::StrJoin(counts, ", "), ")")},
      {"metric",
       absl::StrCat(sweep.metric().name(), " (", Goal(sweep.metric()), ")")},
      {"priority", absl::StrCat(sweep.priority())},
      {"created", Time(sweep.create_time())},
      {"ended", Time(sweep.end_time())},
  });
  absl::StrAppend(&out, "spec:\n");
  for (absl::string_view line : absl::StrSplit(sweep.spec_yaml(), '\n')) {
    absl::StrAppend(&out, "  ", line, "\n");
  }
  return out;
}

absl::StatusOr<int> Show(CommandContext& context) {
  absl::StatusOr<LoradClient*> client = context.Client();
  if (!client.ok()) return client.status();
  const std::string& id = context.args().positional[0];
  if (absl::StartsWith(id, "sw-")) {
    absl::StatusOr<v1::Sweep> sweep = (*client)->GetSweep(id);
    if (!sweep.ok()) return sweep.status();
    if (context.output() != OutputFormat::kTable) {
      context.out() << StructuredText(ProtoToJson(*sweep), context.output());
    } else {
      context.out() << ShowSweep(*sweep);
    }
    return kExitOk;
  }
  absl::StatusOr<v1::Run> run = (*client)->GetRun(id);
  if (!run.ok()) return run.status();
  if (context.output() != OutputFormat::kTable) {
    context.out() << StructuredText(ProtoToJson(*run), context.output());
    return kExitOk;
  }
  std::string metric = "metric";
  absl::StatusOr<v1::Sweep> sweep = (*client)->GetSweep(run->sweep_id());
  if (sweep.ok()) metric = sweep->metric().name();
  context.out() << ShowRun(*run, metric);
  return kExitOk;
}

absl::StatusOr<int> Workers(CommandContext& context) {
  absl::StatusOr<LoradClient*> client = context.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<std::vector<v1::Worker>> workers =
      (*client)->ListWorkers(context.args().Has("all"));
  if (!workers.ok()) return workers.status();
  if (context.output() != OutputFormat::kTable) {
    context.out() << StructuredText(JsonList(*workers, "workers"),
                                    context.output());
    return kExitOk;
  }
  if (workers->empty()) {
    context.err() << "No workers"
                  << (context.args().Has("all") ? "" : " up (--all shows all)")
                  << ".\n";
    return kExitOk;
  }
  TextTable table;
  table.header = {"worker id", "name",    "up",     "device",        "threads",
                  "slots",     "running", "labels", "last heartbeat"};
  table.align = "lllllrrll";
  const absl::Time now = context.io().now();
  for (const v1::Worker& worker : *workers) {
    const v1::WorkerCapabilities& caps = worker.capabilities();
    std::string device = caps.device() == v1::DEVICE_KIND_CUDA
                             ? absl::StrCat("cuda x", caps.gpu_count())
                             : "cpu";
    if (caps.gpu_names_size() > 0) {
      absl::StrAppend(&device, " (", caps.gpu_names(0), ")");
    }
    std::map<std::string, std::string> labels(caps.labels().begin(),
                                              caps.labels().end());
    std::vector<std::string> label_text;
    for (const auto& [key, value] : labels) {
      label_text.push_back(absl::StrCat(key, "=", value));
    }
    table.rows.push_back(
        {worker.worker_id(), worker.name(), worker.up() ? "yes" : "no", device,
         absl::StrCat(caps.cpu_threads()),
         absl::StrCat(caps.max_concurrent_jobs()),
         absl::StrCat(worker.running_run_ids_size()),
         label_text.empty() ? "-" : absl::StrJoin(label_text, ","),
         absl::StrCat(FormatAge(worker.last_heartbeat_time(), now), " ago")});
  }
  context.out() << table.Render();
  return kExitOk;
}

}  // namespace

std::vector<Command> QueryCommands() {
  std::vector<Command> commands(4);
  {
    Command& c = commands[0];
    c.spec.name = "sweeps";
    c.spec.summary = "List sweeps, newest first";
    c.spec.description =
        "One line per sweep: id, name, state, finished and running runs, "
        "metric, age.\n";
    c.spec.examples = {"loractl sweeps",
                       "loractl sweeps --output json | jq -r "
                       "'.sweeps[].sweep_id'"};
    c.run = Sweeps;
  }
  {
    Command& c = commands[1];
    c.spec.name = "runs";
    c.spec.args = "SWEEP";
    c.spec.min_args = c.spec.max_args = 1;
    c.spec.summary = "List a sweep's runs";
    c.spec.description =
        "One line per run in sweep order: swept parameters, state, attempt, "
        "step,\nlatest loss, best metric, worker and run id.\n";
    c.spec.flags = {{"state",
                     0,
                     true,
                     "STATE",
                     "only runs in this state (pending, leased, running, "
                     "succeeded, failed,\ncancelled); repeat or separate "
                     "with commas",
                     {},
                     true}};
    c.spec.examples = {"loractl runs sw-3f2a9c41d07b5e6a8c11",
                       "loractl runs sw-3f2a9c41d07b5e6a8c11 --state "
                       "failed,cancelled"};
    c.run = Runs;
  }
  {
    Command& c = commands[2];
    c.spec.name = "show";
    c.spec.args = "RUN";
    c.spec.min_args = c.spec.max_args = 1;
    c.spec.summary = "Show one run (or, given an sw-... id, one sweep)";
    c.spec.description =
        "A run's parameters, resolved config, parameter counts, progress, "
        "best metric,\nlatest metrics, checkpoint and adapter artifacts, "
        "times and last error.\n";
    c.spec.examples = {"loractl show run-0c1d2e3f4a5b6c7d8e9f",
                       "loractl show run-0c1d2e3f4a5b6c7d8e9f --output yaml"};
    c.run = Show;
  }
  {
    Command& c = commands[3];
    c.spec.name = "workers";
    c.spec.summary = "List the workers lorad knows";
    c.spec.description =
        "Workers whose heartbeats arrive; --all adds those that stopped.\n";
    c.spec.flags = {{"all", 0, false, "", "include workers that are down"}};
    c.spec.examples = {"loractl workers",
                       "loractl workers --all --output json"};
    c.run = Workers;
  }
  return commands;
}

}  // namespace lora::loractl
