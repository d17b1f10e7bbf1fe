// lorad: the lora-sweep coordinator daemon. Serves SweepService and
// WorkerService (plus grpc.health.v1 and reflection) over gRPC, and
// /metrics, /healthz and /readyz over HTTP; keeps every sweep, run, metric
// point and artifact record in SQLite, so it can be killed at any moment
// and restarted without losing or duplicating anything.
//
//   lorad --listen=0.0.0.0:7070 --db=/var/lib/lora/runs.db
//         --artifact_root=/var/lib/lora/artifacts --http=0.0.0.0:9464
//         --tokens_file=/etc/lora/tokens
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/security/server_credentials.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "base/file_util.h"
#include "base/metrics.h"
#include "base/metrics_http.h"
#include "base/status_macros.h"
#include "coordinator/artifact_store.h"
#include "coordinator/auth.h"
#include "coordinator/coordinator.h"
#include "coordinator/coordinator_metrics.h"
#include "coordinator/grpc_services.h"
#include "coordinator/measured_run_store.h"
#include "coordinator/memory_run_store.h"
#include "coordinator/sqlite_run_store.h"

ABSL_FLAG(std::string, listen, "127.0.0.1:7070",
          "gRPC address (host:port; port 0 picks a free port)");
ABSL_FLAG(std::string, db, "lorad.db",
          "SQLite database file (created if missing); ':memory:' keeps "
          "everything in memory (tests only: nothing survives a restart)");
ABSL_FLAG(std::string, artifact_root, "lorad-artifacts",
          "folder holding uploaded artifacts by sha256");
ABSL_FLAG(std::string, http, "127.0.0.1:9464",
          "HTTP address for /metrics, /healthz, /readyz ('' = off)");
ABSL_FLAG(std::string, tokens_file, "",
          "bearer tokens file (lines '<role> <token> [name]', roles client, "
          "worker, admin; mode 0600); empty = no authentication");
ABSL_FLAG(std::string, tls_cert, "", "server certificate (PEM) for TLS");
ABSL_FLAG(std::string, tls_key, "", "server private key (PEM) for TLS");
ABSL_FLAG(std::string, tls_client_ca, "",
          "CA (PEM) that client certificates must chain to: mutual TLS");
ABSL_FLAG(absl::Duration, heartbeat_interval, absl::Seconds(5),
          "how often workers must heartbeat");
ABSL_FLAG(absl::Duration, lease_ttl, absl::Seconds(30),
          "a lease not renewed for this long expires (>= 5 heartbeats)");
ABSL_FLAG(absl::Duration, stall_after, absl::Minutes(10),
          "a running run without progress for this long counts as stalled");
ABSL_FLAG(absl::Duration, retention, absl::Hours(24),
          "finished sweeps leave the per-sweep metrics after this long");
ABSL_FLAG(int64_t, max_runs, 10000, "largest sweep accepted (runs)");
ABSL_FLAG(int64_t, max_message_bytes, 8 << 20, "largest gRPC message accepted");
ABSL_FLAG(int64_t, watch_max_lag_events, 1000000,
          "a WatchSweep client more than this many events behind the "
          "sweep's newest (checked between writes) is ended with "
          "RESOURCE_EXHAUSTED and resumes from its last sequence");
ABSL_FLAG(int64_t, watch_buffer_events, 256,
          "events read from the store per watcher at a time");
ABSL_FLAG(std::string, ports_file, "",
          "write 'grpc=<port>\\nhttp=<port>\\n' here once serving (tests)");

