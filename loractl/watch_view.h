// What `loractl watch` shows: one line per run of a sweep with a progress
// bar, epoch and step, the latest training loss, the best value of the
// sweep's metric so far, an ETA and the run's state, kept up to date from
// WatchSweep events. A pure model: events in, text out; no I/O, no clock
// (times come from the events), so tests feed it literal events.
//
// Progress. A run's total steps are epochs x steps per epoch. Steps per
// epoch are learned from the run's first end-of-epoch point (a point of the
// sweep metric or "train_loss" at epoch E and global step N gives N / E),
// or, until then, from another run of the sweep with the same task, data
// and batch size; before either is known progress counts finished epochs.
// The ETA divides the steps left by the rate (steps per second of event
// time) since the current attempt's first step point.
//
// Thread-compatible.
#ifndef LORA_SWEEP_LORACTL_WATCH_VIEW_H_
#define LORA_SWEEP_LORACTL_WATCH_VIEW_H_

#include <cstdint>
#include <map>
#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "lora/v1/sweep_service.pb.h"

namespace lora::loractl {

class SweepWatchView {
 public:
  // `runs` in sweep order (ListRuns), each with its config and the state
  // the store had when listed.
  SweepWatchView(const v1::Sweep& sweep, const std::vector<v1::Run>& runs,
                 int bar_width = 20);

  // What an event changed, for printers that print only changes.
  struct Change {
    // The run whose line changed ("" for sweep events and unknown runs).
    std::string run_id;
    // A state change or an evaluation of the sweep metric: worth a line of
    // its own when output is not a terminal.
    bool noteworthy = false;
    // The sweep's own state changed.
    bool sweep_state_changed = false;
  };
  Change Apply(const v1::SweepEvent& event);

  // "sweep sw-... (name): RUNNING, 8 runs, metric val_accuracy (maximize)"
  std::string Header() const;
  // Every run's line, in sweep order, columns aligned across runs.
  std::vector<std::string> RunLines() const;
  // One run's line (aligned as in RunLines); "" for an unknown run.
  std::string RunLine(const std::string& run_id) const;
  // "3/8 done: 2 succeeded, 1 failed; 2 running, 3 pending"
  std::string Summary() const;

  v1::SweepState sweep_state() const { return sweep_state_; }
  void set_sweep_state(v1::SweepState state) { sweep_state_ = state; }
  int64_t last_sequence() const { return last_sequence_; }

 private:
  struct RunView {
    std::string run_id;
    std::string label;     // "#3 lora.rank=4 seed=1"
    std::string rate_key;  // runs sharing it share steps per epoch
    v1::RunState state = v1::RUN_STATE_PENDING;
    int32_t attempt = 1;
    int32_t epochs = 0;
    int32_t epoch = 0;        // of the latest step point
    int32_t epochs_done = 0;  // evaluations seen
    int64_t step = 0;
    std::optional<double> loss;
    bool loss_from_steps = false;  // "loss" points seen: prefer them
    std::optional<double> best;
    int32_t best_epoch = 0;
    double steps_per_epoch = 0;  // 0 = unknown
    // Rate measurement within the current attempt.
    std::optional<std::pair<absl::Time, int64_t>> first_sample;
    std::optional<std::pair<absl::Time, int64_t>> last_sample;
    std::string error;
  };

  void ApplyMetric(RunView& run, const v1::RunMetric& metric, absl::Time time,
                   Change* change);
  double StepsPerEpoch(const RunView& run) const;
  double Progress(const RunView& run) const;
  std::string Eta(const RunView& run) const;
  std::string Line(const RunView& run, size_t label_width) const;
  size_t LabelWidth() const;

  const v1::Sweep sweep_;
  const int bar_width_;
  std::string metric_name_;
  bool maximize_ = true;
  v1::SweepState sweep_state_;
  int64_t last_sequence_ = 0;
  std::vector<RunView> runs_;
  std::map<std::string, size_t> index_;  // run id -> runs_ position
  std::map<std::string, double> rates_;  // rate_key -> steps per epoch
};

}  // namespace lora::loractl

#endif  // LORA_SWEEP_LORACTL_WATCH_VIEW_H_
