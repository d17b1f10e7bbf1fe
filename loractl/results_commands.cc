// `loractl results SWEEP` (the seed's tables) and `loractl plot SWEEP -o
// FILE.svg` (metric by rank with error bars, loss curves by rank).
#include <string>

#include "absl/strings/str_cat.h"
#include "base/file_util.h"
#include "loractl/commands.h"
#include "loractl/results_data.h"
#include "loractl/svg_plot.h"
#include "loractl/tables.h"

namespace lora::loractl {
namespace {

absl::StatusOr<int> Results(CommandContext& context) {
  // --format wins; otherwise --output json|yaml, else the text tables.
  ResultsFormat format = ResultsFormat::kTable;
  if (std::optional<std::string> name = context.args().Get("format")) {
    absl::StatusOr<ResultsFormat> parsed = ParseResultsFormat(*name);
    if (!parsed.ok()) return parsed.status();
    format = *parsed;
  } else if (context.output() != OutputFormat::kTable) {
    format = ResultsFormat::kJson;
  }
  absl::StatusOr<ResultsTables> tables =
      ParseResultsTables(context.args().GetOr("table", "all"));
  if (!tables.ok()) return tables.status();
  absl::StatusOr<LoradClient*> client = context.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<ResultsData> data =
      FetchResults(*client, context.args().positional[0],
                   context.args().GetOr("group-by", "lora.rank"));
  if (!data.ok()) return data.status();
  if (format == ResultsFormat::kJson &&
      context.output() == OutputFormat::kYaml &&
      !context.args().Has("format")) {
    context.out() << JsonToYaml(ResultsJson(*data, *tables));
  } else {
    context.out() << RenderResults(*data, format, *tables);
  }
  return kExitOk;
}

absl::StatusOr<int> Plot(CommandContext& context) {
  const std::optional<std::string> file = context.args().Get("output-file");
  if (!file.has_value() || file->empty()) {
    return absl::InvalidArgumentError(
        "\"plot\" needs -o FILE.svg, the file to write (- for stdout)");
  }
  absl::StatusOr<LoradClient*> client = context.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<ResultsData> data =
      FetchResults(*client, context.args().positional[0],
                   context.args().GetOr("group-by", "lora.rank"));
  if (!data.ok()) return data.status();
  absl::StatusOr<std::string> svg = RenderSvgPlot(*data);
  if (!svg.ok()) return svg.status();
  if (*file == "-") {
    context.out() << *svg;
    return kExitOk;
  }
  absl::Status written = WriteFileAtomically(*file, *svg);
  if (!written.ok()) return written;
  int points = 0;
  for (const AblationGroup& group : data->groups) points += group.runs > 0;
  context.err() << "wrote " << *file << ": " << data->metric_name << " by "
                << data->group_by << " (" << points
                << " points) and training loss curves\n";
  return kExitOk;
}

const FlagSpec kGroupBy = {
    "group-by", 0, true, "KEY",
    "the swept parameter to group runs by (default lora.rank)"};

}  // namespace

Command ResultsCommand() {
  Command command;
  command.spec.name = "results";
  command.spec.args = "SWEEP";
  command.spec.min_args = command.spec.max_args = 1;
  command.spec.summary = "Print a sweep's results tables";
  command.spec.description =
      "Three tables, as in the LoRA rank-ablation study:\n"
      "  epochs      train loss and the sweep metric at the end of every "
      "epoch, per run;\n"
      "  ablation    the best metric of each run by rank (mean ± sample std "
      "over the\n"
      "              other parameters, e.g. seeds; the best rank in bold in "
      "markdown);\n"
      "  parameters  trainable parameters by rank and their share of the "
      "model.\n"
      "csv and json carry exact values; table and markdown show accuracies "
      "as\npercentages. --output json|yaml without --format prints the JSON "
      "form.\n";
  command.spec.flags = {
      {"format",
       0,
       true,
       "FORMAT",
       "output format (default table)",
       {"table", "markdown", "csv", "json"}},
      {"table",
       0,
       true,
       "TABLE",
       "which table (default all)",
       {"all", "epochs", "ablation", "parameters"}},
      kGroupBy,
  };
  command.spec.examples = {
      "loractl results sw-3f2a9c41d07b5e6a8c11",
      "loractl results sw-3f2a9c41d07b5e6a8c11 --format markdown >> "
      "README.md",
      "loractl results sw-3f2a9c41d07b5e6a8c11 --format csv --table ablation",
  };
  command.run = Results;
  return command;
}

Command PlotCommand() {
  Command command;
  command.spec.name = "plot";
  command.spec.args = "SWEEP";
  command.spec.min_args = command.spec.max_args = 1;
  command.spec.summary = "Write an SVG of the metric by rank and loss curves";
  command.spec.description =
      "Left: the sweep metric against rank, one point per rank at the mean "
      "of its runs'\nbest values, with ± one standard deviation error bars "
      "over seeds. Right: the\ntraining loss against step, one curve per "
      "rank. A self-contained SVG file.\n";
  command.spec.flags = {
      {"output-file", 'o', true, "FILE.svg",
       "the file to write, or - for stdout (required)"},
      kGroupBy,
  };
  command.spec.examples = {
      "loractl plot sw-3f2a9c41d07b5e6a8c11 -o rank_ablation.svg",
  };
  command.run = Plot;
  return command;
}

}  // namespace lora::loractl