namespace lora::coordinator {
namespace {

std::atomic<bool> stop_requested{false};

void OnSignal(int) { stop_requested.store(true); }

// "host:port" -> (host, port).
absl::StatusOr<std::pair<std::string, int>> SplitAddress(
    const std::string& address) {
  const size_t colon = address.rfind(':');
  int port = 0;
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 ||
      port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("expected host:port, got \"", address, "\""));
  }
  return std::make_pair(address.substr(0, colon), port);
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials() {
  const std::string cert = absl::GetFlag(FLAGS_tls_cert);
  const std::string key = absl::GetFlag(FLAGS_tls_key);
  const std::string client_ca = absl::GetFlag(FLAGS_tls_client_ca);
  if (cert.empty() && key.empty()) {
    if (!client_ca.empty()) {
      return absl::InvalidArgumentError(
          "--tls_client_ca needs --tls_cert and --tls_key");
    }
    return grpc::InsecureServerCredentials();
  }
  if (cert.empty() || key.empty()) {
    return absl::InvalidArgumentError("--tls_cert and --tls_key go together");
  }
  grpc::SslServerCredentialsOptions options;
  LORA_ASSIGN_OR_RETURN(std::string cert_pem, ReadFile(cert));
  LORA_ASSIGN_OR_RETURN(std::string key_pem, ReadFile(key));
  options.pem_key_cert_pairs.push_back({key_pem, cert_pem});
  if (!client_ca.empty()) {
    LORA_ASSIGN_OR_RETURN(options.pem_root_certs, ReadFile(client_ca));
    options.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(options);
}

int Serve() {
  std::unique_ptr<RunStore> store;
  const std::string db = absl::GetFlag(FLAGS_db);
  if (db == ":memory:") {
    store = std::make_unique<MemoryRunStore>();
  } else {
    absl::StatusOr<std::unique_ptr<SqliteRunStore>> opened =
        SqliteRunStore::Open(db);
    if (!opened.ok()) {
      spdlog::critical("cannot open the run store: {}",
                       opened.status().ToString());
      return 1;
    }
    store = std::move(*opened);
  }
  absl::StatusOr<std::unique_ptr<ArtifactStore>> artifacts =
      ArtifactStore::Open(absl::GetFlag(FLAGS_artifact_root), store.get());
  if (!artifacts.ok()) {
    spdlog::critical("cannot open the artifact store: {}",
                     artifacts.status().ToString());
    return 1;
  }
  TokenTable tokens;
  if (!absl::GetFlag(FLAGS_tokens_file).empty()) {
    absl::StatusOr<TokenTable> loaded =
        LoadTokens(absl::GetFlag(FLAGS_tokens_file));
    if (!loaded.ok()) {
      spdlog::critical("{}", loaded.status().ToString());
      return 1;
    }
    tokens = std::move(*loaded);
  }
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      Credentials();
  if (!credentials.ok()) {
    spdlog::critical("{}", credentials.status().ToString());
    return 1;
  }

  CoordinatorOptions options;
  options.timing.heartbeat_interval_ms =
      absl::ToInt64Milliseconds(absl::GetFlag(FLAGS_heartbeat_interval));
  options.timing.lease_ttl_ms =
      absl::ToInt64Milliseconds(absl::GetFlag(FLAGS_lease_ttl));
  options.stall_after_ms =
      absl::ToInt64Milliseconds(absl::GetFlag(FLAGS_stall_after));
  options.max_runs = absl::GetFlag(FLAGS_max_runs);
  if (absl::Status timing = ValidateLeaseTiming(options.timing); !timing.ok()) {
    spdlog::critical("--lease_ttl: {}", std::string(timing.message()));
    return 2;
  }
  RealClock clock;
  ArtifactStore* artifact_store = artifacts->get();
  // Every store step is timed for lora_store_transaction_seconds once the
  // metrics exist (they need the coordinator, which needs the store).
  std::atomic<CoordinatorMetrics*> metrics_sink{nullptr};
  MeasuredRunStore measured(store.get(),
                            [&metrics_sink](const char* op, double seconds) {
                              CoordinatorMetrics* sink = metrics_sink.load();
                              if (sink != nullptr)
                                sink->ObserveStore(op, seconds);
                            });
  Coordinator coordinator(
      &measured, &clock, options,
      [artifact_store](const std::string& id, const std::string& path) {
        return artifact_store->ReadFile(id, path);
      });

  metrics::Registry registry;
  absl::StatusOr<std::unique_ptr<CoordinatorMetrics>> coordinator_metrics =
      CoordinatorMetrics::Create(
          &registry, &coordinator,
          absl::ToInt64Milliseconds(absl::GetFlag(FLAGS_retention)));
  if (!coordinator_metrics.ok()) {
    spdlog::critical("metrics: {}", coordinator_metrics.status().ToString());
    return 1;
  }

  ServiceOptions service_options;
  service_options.watch_max_lag_events =
      absl::GetFlag(FLAGS_watch_max_lag_events);
  service_options.watch_buffer_events =
      absl::GetFlag(FLAGS_watch_buffer_events);
  if (tokens.enabled()) {
    service_options.authorize = [&tokens](const std::string& authorization,
                                          ApiKind api) -> absl::Status {
      LORA_ASSIGN_OR_RETURN(Principal principal,
                            tokens.Authenticate(authorization));
      return Authorize(principal, api == ApiKind::kSweepService
                                      ? Role::kClient
                                      : Role::kWorker);
    };
  }
  CoordinatorMetrics* metrics_ptr = coordinator_metrics->get();
  metrics_sink.store(metrics_ptr);
  service_options.observe_dispatch = [metrics_ptr](double seconds) {
    metrics_ptr->ObserveDispatch(seconds);
  };
  service_options.count_ingested = [metrics_ptr](int64_t points) {
    metrics_ptr->CountIngested(points);
  };
  CoordinatorServices services(&coordinator, artifact_store, service_options);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int grpc_port = 0;
  builder.AddListeningPort(absl::GetFlag(FLAGS_listen), *credentials,
                           &grpc_port);
  builder.SetMaxReceiveMessageSize(
      static_cast<int>(absl::GetFlag(FLAGS_max_message_bytes)));
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIME_MS, 30000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_TIMEOUT_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_KEEPALIVE_PERMIT_WITHOUT_CALLS, 1);
  builder.AddChannelArgument(
      GRPC_ARG_HTTP2_MIN_RECV_PING_INTERVAL_WITHOUT_DATA_MS, 10000);
  builder.AddChannelArgument(GRPC_ARG_MAX_CONCURRENT_STREAMS, 1000);
  builder.RegisterService(services.sweep_service());
  builder.RegisterService(services.worker_service());
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || grpc_port == 0) {
    spdlog::critical("cannot listen on {}", absl::GetFlag(FLAGS_listen));
    return 1;
  }
  services.Start();

