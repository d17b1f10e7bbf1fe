#include "loractl/tables.h"

#include <set>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "loractl/display.h"
#include "loractl/output.h"

namespace lora::loractl {
namespace {

bool Wants(ResultsTables tables, ResultsTables table) {
  return tables == ResultsTables::kAll || tables == table;
}

std::string Optional(const std::string& metric,
                     const std::optional<double>& value) {
  return value.has_value() ? FormatMetric(metric, *value) : "-";
}

// "93.35%" for one run, "93.35% ± 0.20%" for several, "-" for none.
std::string GroupScore(const ResultsData& data, const AblationGroup& group) {
  if (group.runs == 0) return "-";
  std::string score = FormatMetric(data.metric_name, group.mean);
  if (group.runs > 1) {
    absl::StrAppend(&score, " ± ", FormatMetric(data.metric_name, group.std));
  }
  return score;
}

std::string Percent(double percent) {
  return absl::StrFormat("%.3f%%", percent);
}

std::string GoalName(const ResultsData& data) {
  return data.maximize ? "maximize" : "minimize";
}

// Sorted union of the runs' parameter keys.
std::vector<std::string> ParameterKeys(const ResultsData& data) {
  std::set<std::string> keys;
  for (const RunResults& run : data.runs) {
    if (!run.parameters.is_object()) continue;
    for (const auto& [key, value] : run.parameters.items()) {
      (void)value;
      keys.insert(key);
    }
  }
  return std::vector<std::string>(keys.begin(), keys.end());
}

std::string RunLabel(const RunResults& run) {
  return absl::StrCat("#", run.index, " ",
                      FormatJsonParameters(run.parameters));
}

// ---------------------------------------------------------------------------
// Text.

std::string TextTables(const ResultsData& data, ResultsTables tables) {
  std::string out =
      absl::StrCat("sweep ", data.sweep_id, " (", data.name, "): ", data.state,
                   ", ", data.runs.size(), " runs, metric ", data.metric_name,
                   " (", GoalName(data), ")\n");
  const std::string metric_title = MetricTitle(data.metric_name);
  if (Wants(tables, ResultsTables::kEpochs)) {
    TextTable table;
    table.header = {"run",   "parameters", "state",
                    "epoch", "train loss", metric_title};
    table.align = "lllrrr";
    for (const RunResults& run : data.runs) {
      const std::string label = absl::StrCat("#", run.index);
      const std::string params = FormatJsonParameters(run.parameters);
      if (run.epochs.empty()) {
        table.rows.push_back({label, params, run.state, "-", "-", "-"});
      }
      for (const EpochRow& row : run.epochs) {
        table.rows.push_back(
            {label, params, run.state, absl::StrCat(row.epoch),
             row.train_loss ? absl::StrFormat("%.4f", *row.train_loss) : "-",
             Optional(data.metric_name, row.metric)});
      }
    }
    absl::StrAppend(&out, "\nTrain loss and ", data.metric_name,
                    " at the end of each epoch\n", table.Render());
  }
  if (Wants(tables, ResultsTables::kAblation)) {
    TextTable table;
    table.header = {GroupTitle(data.group_by), "runs",
                    absl::StrCat(metric_title, " (mean ± std)"), "min", "max"};
    table.align = "lrrrr";
    for (const AblationGroup& group : data.groups) {
      table.rows.push_back(
          {FormatJsonValue(group.value), absl::StrCat(group.runs),
           GroupScore(data, group),
           group.runs ? FormatMetric(data.metric_name, group.min) : "-",
           group.runs ? FormatMetric(data.metric_name, group.max) : "-"});
    }
    absl::StrAppend(&out, "\nBest ", data.metric_name, " per run by ",
                    data.group_by, " (succeeded runs)\n", table.Render());
  }
  if (Wants(tables, ResultsTables::kParameters)) {
    TextTable table;
    table.header = {GroupTitle(data.group_by), "trainable parameters",
                    "% of total params", "total parameters"};
    table.align = "lrrr";
    for (const AblationGroup& group : data.groups) {
      table.rows.push_back(
          {FormatJsonValue(group.value), FormatCount(group.trainable),
           Percent(group.trainable_percent), FormatCount(group.total)});
    }
    absl::StrAppend(&out, "\nTrainable parameters by ", data.group_by, "\n",
                    table.Render());
  }
  return out;
}

// ---------------------------------------------------------------------------
// Markdown.

std::string Cell(const std::string& text) {
  return absl::StrReplaceAll(text, {{"|", "\\|"}, {"\n", " "}});
}

std::string MarkdownTable(const std::vector<std::string>& header,
                          const std::vector<std::vector<std::string>>& rows) {
  std::vector<std::string> cells;
  for (const std::string& name : header) cells.push_back(Cell(name));
  std::string out = absl::StrCat("| ", absl::StrJoin(cells, " | "), " |\n|");
  for (size_t i = 0; i < header.size(); ++i) out += "---|";
  out += "\n";
  for (const auto& row : rows) {
    cells.clear();
    for (const std::string& cell : row) cells.push_back(Cell(cell));
    absl::StrAppend(&out, "| ", absl::StrJoin(cells, " | "), " |\n");
  }
  return out;
}

std::string MarkdownTables(const ResultsData& data, ResultsTables tables) {
  const std::string metric_title = MetricTitle(data.metric_name);
  std::string out = absl::StrCat(
      "## ", Cell(data.name), " (", data.sweep_id, ")\n\n", "Sweep ",
      data.state, ", ", data.runs.size(), " runs, metric `", data.metric_name,
      "` (", GoalName(data), ").\n");
  if (Wants(tables, ResultsTables::kEpochs)) {
    absl::StrAppend(&out, "\n### Train loss and ", metric_title, " by epoch\n");
    for (const RunResults& run : data.runs) {
      absl::StrAppend(&out, "\n#### ", Cell(RunLabel(run)), " (`", run.run_id,
                      "`, ", run.state, ")\n\n");
      std::vector<std::vector<std::string>> rows;
      for (const EpochRow& row : run.epochs) {
        rows.push_back(
            {absl::StrCat(row.epoch),
             row.train_loss ? absl::StrFormat("%.4f", *row.train_loss) : "-",
             Optional(data.metric_name, row.metric)});
      }
      if (rows.empty()) {
        out += "No epoch finished yet.\n";
      } else {
        out += MarkdownTable({"Epoch", "Train Loss", metric_title}, rows);
      }
    }
  }
  if (Wants(tables, ResultsTables::kAblation)) {
    const std::vector<size_t> best = BestGroups(data);
    const std::set<size_t> bold(best.begin(), best.end());
    std::vector<std::vector<std::string>> rows;
    for (size_t i = 0; i < data.groups.size(); ++i) {
      const AblationGroup& group = data.groups[i];
      std::string score = GroupScore(data, group);
      if (bold.count(i)) score = absl::StrCat("**", score, "**");
      rows.push_back(
          {FormatJsonValue(group.value), score, absl::StrCat(group.runs)});
    }
    absl::StrAppend(
        &out, "\n### ",
        data.group_by == "lora.rank"
            ? std::string("Rank ablation")
            : absl::StrCat("Ablation by ", data.group_by),
        "\n\n",
        MarkdownTable({GroupTitle(data.group_by), metric_title, "Runs"}, rows),
        "\nThe best ", data.metric_name,
        " of each succeeded run; mean ± sample standard "
        "deviation over the runs of a group; the best group in "
        "bold.\n");
  }
  if (Wants(tables, ResultsTables::kParameters)) {
    std::vector<std::vector<std::string>> rows;
    for (const AblationGroup& group : data.groups) {
      rows.push_back({FormatJsonValue(group.value),
                      FormatCount(group.trainable),
                      Percent(group.trainable_percent)});
    }
    absl::StrAppend(&out, "\n### Trainable parameters by ",
                    data.group_by == "lora.rank" ? "rank" : data.group_by,
                    "\n\n",
                    MarkdownTable({GroupTitle(data.group_by),
                                   "Trainable Parameters", "% of Total Params"},
                                  rows));
  }
  return out;
}

// ---------------------------------------------------------------------------
// CSV.

std::string CsvField(const std::string& text) {
  if (text.find_first_of(",\"\n\r") == std::string::npos) return text;
  return absl::StrCat("\"", absl::StrReplaceAll(text, {{"\"", "\"\""}}), "\"");
}

std::string CsvRow(const std::vector<std::string>& fields) {
  std::vector<std::string> escaped;
  for (const std::string& field : fields) escaped.push_back(CsvField(field));
  return absl::StrCat(absl::StrJoin(escaped, ","), "\n");
}

std::string Exact(const std::optional<double>& value) {
  return value.has_value() ? FormatExact(*value) : "";
}

std::string CsvTables(const ResultsData& data, ResultsTables tables) {
  std::vector<std::string> sections;
  if (Wants(tables, ResultsTables::kEpochs)) {
    const std::vector<std::string> keys = ParameterKeys(data);
    std::vector<std::string> header = {"run_id", "index"};
    header.insert(header.end(), keys.begin(), keys.end());
    header.insert(header.end(),
                  {"state", "epoch", "train_loss", data.metric_name});
    std::string section = CsvRow(header);
    for (const RunResults& run : data.runs) {
      for (const EpochRow& row : run.epochs) {
        std::vector<std::string> fields = {run.run_id, absl::StrCat(run.index)};
        for (const std::string& key : keys) {
          fields.push_back(run.parameters.contains(key)
                               ? FormatJsonValue(run.parameters[key])
                               : "");
        }
        fields.insert(fields.end(), {run.state, absl::StrCat(row.epoch),
                                     Exact(row.train_loss), Exact(row.metric)});
        section += CsvRow(fields);
      }
    }
    sections.push_back(section);
  }
  if (Wants(tables, ResultsTables::kAblation)) {
    const std::string& m = data.metric_name;
    std::string section = CsvRow({data.group_by, "runs", m + "_mean",
                                  m + "_std", m + "_min", m + "_max"});
    for (const AblationGroup& group : data.groups) {
      const bool any = group.runs > 0;
      section += CsvRow({FormatJsonValue(group.value), absl::StrCat(group.runs),
                         any ? FormatExact(group.mean) : "",
                         any ? FormatExact(group.std) : "",
                         any ? FormatExact(group.min) : "",
                         any ? FormatExact(group.max) : ""});
    }
    sections.push_back(section);
  }
  if (Wants(tables, ResultsTables::kParameters)) {
    std::string section = CsvRow({data.group_by, "trainable_parameters",
                                  "total_parameters", "trainable_percent"});
    for (const AblationGroup& group : data.groups) {
      section += CsvRow(
          {FormatJsonValue(group.value), absl::StrCat(group.trainable),
           absl::StrCat(group.total), FormatExact(group.trainable_percent)});
    }
    sections.push_back(section);
  }
  return absl::StrJoin(sections, "\n");
}

nlohmann::json OptionalJson(const std::optional<double>& value) {
  return value.has_value() ? nlohmann::json(*value) : nlohmann::json(nullptr);
}

}  // namespace

absl::StatusOr<ResultsFormat> ParseResultsFormat(const std::string& name) {
  if (name == "table") return ResultsFormat::kTable;
  if (name == "markdown") return ResultsFormat::kMarkdown;
  if (name == "csv") return ResultsFormat::kCsv;
  if (name == "json") return ResultsFormat::kJson;
  return absl::InvalidArgumentError(absl::StrCat(
      "--format: expected one of table, markdown, csv, json; got \"", name,
      "\""));
}

absl::StatusOr<ResultsTables> ParseResultsTables(const std::string& name) {
  if (name == "all") return ResultsTables::kAll;
  if (name == "epochs") return ResultsTables::kEpochs;
  if (name == "ablation") return ResultsTables::kAblation;
  if (name == "parameters") return ResultsTables::kParameters;
  return absl::InvalidArgumentError(absl::StrCat(
      "--table: expected one of all, epochs, ablation, parameters; got \"",
      name, "\""));
}

std::vector<size_t> BestGroups(const ResultsData& data) {
  std::optional<double> best;
  for (const AblationGroup& group : data.groups) {
    if (group.runs == 0) continue;
    if (!best || (data.maximize ? group.mean > *best : group.mean < *best)) {
      best = group.mean;
    }
  }
  std::vector<size_t> indexes;
  for (size_t i = 0; best && i < data.groups.size(); ++i) {
    if (data.groups[i].runs > 0 && data.groups[i].mean == *best) {
      indexes.push_back(i);
    }
  }
  return indexes;
}

nlohmann::json ResultsJson(const ResultsData& data, ResultsTables tables) {
  nlohmann::json out = {
      {"sweep_id", data.sweep_id},
      {"name", data.name},
      {"state", data.state},
      {"metric", {{"name", data.metric_name}, {"goal", GoalName(data)}}},
      {"group_by", data.group_by},
  };
  if (Wants(tables, ResultsTables::kEpochs)) {
    nlohmann::json runs = nlohmann::json::array();
    for (const RunResults& run : data.runs) {
      nlohmann::json epochs = nlohmann::json::array();
      for (const EpochRow& row : run.epochs) {
        epochs.push_back({{"epoch", row.epoch},
                          {"train_loss", OptionalJson(row.train_loss)},
                          {data.metric_name, OptionalJson(row.metric)}});
      }
      runs.push_back({
          {"run_id", run.run_id},
          {"index", run.index},
          {"parameters", run.parameters},
          {"state", run.state},
          {"best_metric", OptionalJson(run.best_metric)},
          {"best_epoch", run.best_epoch},
          {"parameter_counts",
           {{"total", run.counts.total()},
            {"trainable", run.counts.trainable()},
            {"lora", run.counts.lora()},
            {"head", run.counts.head()},
            {"base", run.counts.base()}}},
          {"epochs", epochs},
      });
    }
    out["runs"] = runs;
  }
  if (Wants(tables, ResultsTables::kAblation)) {
    nlohmann::json groups = nlohmann::json::array();
    for (const AblationGroup& group : data.groups) {
      const bool any = group.runs > 0;
      groups.push_back({
          {"value", group.value},
          {"runs", group.runs},
          {"mean", any ? nlohmann::json(group.mean) : nlohmann::json(nullptr)},
          {"std", any ? nlohmann::json(group.std) : nlohmann::json(nullptr)},
          {"min", any ? nlohmann::json(group.min) : nlohmann::json(nullptr)},
          {"max", any ? nlohmann::json(group.max) : nlohmann::json(nullptr)},
      });
    }
    out["ablation"] = groups;
  }
  if (Wants(tables, ResultsTables::kParameters)) {
    nlohmann::json groups = nlohmann::json::array();
    for (const AblationGroup& group : data.groups) {
      groups.push_back({{"value", group.value},
                        {"trainable_parameters", group.trainable},
                        {"total_parameters", group.total},
                        {"trainable_percent", group.trainable_percent}});
    }
    out["parameters"] = groups;
  }
  return out;
}

std::string RenderResults(const ResultsData& data, ResultsFormat format,
                          ResultsTables tables) {
  switch (format) {
    case ResultsFormat::kMarkdown:
      return MarkdownTables(data, tables);
    case ResultsFormat::kCsv:
      return CsvTables(data, tables);
    case ResultsFormat::kJson:
      return JsonText(ResultsJson(data, tables));
    case ResultsFormat::kTable:
    default:
      return TextTables(data, tables);
  }
}

}  // namespace lora::loractl
