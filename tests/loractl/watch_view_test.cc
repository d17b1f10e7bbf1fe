// `watch`'s per-run lines (loractl/watch_view.h) from literal events:
// progress bar, epoch and step, loss, best metric, ETA, state.
#include "loractl/watch_view.h"

#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace lora::loractl {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

v1::Run MakeRun(const std::string& id, int index, int rank) {
  v1::Run run;
  run.set_run_id(id);
  run.set_index(index);
  (*run.mutable_parameters())["lora.rank"].set_number_value(rank);
  run.mutable_config()->set_epochs(2);
  run.mutable_config()->set_batch_size(8);
  run.mutable_config()->set_task("polarity");
  run.set_state(v1::RUN_STATE_PENDING);
  run.set_attempt(1);
  return run;
}

class WatchViewTest : public ::testing::Test {
 protected:
  WatchViewTest() {
    sweep_.set_sweep_id("sw-1");
    sweep_.set_name("ablation");
    sweep_.set_state(v1::SWEEP_STATE_PENDING);
    sweep_.mutable_metric()->set_name("val_accuracy");
    sweep_.mutable_metric()->set_goal(v1::METRIC_GOAL_MAXIMIZE);
  }

  v1::SweepEvent State(const std::string& run, v1::RunState state,
                       int attempt = 1) {
    v1::SweepEvent event;
    event.set_sequence(++sequence_);
    event.mutable_time()->set_seconds(1000 + sequence_);
    event.mutable_run_state()->set_run_id(run);
    event.mutable_run_state()->set_state(state);
    event.mutable_run_state()->set_attempt(attempt);
    return event;
  }

  v1::SweepEvent Metric(const std::string& run, const std::string& name,
                        int64_t step, int epoch, double value, int64_t seconds,
                        int attempt = 1) {
    v1::SweepEvent event;
    event.set_sequence(++sequence_);
    event.mutable_time()->set_seconds(5000);
    v1::RunMetric& metric = *event.mutable_metric();
    metric.set_run_id(run);
    metric.set_attempt(attempt);
    metric.mutable_point()->set_name(name);
    metric.mutable_point()->set_step(step);
    metric.mutable_point()->set_epoch(epoch);
    metric.mutable_point()->set_value(value);
    metric.mutable_point()->mutable_time()->set_seconds(seconds);
    return event;
  }

  v1::Sweep sweep_;
  int64_t sequence_ = 0;
};

TEST_F(WatchViewTest, ALineShowsProgressEpochStepLossBestEtaAndState) {
  SweepWatchView view(sweep_, {MakeRun("run-a", 0, 4), MakeRun("run-b", 1, 8)},
                      10);
  EXPECT_THAT(view.RunLine("run-a"),
              HasSubstr("#0 lora.rank=4  [..........]   0%  epoch -/2"));
  EXPECT_TRUE(view.Apply(State("run-a", v1::RUN_STATE_RUNNING)).noteworthy);
  // Epoch 1: steps 1..10 over 10 s, then its evaluation.
  for (int step = 1; step <= 10; ++step) {
    EXPECT_FALSE(
        view.Apply(Metric("run-a", "loss", step, 1, 1.0 / step, 100 + step))
            .noteworthy);
  }
  EXPECT_TRUE(view.Apply(Metric("run-a", "val_accuracy", 10, 1, 0.8125, 110))
                  .noteworthy);
  const std::string line = view.RunLine("run-a");
  // 10 of 20 steps: half the bar, 9 steps in 9 s, 10 steps left: 10 s.
  EXPECT_THAT(line, HasSubstr("[#####.....]  50%"));
  EXPECT_THAT(line, HasSubstr("epoch 1/2"));
  EXPECT_THAT(line, HasSubstr("step 10"));
  EXPECT_THAT(line, HasSubstr("loss 0.1000"));
  EXPECT_THAT(line, HasSubstr("best val_accuracy 81.25%"));
  EXPECT_THAT(line, HasSubstr("ETA 10s"));
  EXPECT_THAT(line, HasSubstr("RUNNING"));

  // A worse evaluation keeps the best; success fills the bar.
  view.Apply(Metric("run-a", "loss", 20, 2, 0.05, 121));
  view.Apply(Metric("run-a", "val_accuracy", 20, 2, 0.75, 121));
  view.Apply(State("run-a", v1::RUN_STATE_SUCCEEDED));
  const std::string done = view.RunLine("run-a");
  EXPECT_THAT(done, HasSubstr("[##########] 100%"));
  EXPECT_THAT(done, HasSubstr("best val_accuracy 81.25%"));
  EXPECT_THAT(done, HasSubstr("ETA -"));
  EXPECT_THAT(done, HasSubstr("SUCCEEDED"));
  EXPECT_EQ(view.Summary(), "1/2 done: 1 succeeded, 1 pending");
}

