// `loractl watch SWEEP`: live progress of every run until the sweep ends,
// resuming across lorad restarts.
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "loractl/commands.h"
#include "loractl/display.h"
#include "loractl/sweep_watch.h"
#include "loractl/watch_view.h"

namespace lora::loractl {
namespace {

constexpr absl::Duration kRedrawInterval = absl::Milliseconds(250);

// The view starts from nothing: replaying the sweep's events from the
// start rebuilds every run's state and metrics in order.
std::vector<v1::Run> BlankRuns(const std::vector<v1::Run>& runs) {
  std::vector<v1::Run> blank;
  for (const v1::Run& run : runs) {
    v1::Run copy;
    copy.set_run_id(run.run_id());
    copy.set_index(run.index());
    *copy.mutable_parameters() = run.parameters();
    *copy.mutable_config() = run.config();
    copy.set_state(v1::RUN_STATE_PENDING);
    copy.set_attempt(1);
    blank.push_back(std::move(copy));
  }
  return blank;
}

std::string Cut(const std::string& line, int width) {
  if (width <= 1) return line;
  const size_t limit = static_cast<size_t>(width - 1);
  size_t columns = 0;
  for (size_t i = 0; i < line.size(); ++i) {
    if ((static_cast<unsigned char>(line[i]) & 0xC0) != 0x80) {
      if (columns == limit) return line.substr(0, i);
      ++columns;
    }
  }
  return line;
}

// Redraws the block of lines in place on a terminal, at most every
// kRedrawInterval, from a thread of its own (so the last change of a burst
// is drawn even when no further event comes).
class TerminalPrinter {
 public:
  TerminalPrinter(CommandContext& context, SweepWatchView& view)
      : context_(context), view_(view) {
    thread_ = std::thread([this] { Loop(); });
  }
  ~TerminalPrinter() { Stop(); }

  void Apply(const v1::SweepEvent& event) {
    absl::MutexLock lock(&mutex_);
    view_.Apply(event);
    status_.clear();
    dirty_ = true;
  }

  void SetStatus(std::string status) {
    absl::MutexLock lock(&mutex_);
    status_ = std::move(status);
    dirty_ = true;
  }

  // Draws the final block and ends the thread.
  void Stop() {
    {
      absl::MutexLock lock(&mutex_);
      if (stopped_) return;
      stopped_ = true;
    }
    thread_.join();
    absl::MutexLock lock(&mutex_);
    DrawLocked();
  }

 private:
  void Loop() {
    absl::MutexLock lock(&mutex_);
    while (!stopped_) {
      if (dirty_) DrawLocked();
      mutex_.AwaitWithTimeout(absl::Condition(&stopped_), kRedrawInterval);
    }
  }

  void DrawLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mutex_) {
    std::vector<std::string> block = {view_.Header()};
    for (std::string& line : view_.RunLines()) block.push_back(std::move(line));
    block.push_back(status_.empty()
                        ? view_.Summary()
                        : absl::StrCat(view_.Summary(), " — ", status_));
    std::ostream& out = context_.out();
    // Back to the first line of the previous block, then overwrite it.
    if (drawn_ > 0) out << "\x1b[" << drawn_ << "F";
    const int width = context_.io().terminal_width;
    for (const std::string& line : block) {
      out << "\x1b[2K" << Cut(line, width) << "\n";
    }
    out.flush();
    drawn_ = block.size();
    dirty_ = false;
  }

  CommandContext& context_;
  SweepWatchView& view_ ABSL_GUARDED_BY(mutex_);
  absl::Mutex mutex_;
  bool dirty_ ABSL_GUARDED_BY(mutex_) = true;
  bool stopped_ ABSL_GUARDED_BY(mutex_) = false;
  std::string status_ ABSL_GUARDED_BY(mutex_);
  size_t drawn_ ABSL_GUARDED_BY(mutex_) = 0;
  std::thread thread_;
};

absl::StatusOr<int> Watch(CommandContext& context) {
  return WatchUntilDone(context, context.args().positional[0]);
}

}  // namespace

