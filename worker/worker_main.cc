// lora-worker: registers with lorad, leases jobs that match its device and
// labels, trains each in a `lora-train` child process (job_runner.h), keeps
// its leases alive with heartbeats, and stops jobs when told to. SIGTERM
// drains: no new jobs, running children checkpoint, the checkpoints are
// uploaded and the runs given back to resume elsewhere; a second SIGTERM
// exits at once.
//
//   lora-worker --coordinator=lorad:7070 --token_file=/etc/lora/worker-token
//               --max_jobs=2 --threads_per_job=2 --work_dir=/var/lib/lora/work
//               --cache_dir=/var/cache/lora --labels=pool=cpu,zone=a
#include <spdlog/spdlog.h>
#include <unistd.h>

#include <atomic>
#include <csignal>
#include <cstdlib>
#include <list>
#include <memory>
#include <string>
#include <thread>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/flags/usage_config.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "base/file_util.h"
#include "base/grpc_status.h"
#include "base/metrics.h"
#include "base/metrics_http.h"
#include "base/status_macros.h"
#include "worker/artifact_transfer.h"
#include "worker/coordinator_channel.h"
#include "worker/cpu_budget.h"
#include "worker/job_runner.h"

ABSL_FLAG(std::string, coordinator, "127.0.0.1:7070", "lorad's gRPC address");
ABSL_FLAG(std::string, token_file, "",
          "file holding the worker token (or set LORA_WORKER_TOKEN)");
ABSL_FLAG(std::string, tls_ca, "", "CA of the coordinator's certificate (TLS)");
ABSL_FLAG(std::string, tls_cert, "", "client certificate (mutual TLS)");
ABSL_FLAG(std::string, tls_key, "", "client key (mutual TLS)");
ABSL_FLAG(std::string, name, "", "worker name (default: the host name)");
ABSL_FLAG(std::string, device, "cpu", "cpu, cuda or cuda:N");
ABSL_FLAG(int32_t, max_jobs, 1, "jobs trained at the same time");
ABSL_FLAG(int32_t, threads_per_job, 2, "CPU threads of each job");
ABSL_FLAG(std::string, work_dir, "lora-worker-work", "jobs' folders");
ABSL_FLAG(std::string, cache_dir, "lora-worker-cache",
          "content-addressed cache of fetched artifacts (may be shared)");
ABSL_FLAG(std::string, labels, "", "labels k=v,k=v matched against sweeps");
ABSL_FLAG(std::string, lora_train, "",
          "the lora-train binary (default: next to lora-worker, else "
          "bazel-bin/lora_core/lora-train)");
ABSL_FLAG(std::string, http, "127.0.0.1:9465",
          "HTTP address for /metrics, /healthz, /readyz ('' = off)");
ABSL_FLAG(absl::Duration, hang_timeout, absl::Minutes(10),
          "kill a job that writes no metrics for this long");
ABSL_FLAG(absl::Duration, startup_timeout, absl::Minutes(10),
          "time a job may take to write its first metrics (loading, "
          "tokenising) before it counts as hung");
ABSL_FLAG(absl::Duration, stop_grace, absl::Seconds(30),
          "SIGTERM -> SIGKILL grace when a job must stop");