TEST_F(WatchViewTest, StepsPerEpochAreSharedByRunsOfTheSameData) {
  SweepWatchView view(sweep_, {MakeRun("run-a", 0, 1), MakeRun("run-b", 1, 2)},
                      10);
  view.Apply(Metric("run-a", "train_loss", 10, 1, 0.5, 100));
  view.Apply(Metric("run-b", "loss", 5, 1, 0.7, 100));
  // run-b has not finished an epoch, but run-a says 10 steps per epoch.
  EXPECT_THAT(view.RunLine("run-b"), HasSubstr("[##........]  25%"));
  // A run's own estimate wins once it has one; train_loss shows as loss
  // until per-step losses arrive.
  EXPECT_THAT(view.RunLine("run-a"), HasSubstr("loss 0.5000"));
}

TEST_F(WatchViewTest, ANewAttemptRestartsTheEtaAndShowsInTheLine) {
  SweepWatchView view(sweep_, {MakeRun("run-a", 0, 1)}, 10);
  view.Apply(State("run-a", v1::RUN_STATE_RUNNING));
  view.Apply(Metric("run-a", "loss", 1, 1, 1.0, 100));
  view.Apply(Metric("run-a", "loss", 10, 1, 1.0, 109));
  view.Apply(Metric("run-a", "train_loss", 10, 1, 1.0, 109));
  EXPECT_THAT(view.RunLine("run-a"), HasSubstr("ETA 10s"));
  EXPECT_TRUE(view.Apply(State("run-a", v1::RUN_STATE_PENDING, 2)).noteworthy);
  EXPECT_THAT(view.RunLine("run-a"), HasSubstr("PENDING (attempt 2)"));
  view.Apply(State("run-a", v1::RUN_STATE_RUNNING, 2));
  view.Apply(Metric("run-a", "loss", 11, 2, 1.0, 500, 2));
  EXPECT_THAT(view.RunLine("run-a"), HasSubstr("ETA ?"));
}

TEST_F(WatchViewTest, FailedRunsShowTheirErrorAndTheSweepStateIsTracked) {
  SweepWatchView view(sweep_, {MakeRun("run-a", 0, 1)}, 10);
  v1::SweepEvent failed = State("run-a", v1::RUN_STATE_FAILED);
  failed.mutable_run_state()->set_error("exit status 1\ntraceback...");
  view.Apply(failed);
  EXPECT_THAT(view.RunLine("run-a"), HasSubstr("FAILED: exit status 1"));
  EXPECT_THAT(view.RunLine("run-a"), Not(HasSubstr("traceback")));
  v1::SweepEvent sweep_event;
  sweep_event.set_sequence(++sequence_);
  sweep_event.mutable_sweep_state()->set_state(v1::SWEEP_STATE_FAILED);
  EXPECT_TRUE(view.Apply(sweep_event).sweep_state_changed);
  EXPECT_EQ(view.sweep_state(), v1::SWEEP_STATE_FAILED);
  EXPECT_EQ(view.last_sequence(), sequence_);
  EXPECT_THAT(view.Header(),
              HasSubstr("sweep sw-1 (ablation): FAILED, 1 runs, metric "
                        "val_accuracy (maximize)"));
  // Events of runs the view does not know change nothing.
  EXPECT_EQ(view.Apply(State("run-x", v1::RUN_STATE_RUNNING)).run_id, "");
}

TEST_F(WatchViewTest, LinesAreAlignedAcrossRuns) {
  SweepWatchView view(sweep_, {MakeRun("run-a", 0, 1), MakeRun("run-b", 1, 16)},
                      10);
  const std::vector<std::string> lines = view.RunLines();
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0].find('['), lines[1].find('['));
  EXPECT_EQ(lines[0].find("ETA"), lines[1].find("ETA"));
}

}  // namespace
}  // namespace lora::loractl