  metrics::MetricsHttpServer http(&registry, [&coordinator]() -> absl::Status {
    if (coordinator.shutting_down()) {
      return absl::UnavailableError("shutting down");
    }
    return absl::OkStatus();
  });
  int http_port = 0;
  if (!absl::GetFlag(FLAGS_http).empty()) {
    absl::StatusOr<std::pair<std::string, int>> address =
        SplitAddress(absl::GetFlag(FLAGS_http));
    absl::Status started = address.ok()
                               ? http.Start(address->first, address->second)
                               : address.status();
    if (!started.ok()) {
      spdlog::critical("--http: {}", started.ToString());
      return 1;
    }
    http_port = http.port();
  }
  spdlog::info("lorad serving gRPC on port {} and HTTP on port {}; db {}",
               grpc_port, http_port, db);
  if (!absl::GetFlag(FLAGS_ports_file).empty()) {
    absl::Status written = WriteFileAtomically(
        absl::GetFlag(FLAGS_ports_file),
        absl::StrCat("grpc=", grpc_port, "\nhttp=", http_port, "\n"));
    if (!written.ok()) {
      spdlog::critical("--ports_file: {}", written.ToString());
      return 1;
    }
  }

  std::signal(SIGTERM, OnSignal);
  std::signal(SIGINT, OnSignal);
  while (!stop_requested.load()) absl::SleepFor(absl::Milliseconds(100));
  spdlog::info("lorad stopping: finishing calls in flight");
  services.Shutdown();
  server->Shutdown(std::chrono::system_clock::now() + std::chrono::seconds(5));
  http.Stop();
  metrics_sink.store(nullptr);
  spdlog::info("lorad stopped");
  return 0;
}

}  // namespace
}  // namespace lora::coordinator

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(
      "lora-sweep coordinator daemon.\n\n"
      "  lorad --listen=0.0.0.0:7070 --db=runs.db --artifact_root=artifacts "
      "--http=0.0.0.0:9464 --tokens_file=tokens");
  absl::ParseCommandLine(argc, argv);
  return lora::coordinator::Serve();
}
