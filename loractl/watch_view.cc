#include "loractl/watch_view.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "loractl/display.h"
#include "loractl/output.h"

namespace lora::loractl {
namespace {

constexpr size_t kMaxErrorShown = 80;

std::string PadRight(std::string text, size_t width) {
  const size_t shown = DisplayWidth(text);
  if (shown < width) text.append(width - shown, ' ');
  return text;
}

std::string PadLeft(const std::string& text, size_t width) {
  const size_t shown = DisplayWidth(text);
  return shown < width ? std::string(width - shown, ' ') + text : text;
}

absl::Time PointTime(const v1::MetricPoint& point,
                     const google::protobuf::Timestamp& event_time) {
  if (point.has_time() &&
      (point.time().seconds() != 0 || point.time().nanos() != 0)) {
    return ToAbslTime(point.time());
  }
  return ToAbslTime(event_time);
}

}  // namespace

SweepWatchView::SweepWatchView(const v1::Sweep& sweep,
                               const std::vector<v1::Run>& runs, int bar_width)
    : sweep_(sweep),
      bar_width_(bar_width),
      metric_name_(sweep.metric().name()),
      maximize_(sweep.metric().goal() != v1::METRIC_GOAL_MINIMIZE),
      sweep_state_(sweep.state()) {
  for (const v1::Run& run : runs) {
    RunView view;
    view.run_id = run.run_id();
    view.label =
        absl::StrCat("#", run.index(), " ", FormatParameters(run.parameters()));
    const v1::RunConfig& config = run.config();
    view.rate_key =
        absl::StrCat(config.task(), "|", config.dataset_artifact_id(), "|",
                     config.batch_size(), "|", config.grad_accum_steps());
    view.state = run.state();
    view.attempt = std::max(1, run.attempt());
    view.epochs = config.epochs();
    view.step = run.step();
    if (run.best_epoch() > 0) {
      view.best = run.best_metric();
      view.best_epoch = run.best_epoch();
      view.epochs_done = run.best_epoch();
    }
    const auto& latest = run.latest_metrics();
    if (latest.count("loss")) {
      view.loss = latest.at("loss");
    } else if (latest.count("train_loss")) {
      view.loss = latest.at("train_loss");
    }
    view.error = run.error();
    index_[view.run_id] = runs_.size();
    runs_.push_back(std::move(view));
  }
}

SweepWatchView::Change SweepWatchView::Apply(const v1::SweepEvent& event) {
  Change change;
  last_sequence_ = std::max(last_sequence_, event.sequence());
  switch (event.event_case()) {
    case v1::SweepEvent::kRunState: {
      const v1::RunStateChange& state = event.run_state();
      auto it = index_.find(state.run_id());
      if (it == index_.end()) break;
      RunView& run = runs_[it->second];
      change.run_id = run.run_id;
      change.noteworthy =
          run.state != state.state() || run.attempt != state.attempt();
      if (state.attempt() != run.attempt) {
        run.attempt = state.attempt();
        run.first_sample.reset();
        run.last_sample.reset();
      }
      run.state = state.state();
      if (!state.error().empty()) run.error = state.error();
      break;
    }
    case v1::SweepEvent::kMetric: {
      auto it = index_.find(event.metric().run_id());
      if (it == index_.end()) break;
      RunView& run = runs_[it->second];
      change.run_id = run.run_id;
      ApplyMetric(run, event.metric(),
                  PointTime(event.metric().point(), event.time()), &change);
      break;
    }
    case v1::SweepEvent::kSweepState:
      change.sweep_state_changed = sweep_state_ != event.sweep_state().state();
      sweep_state_ = event.sweep_state().state();
      break;
    default:
      break;
  }
  return change;
}

void SweepWatchView::ApplyMetric(RunView& run, const v1::RunMetric& metric,
                                 absl::Time time, Change* change) {
  const v1::MetricPoint& point = metric.point();
  if (metric.attempt() > run.attempt) {
    run.attempt = metric.attempt();
    run.first_sample.reset();
    run.last_sample.reset();
  }
  if (point.step() > 0) run.step = point.step();
  if (point.epoch() > 0) run.epoch = point.epoch();
  if (point.name() == "loss") {
    run.loss = point.value();
  } else if (point.name() == "train_loss" && !run.loss_from_steps) {
    run.loss = point.value();
  }
  if (point.name() == "loss") run.loss_from_steps = true;
  const bool end_of_epoch =
      point.epoch() > 0 &&
      (point.name() == metric_name_ || point.name() == "train_loss");
  if (end_of_epoch) {
    run.epochs_done = std::max(run.epochs_done, point.epoch());
    if (point.step() > 0) {
      run.steps_per_epoch = static_cast<double>(point.step()) /
                            static_cast<double>(point.epoch());
      rates_[run.rate_key] = run.steps_per_epoch;
    }
  }
  if (point.name() == metric_name_) {
    const bool better =
        !run.best.has_value() ||
        (maximize_ ? point.value() > *run.best : point.value() < *run.best);
    if (better) {
      run.best = point.value();
      run.best_epoch = point.epoch();
    }
    change->noteworthy = true;
  }
  if (point.step() > 0) {
    if (!run.first_sample.has_value()) run.first_sample = {time, point.step()};
    run.last_sample = {time, point.step()};
  }
}

double SweepWatchView::StepsPerEpoch(const RunView& run) const {
  if (run.steps_per_epoch > 0) return run.steps_per_epoch;
  auto it = rates_.find(run.rate_key);
  return it == rates_.end() ? 0.0 : it->second;
}

double SweepWatchView::Progress(const RunView& run) const {
  if (run.state == v1::RUN_STATE_SUCCEEDED) return 1.0;
  if (run.epochs <= 0) return 0.0;
  const double steps_per_epoch = StepsPerEpoch(run);
  if (steps_per_epoch > 0) {
    return std::clamp(
        static_cast<double>(run.step) / (steps_per_epoch * run.epochs), 0.0,
        1.0);
  }
  return std::clamp(static_cast<double>(run.epochs_done) / run.epochs, 0.0,
                    1.0);
}

std::string SweepWatchView::Eta(const RunView& run) const {
  if (IsTerminal(run.state) || run.state == v1::RUN_STATE_PENDING) return "-";
  const double steps_per_epoch = StepsPerEpoch(run);
  if (steps_per_epoch <= 0 || run.epochs <= 0 || !run.first_sample ||
      !run.last_sample) {
    return "?";
  }
  const int64_t steps = run.last_sample->second - run.first_sample->second;
  const double seconds =
      absl::ToDoubleSeconds(run.last_sample->first - run.first_sample->first);
  if (steps <= 0 || seconds <= 0) return "?";
  const double left =
      steps_per_epoch * run.epochs - static_cast<double>(run.step);
  if (left <= 0) return "0s";
  return HumanDuration(absl::Seconds(left * seconds / steps));
}

size_t SweepWatchView::LabelWidth() const {
  size_t width = 0;
  for (const RunView& run : runs_) {
    width = std::max(width, DisplayWidth(run.label));
  }
  return width;
}

std::string SweepWatchView::Line(const RunView& run, size_t label_width) const {
  const double progress = Progress(run);
  const int filled = static_cast<int>(std::floor(progress * bar_width_ + 1e-9));
  const std::string bar =
      absl::StrCat("[", std::string(filled, '#'),
                   std::string(bar_width_ - filled, '.'), "]");
  const std::string percent =
      absl::StrCat(static_cast<int>(std::floor(progress * 100 + 1e-9)), "%");
  const std::string epoch =
      run.epoch > 0 ? absl::StrCat("epoch ", run.epoch, "/", run.epochs)
                    : absl::StrCat("epoch -/", run.epochs);
  const std::string step = absl::StrCat("step ", run.step);
  const std::string loss = run.loss.has_value()
                               ? absl::StrFormat("loss %.4f", *run.loss)
                               : std::string("loss -");
  std::string best = absl::StrCat("best ", metric_name_, " ");
  if (run.best.has_value()) {
    absl::StrAppend(&best, FormatMetric(metric_name_, *run.best));
  } else {
    absl::StrAppend(&best, "-");
  }
  std::string line = absl::StrCat(
      PadRight(run.label, label_width), "  ", bar, " ", PadLeft(percent, 4),
      "  ", PadRight(epoch, 11), "  ", PadRight(step, 11), "  ",
      PadRight(loss, 11), "  ", PadRight(best, metric_name_.size() + 13), "  ",
      PadRight(absl::StrCat("ETA ", Eta(run)), 10), "  ",
      RunStateName(run.state));
  if (run.attempt > 1) absl::StrAppend(&line, " (attempt ", run.attempt, ")");
  if (run.state == v1::RUN_STATE_FAILED && !run.error.empty()) {
    std::string error = run.error.substr(0, run.error.find('\n'));
    if (error.size() > kMaxErrorShown) {
      error = error.substr(0, kMaxErrorShown) + "...";
    }
    absl::StrAppend(&line, ": ", error);
  }
  return line;
}

std::string SweepWatchView::Header() const {
  return absl::StrCat("sweep ", sweep_.sweep_id(), " (", sweep_.name(),
                      "): ", SweepStateName(sweep_state_), ", ", runs_.size(),
                      " runs, metric ", metric_name_, " (",
                      maximize_ ? "maximize" : "minimize", ")");
}

std::vector<std::string> SweepWatchView::RunLines() const {
  const size_t width = LabelWidth();
  std::vector<std::string> lines;
  for (const RunView& run : runs_) lines.push_back(Line(run, width));
  return lines;
}

std::string SweepWatchView::RunLine(const std::string& run_id) const {
  auto it = index_.find(run_id);
  if (it == index_.end()) return "";
  return Line(runs_[it->second], LabelWidth());
}

std::string SweepWatchView::Summary() const {
  std::map<v1::RunState, int> counts;
  for (const RunView& run : runs_) ++counts[run.state];
  const int done = counts[v1::RUN_STATE_SUCCEEDED] +
                   counts[v1::RUN_STATE_FAILED] +
                   counts[v1::RUN_STATE_CANCELLED];
  std::vector<std::string> parts;
  for (v1::RunState state :
       {v1::RUN_STATE_SUCCEEDED, v1::RUN_STATE_FAILED, v1::RUN_STATE_CANCELLED,
        v1::RUN_STATE_RUNNING, v1::RUN_STATE_LEASED, v1::RUN_STATE_PENDING}) {
    if (counts[state] > 0) {
      parts.push_back(absl::StrCat(counts[state], " ",
                                   absl::AsciiStrToLower(RunStateName(state))));
    }
  }
  return absl::StrCat(done, "/", runs_.size(),
                      " done: ", absl::StrJoin(parts, ", "));
}

}  // namespace lora::loractl