namespace lora::worker {
namespace {

std::atomic<int> terms{0};
void OnTerm(int) { terms.fetch_add(1); }

std::string DefaultLoraTrain(const char* argv0) {
  char self[4096];
  const ssize_t n = readlink("/proc/self/exe", self, sizeof(self) - 1);
  if (n > 0) {
    self[n] = '\0';
    std::string dir(self);
    dir = dir.substr(0, dir.rfind('/'));
    for (const std::string& candidate :
         {dir + "/lora-train", dir + "/../lora_core/lora-train"}) {
      if (access(candidate.c_str(), X_OK) == 0) return candidate;
    }
  }
  (void)argv0;
  return "bazel-bin/lora_core/lora-train";
}

struct WorkerMetrics {
  std::shared_ptr<metrics::Gauge> jobs_running;
  std::shared_ptr<metrics::Histogram> step_seconds;
  std::shared_ptr<metrics::CounterFamily> child_exits;
  std::shared_ptr<metrics::Counter> bytes_fetched;
  std::shared_ptr<metrics::Counter> bytes_uploaded;
};

absl::StatusOr<WorkerMetrics> RegisterMetrics(metrics::Registry* registry) {
  WorkerMetrics m;
  LORA_ASSIGN_OR_RETURN(auto running,
                        registry->AddGauge("lora_worker_jobs_running",
                                           "Training jobs running now."));
  m.jobs_running = running->WithLabels({});
  LORA_ASSIGN_OR_RETURN(std::vector<double> buckets,
                        metrics::ExponentialBuckets(0.005, 2, 14));
  LORA_ASSIGN_OR_RETURN(
      auto step_seconds,
      registry->AddHistogram("lora_worker_step_seconds",
                             "Wall time of one training step (optimizer "
                             "step) of the jobs on this worker.",
                             {}, buckets));
  m.step_seconds = step_seconds->WithLabels({});
  LORA_ASSIGN_OR_RETURN(
      m.child_exits,
      registry->AddCounter("lora_worker_child_exits_total",
                           "Training children that ended, by reason.",
                           {"reason"}));
  LORA_ASSIGN_OR_RETURN(
      auto fetched,
      registry->AddCounter("lora_worker_artifact_download_bytes_total",
                           "Artifact bytes downloaded into the cache."));
  m.bytes_fetched = fetched->WithLabels({});
  LORA_ASSIGN_OR_RETURN(
      auto uploaded,
      registry->AddCounter("lora_worker_artifact_upload_bytes_total",
                           "Artifact bytes uploaded (checkpoints, adapters, "
                           "logs)."));
  m.bytes_uploaded = uploaded->WithLabels({});
  return m;
}

int Serve(const char* argv0) {
  ChannelOptions channel_options;
  channel_options.address = absl::GetFlag(FLAGS_coordinator);
  if (const char* token = std::getenv("LORA_WORKER_TOKEN")) {
    channel_options.token = token;
  }
  if (!absl::GetFlag(FLAGS_token_file).empty()) {
    absl::StatusOr<std::string> token =
        ReadFile(absl::GetFlag(FLAGS_token_file));
    if (!token.ok()) {
      spdlog::critical("--token_file: {}", token.status().ToString());
      return 2;
    }
    channel_options.token = std::string(absl::StripAsciiWhitespace(*token));
  }
  channel_options.tls_ca_file = absl::GetFlag(FLAGS_tls_ca);
  channel_options.tls_cert_file = absl::GetFlag(FLAGS_tls_cert);
  channel_options.tls_key_file = absl::GetFlag(FLAGS_tls_key);
  absl::StatusOr<std::unique_ptr<CoordinatorChannel>> channel =
      CoordinatorChannel::Create(channel_options);
  if (!channel.ok()) {
    spdlog::critical("{}", channel.status().ToString());
    return 2;
  }

  metrics::Registry registry;
  absl::StatusOr<WorkerMetrics> worker_metrics = RegisterMetrics(&registry);
  if (!worker_metrics.ok()) {
    spdlog::critical("metrics: {}", worker_metrics.status().ToString());
    return 1;
  }
  ArtifactCacheOptions cache_options;
  cache_options.dir = absl::GetFlag(FLAGS_cache_dir);
  cache_options.download_timeout = absl::Minutes(30);
  cache_options.on_bytes_downloaded = [m = *worker_metrics](int64_t bytes) {
    m.bytes_fetched->Increment(static_cast<double>(bytes));
  };
  absl::StatusOr<std::unique_ptr<ArtifactCache>> cache =
      ArtifactCache::Open(cache_options);
  if (!cache.ok()) {
    spdlog::critical("--cache_dir: {}", cache.status().ToString());
    return 1;
  }

  std::string name = absl::GetFlag(FLAGS_name);
  if (name.empty()) {
    char host[256] = {0};
    gethostname(host, sizeof(host) - 1);
    name = host;
  }
  v1::RegisterWorkerRequest registration;
  registration.set_name(name);
  v1::WorkerCapabilities& caps = *registration.mutable_capabilities();
  const std::string device = absl::GetFlag(FLAGS_device);
  caps.set_device(device.rfind("cuda", 0) == 0 ? v1::DEVICE_KIND_CUDA
                                               : v1::DEVICE_KIND_CPU);
  caps.set_gpu_count(device.rfind("cuda", 0) == 0 ? 1 : 0);
  caps.set_cpu_threads(
      static_cast<int32_t>(std::thread::hardware_concurrency()));
  caps.set_max_concurrent_jobs(absl::GetFlag(FLAGS_max_jobs));
  caps.set_libtorch_version("1.13");
  caps.set_worker_version("lora-worker 0.1");
  for (absl::string_view pair :
       absl::StrSplit(absl::GetFlag(FLAGS_labels), ',', absl::SkipEmpty())) {
    std::pair<std::string, std::string> kv =
        absl::StrSplit(pair, absl::MaxSplits('=', 1));
    if (kv.first.empty() || kv.second.empty()) {
      spdlog::critical("--labels: expected k=v, got \"{}\"", std::string(pair));
      return 2;
    }
    (*caps.mutable_labels())[kv.first] = kv.second;
  }

  // /healthz and /metrics from the start; /readyz once registered and while
  // heartbeats reach the coordinator (what a Kubernetes readiness probe
  // and a load balancer want to know).
  std::atomic<bool> registered_ok{false};
  std::atomic<bool> heartbeat_ok{false};
  metrics::MetricsHttpServer http(&registry, [&]() -> absl::Status {
    if (!registered_ok.load()) {
      return absl::UnavailableError("not registered with the coordinator yet");
    }
    if (!heartbeat_ok.load()) {
      return absl::UnavailableError(
          "the last heartbeat did not reach the "
          "coordinator");
    }
    return absl::OkStatus();
  });
  if (!absl::GetFlag(FLAGS_http).empty()) {
    const std::string address = absl::GetFlag(FLAGS_http);
    int port = 0;
    const size_t colon = address.rfind(':');
    if (colon == std::string::npos ||
        !absl::SimpleAtoi(address.substr(colon + 1), &port)) {
      spdlog::critical("--http: expected host:port, got \"{}\"", address);
      return 2;
    }
    if (absl::Status started = http.Start(address.substr(0, colon), port);
        !started.ok()) {
      spdlog::critical("--http: {}", started.ToString());
      return 1;
    }
  }

  std::signal(SIGTERM, OnTerm);
  std::signal(SIGINT, OnTerm);
  // Register, retrying while the coordinator is unreachable.
  v1::RegisterWorkerResponse registered;
  auto do_register = [&]() -> grpc::Status {
    auto context = (*channel)->NewContext(absl::Seconds(10));
    return (*channel)->stub()->RegisterWorker(context.get(), registration,
                                              &registered);
  };
  absl::Duration backoff = absl::Milliseconds(200);
  while (true) {
    grpc::Status status = do_register();
    if (status.ok()) break;
    if (status.error_code() != grpc::StatusCode::UNAVAILABLE &&
        status.error_code() != grpc::StatusCode::DEADLINE_EXCEEDED) {
      spdlog::critical("registering with {}: {}", channel_options.address,
                       status.error_message());
      return 1;
    }
    if (terms.load() > 0) return 0;
    absl::SleepFor(backoff);
    backoff = std::min(backoff * 2, absl::Seconds(5));
  }
  const std::string worker_id = registered.worker_id();
  const absl::Duration heartbeat =
      absl::Seconds(registered.heartbeat_interval().seconds()) +
      absl::Nanoseconds(registered.heartbeat_interval().nanos());
  spdlog::info("worker {} registered as {} with {}", name, worker_id,
               channel_options.address);
  registered_ok.store(true);
  heartbeat_ok.store(true);

  JobRunnerOptions job_options;
  job_options.lora_train = absl::GetFlag(FLAGS_lora_train).empty()
                               ? DefaultLoraTrain(argv0)
                               : absl::GetFlag(FLAGS_lora_train);
  job_options.work_dir = absl::GetFlag(FLAGS_work_dir);
  job_options.threads = absl::GetFlag(FLAGS_threads_per_job);
  job_options.device = device;
  // Jobs whose threads outnumber the cores get sleeping OpenMP waits
  // (cpu_budget.h), unless the operator chose a policy for the worker.
  const int64_t cores = std::thread::hardware_concurrency();
  const int32_t max_jobs = absl::GetFlag(FLAGS_max_jobs);
  const std::string policy =
      ChildOmpWaitPolicy(max_jobs, job_options.threads, cores);
  if (!policy.empty()) {
    const char* chosen = std::getenv("OMP_WAIT_POLICY");
    if (chosen == nullptr) job_options.omp_wait_policy = policy;
    spdlog::warn(
        "--max_jobs={} x --threads_per_job={} threads for {} cores: jobs "
        "will slow each other down; their children run with "
        "OMP_WAIT_POLICY={}",
        max_jobs, job_options.threads, cores,
        chosen != nullptr ? chosen : policy);
  }
  job_options.hang_timeout = absl::GetFlag(FLAGS_hang_timeout);
  job_options.startup_timeout = absl::GetFlag(FLAGS_startup_timeout);
  job_options.stop_grace = absl::GetFlag(FLAGS_stop_grace);
  job_options.on_child_exit = [m = *worker_metrics](const std::string& why) {
    m.child_exits->WithLabels({why})->Increment();
  };
  job_options.on_bytes_uploaded = [m = *worker_metrics](int64_t bytes) {
    m.bytes_uploaded->Increment(static_cast<double>(bytes));
  };
  job_options.on_step_seconds = [m = *worker_metrics](double seconds) {
    m.step_seconds->Observe(seconds);
  };

  absl::Mutex mutex;
  std::list<std::unique_ptr<JobRunner>> jobs;  // guarded by mutex
  // Training throughput over the running jobs, at each scrape.
  if (absl::Status added = registry.AddCallbackGauge(
          "lora_worker_tokens_per_second",
          "Training tokens per second, summed over the running jobs (each "
          "job's latest step).",
          {},
          [&mutex, &jobs] {
            double total = 0;
            absl::MutexLock lock(&mutex);
            for (const auto& job : jobs) {
              if (!job->done()) total += job->tokens_per_second();
            }
            return std::vector<metrics::Sample>{{{}, total}};
          });
      !added.ok()) {
    spdlog::critical("metrics: {}", added.ToString());
    return 1;
  }
  std::atomic<bool> stopping{false};

  // Heartbeats: keep leases alive and pass on stop orders.
  std::thread heartbeats([&] {
    while (!stopping.load()) {
      v1::HeartbeatRequest request;
      request.set_worker_id(worker_id);
      {
        absl::MutexLock lock(&mutex);
        for (const auto& job : jobs) {
          if (!job->done()) *request.add_leases() = job->HeldLease();
        }
        request.set_free_slots(static_cast<int32_t>(std::max<int64_t>(
            0, absl::GetFlag(FLAGS_max_jobs) - request.leases_size())));
      }
      v1::HeartbeatResponse response;
      auto context = (*channel)->NewContext(heartbeat);
      grpc::Status status =
          (*channel)->stub()->Heartbeat(context.get(), request, &response);
      if (status.error_code() == grpc::StatusCode::NOT_FOUND) {
        // The coordinator forgot us: same name, same id.
        status = do_register();
      }
      heartbeat_ok.store(status.ok());
      {
        absl::MutexLock lock(&mutex);
        for (const v1::StopCommand& stop : response.stop()) {
          for (const auto& job : jobs) {
            if (job->job().run().run_id() == stop.run_id() &&
                job->job().attempt() == stop.attempt()) {
              spdlog::info("stopping run {} attempt {}: {}", stop.run_id(),
                           stop.attempt(), stop.reason());
              job->RequestStop(stop.reason());
            }
          }
        }
      }
      absl::SleepFor(heartbeat);
    }
  });

  // Lease jobs while there is room (max_jobs, above), until SIGTERM.
  while (terms.load() == 0) {
    int running = 0;
    {
      absl::MutexLock lock(&mutex);
      for (auto it = jobs.begin(); it != jobs.end();) {
        if ((*it)->done()) {
          spdlog::info("run {} attempt {} ended: {}",
                       (*it)->job().run().run_id(), (*it)->job().attempt(),
                       (*it)->outcome());
          it = jobs.erase(it);
        } else {
          ++running;
          ++it;
        }
      }
      worker_metrics->jobs_running->Set(running);
    }
    if (running >= max_jobs) {
      absl::SleepFor(absl::Milliseconds(200));
      continue;
    }
    v1::AcquireJobRequest request;
    request.set_worker_id(worker_id);
    request.mutable_wait()->set_seconds(2);
    v1::AcquireJobResponse response;
    auto context = (*channel)->NewContext(absl::Seconds(10));
    grpc::Status status =
        (*channel)->stub()->AcquireJob(context.get(), request, &response);
    if (!status.ok()) {
      if (status.error_code() == grpc::StatusCode::NOT_FOUND) do_register();
      absl::SleepFor(absl::Milliseconds(500));
      continue;
    }
    if (!response.has_job()) continue;
    spdlog::info("leased run {} attempt {} (sweep {})",
                 response.job().run().run_id(), response.job().attempt(),
                 response.job().run().sweep_id());
    auto job = std::make_unique<JobRunner>(channel->get(), cache->get(),
                                           response.job(), job_options);
    job->Start();
    absl::MutexLock lock(&mutex);
    jobs.push_back(std::move(job));
  }

  // Draining: children checkpoint, checkpoints are uploaded, runs go back.
  spdlog::info("draining: {} job(s) to hand back", [&] {
    absl::MutexLock lock(&mutex);
    return jobs.size();
  }());
  {
    absl::MutexLock lock(&mutex);
    for (const auto& job : jobs) job->RequestStop("draining");
  }
  while (terms.load() < 2) {
    bool all_done = true;
    {
      absl::MutexLock lock(&mutex);
      for (const auto& job : jobs) all_done = all_done && job->done();
    }
    if (all_done) break;
    absl::SleepFor(absl::Milliseconds(100));
  }
  if (terms.load() >= 2) {
    spdlog::warn("second signal: exiting now");
    std::_Exit(1);  // children die with their process groups' parent
  }
  stopping.store(true);
  heartbeats.join();
  {
    absl::MutexLock lock(&mutex);
    jobs.clear();
  }
  http.Stop();
  registry.Unregister("lora_worker_tokens_per_second");
  spdlog::info("worker {} stopped", name);
  return 0;
}

}  // namespace
}  // namespace lora::worker

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "lora-sweep worker: trains leased runs in lora-train child processes.\n\n"
      "  lora-worker --coordinator=HOST:7070 --token_file=FILE --max_jobs=2");
  // absl's --help lists the flags of files named after the program
  // (lora-worker.cc, lora-worker_main.cc); this one is worker_main.cc.
  absl::FlagsUsageConfig usage;
  usage.contains_help_flags = [](absl::string_view file) {
    return absl::EndsWith(file, "worker/worker_main.cc");
  };
  usage.contains_helpshort_flags = usage.contains_help_flags;
  absl::SetFlagsUsageConfig(usage);
  absl::ParseCommandLine(argc, argv);
  return lora::worker::Serve(argv[0]);
}
