// WatchSweep back-pressure: a watcher that falls more events behind the
// sweep's newest than --watch_max_lag_events is ended with
// RESOURCE_EXHAUSTED naming the sequence to resume from, and resuming from
// it misses nothing and repeats nothing.
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/lorad_process.h"
#include "tests/integration/test_clients.h"

namespace lora::integration {
namespace {

using ::testing::HasSubstr;

TEST(WatchBackpressureTest, ALaggingWatcherIsEndedAndResumesExactly) {
  LoradOptions options;
  options.dir = FreshTestDir("watch_backpressure");
  options.lease_ttl = "10s";
  options.extra_flags = {"--watch_max_lag_events=10",
                         "--watch_buffer_events=2"};
  auto lorad = LoradProcess::Start(options);
  ASSERT_TRUE(lorad.ok()) << lorad.status();
  auto sweeps = (*lorad)->SweepStub();
  v1::SubmitSweepResponse submitted;
  ASSERT_TRUE(SubmitYaml(sweeps.get(),
                         "name: lag\nmodel: roberta-tiny\ntask: polarity\n",
                         &submitted)
                  .ok());
  const std::string sweep_id = submitted.sweep().sweep_id();
  TestWorker worker((*lorad)->NewChannel(), "w");
  ASSERT_TRUE(worker.Register().ok());
  v1::AcquireJobResponse acquired;
  ASSERT_TRUE(worker.Acquire(absl::Seconds(5), &acquired).ok());
  ASSERT_TRUE(acquired.has_job());

  // A watcher that reads one event, then nothing while 60 points land in
  // one batch.
  grpc::ClientContext context;
  PrepareContext(&context, "", absl::Seconds(30));
  v1::WatchSweepRequest request;
  request.set_sweep_id(sweep_id);
  request.set_include_metrics(true);
  auto reader = sweeps->WatchSweep(&context, request);
  std::vector<v1::SweepEvent> seen;
  v1::SweepEvent event;
  ASSERT_TRUE(reader->Read(&event));
  seen.push_back(event);
  auto progress = worker.OpenProgress();
  std::vector<v1::MetricPoint> points;
  for (int step = 1; step <= 60; ++step) {
    points.push_back(Point("loss", step, 1, 1.0 / step));
  }
  v1::ProgressAck ack;
  ASSERT_TRUE(progress->Send(Batch(acquired.job(), 1, points), &ack));
  EXPECT_EQ(ack.acked_sequence(), 1);
  while (reader->Read(&event)) seen.push_back(event);
  grpc::Status ended = reader->Finish();
  EXPECT_EQ(ended.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED);
  const int64_t last = seen.back().sequence();
  EXPECT_THAT(ended.error_message(),
              HasSubstr("resume with after_sequence=" + std::to_string(last)));
  EXPECT_LT(seen.size(), 20u);

  // Finish the run; resuming from the last sequence seen gives exactly the
  // rest, in order, with no gap.
  ASSERT_TRUE(progress->Close().ok());
  v1::FinishRunResponse finished;
  grpc::Status finish =
      worker.Finish(acquired.job(), v1::RUN_OUTCOME_SUCCEEDED, &finished);
  ASSERT_TRUE(finish.ok()) << finish.error_message();
  // The resumed watcher keeps up (it reads as fast as events come), but
  // the sweep's whole backlog is far more than the lag limit: resume in
  // steps, as a client would, until the sweep ends.
  int64_t after = last;
  std::vector<v1::SweepEvent> rest;
  for (int attempt = 0; attempt < 100; ++attempt) {
    WatchResult more = WatchToEnd(sweeps.get(), sweep_id, after, true);
    for (const v1::SweepEvent& e : more.events) rest.push_back(e);
    if (!more.events.empty()) after = more.events.back().sequence();
    if (more.status.ok()) break;
    ASSERT_EQ(more.status.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED)
        << more.status.error_message();
  }
  ASSERT_FALSE(rest.empty());
  int64_t expected = last + 1;
  for (const v1::SweepEvent& e : rest) EXPECT_EQ(e.sequence(), expected++);
  int loss_points = 0;
  for (const v1::SweepEvent& e : seen) loss_points += e.has_metric();
  for (const v1::SweepEvent& e : rest) loss_points += e.has_metric();
  EXPECT_EQ(loss_points, 60);
  EXPECT_TRUE(rest.back().has_sweep_state());
  reader.reset();
  progress.reset();
  EXPECT_TRUE((*lorad)->Stop().ok());
}

}  // namespace
}  // namespace lora::integration