absl::StatusOr<int> WatchUntilDone(CommandContext& context,
                                   const std::string& sweep_id) {
  absl::StatusOr<LoradClient*> client = context.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<v1::Sweep> sweep = (*client)->GetSweep(sweep_id);
  if (!sweep.ok()) return sweep.status();
  absl::StatusOr<std::vector<v1::Run>> runs = (*client)->ListRuns(sweep_id, {});
  if (!runs.ok()) return runs.status();

  v1::Sweep blank_sweep = *sweep;
  blank_sweep.set_state(v1::SWEEP_STATE_PENDING);
  SweepWatchView view(blank_sweep, BlankRuns(*runs));
  const bool structured = context.output() != OutputFormat::kTable;
  const bool terminal = !structured && context.io().out_is_terminal;

  std::unique_ptr<TerminalPrinter> printer;
  if (terminal) {
    printer = std::make_unique<TerminalPrinter>(context, view);
  } else if (!structured) {
    context.out() << "watching " << view.Header() << "\n";
    context.out().flush();
  }

  auto on_event = [&](const v1::SweepEvent& event) {
    if (printer != nullptr) {
      printer->Apply(event);
      return;
    }
    const SweepWatchView::Change change = view.Apply(event);
    if (structured) {
      if (context.output() == OutputFormat::kYaml) {
        context.out() << "---\n" << JsonToYaml(ProtoToJson(event));
      } else {
        context.out() << ProtoToJson(event).dump() << "\n";
      }
    } else if (change.noteworthy && !change.run_id.empty()) {
      context.out() << view.RunLine(change.run_id) << "\n";
    } else if (change.sweep_state_changed) {
      context.out() << "sweep " << sweep_id << " "
                    << SweepStateName(view.sweep_state()) << "\n";
    }
    context.out().flush();
  };
  auto on_retry = [&](const absl::Status& error, int64_t last,
                      absl::Duration delay) {
    const std::string message = absl::StrCat(
        "watch interrupted (", error.message(), "); resuming after sequence ",
        last, " in ", absl::FormatDuration(delay));
    if (printer != nullptr) {
      printer->SetStatus(message);
    } else {
      context.err() << message << "\n";
      context.err().flush();
    }
  };
  absl::Status followed =
      FollowSweep(*client, sweep_id, FollowOptions{}, on_event, on_retry);
  if (printer != nullptr) printer->Stop();
  if (!followed.ok()) return followed;

  v1::SweepState state = view.sweep_state();
  if (!IsTerminal(state)) {
    // Resumed after the terminal event, or a stream without sweep events.
    absl::StatusOr<v1::Sweep> final_sweep = (*client)->GetSweep(sweep_id);
    if (!final_sweep.ok()) return final_sweep.status();
    state = final_sweep->state();
  }
  if (!structured) {
    context.out() << "sweep " << sweep_id << " ended " << SweepStateName(state)
                  << ": " << view.Summary() << "\n";
    context.out().flush();
  }
  return state == v1::SWEEP_STATE_SUCCEEDED ? kExitOk : kExitError;
}

Command WatchCommand() {
  Command command;
  command.spec.name = "watch";
  command.spec.args = "SWEEP";
  command.spec.min_args = command.spec.max_args = 1;
  command.spec.summary = "Follow a sweep's runs live until it ends";
  command.spec.description =
      "One line per run: a progress bar, epoch and step, the latest training "
      "loss, the\n"
      "best value of the sweep's metric, an ETA and the run's state. On a "
      "terminal the\n"
      "lines are redrawn in place; piped, a line is appended whenever a run "
      "changes\n"
      "state or finishes an epoch. With --output json, one JSON object per "
      "event.\n"
      "Ends when the sweep ends: exit status 0 when it SUCCEEDED, 1 when it "
      "FAILED or\n"
      "was CANCELLED. If lorad restarts, the watch resumes from the last "
      "event it saw.\n";
  command.spec.examples = {
      "loractl watch sw-3f2a9c41d07b5e6a8c11",
      "loractl watch sw-3f2a9c41d07b5e6a8c11 | tee watch.log",
      "loractl watch sw-3f2a9c41d07b5e6a8c11 --output json | jq .metric",
  };
  command.run = Watch;
  return command;
}

}  // namespace lora::loractl
