// Runs the real `lorad` binary as a child process for integration tests:
// on 127.0.0.1 with port 0 for gRPC and HTTP, a SQLite file and an artifact
// root under a folder of the test's $TEST_TMPDIR. Start() waits for the
// ports file lorad writes once it serves; Stop() ends it with SIGTERM,
// Kill() with SIGKILL (a crash). Starting again on the same folder reopens
// the same database and artifacts, as a restarted daemon would.
//
// The binary is found through the test's runfiles: the cc_test must list
// "//coordinator:lorad" in `data`.
//
// Not thread-safe: one test thread owns a LoradProcess. The stubs it hands
// out are thread-safe, as gRPC stubs are.
#ifndef LORA_SWEEP_TESTS_INTEGRATION_LORAD_PROCESS_H_
#define LORA_SWEEP_TESTS_INTEGRATION_LORAD_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include <grpcpp/grpcpp.h>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "lora/v1/sweep_service.grpc.pb.h"
#include "lora/v1/worker_service.grpc.pb.h"

namespace lora::integration {

struct LoradOptions {
  // Holds runs.db, artifacts/, ports and lorad.log; created if missing.
  std::string dir;
  // --heartbeat_interval and --lease_ttl, as absl durations ("200ms").
  std::string heartbeat_interval = "200ms";
  std::string lease_ttl = "1s";
  // --tokens_file; "" = no authentication.
  std::string tokens_file;
  // More flags, e.g. "--retention=1h".
  std::vector<std::string> extra_flags;
  // How long Start() waits for the ports file.
  absl::Duration start_timeout = absl::Seconds(20);
  // How the test's channels connect (TLS tests set SSL credentials and
  // the name the server certificate carries); null = plain text.
  std::shared_ptr<grpc::ChannelCredentials> credentials;
  std::string tls_target_name;
};

// The runfiles path of lorad ($TEST_SRCDIR/$TEST_WORKSPACE/coordinator/lorad).
std::string LoradBinary();

// A fresh, empty folder $TEST_TMPDIR/<name> (removed first if it exists).
std::string FreshTestDir(const std::string& name);

// Adds "authorization: Bearer <token>" to `context` unless `token` is empty,
// and a deadline `timeout` from now.
void PrepareContext(grpc::ClientContext* context, const std::string& token,
                    absl::Duration timeout = absl::Seconds(15));

class LoradProcess {
 public:
  // Starts lorad and waits until it serves (ports file written, gRPC
  // channel connected). Errors: the binary exits early (its log tail in
  // the message) or the ports file does not appear within start_timeout.
  static absl::StatusOr<std::unique_ptr<LoradProcess>> Start(
      const LoradOptions& options);

  // Stops the daemon with SIGTERM if it still runs (SIGKILL after 10 s).
  ~LoradProcess();

  LoradProcess(const LoradProcess&) = delete;
  LoradProcess& operator=(const LoradProcess&) = delete;

  // SIGTERM, then waits for the exit; returns its exit status (an error
  // when it did not exit 0 within 10 s).
  absl::Status Stop();
  // SIGKILL and reap: a crash at an arbitrary point.
  void Kill();
  bool running() const { return pid_ > 0; }

  int grpc_port() const { return grpc_port_; }
  int http_port() const { return http_port_; }
  std::string grpc_address() const;
  const std::string& db_path() const { return db_path_; }
  const std::string& log_path() const { return log_path_; }
  // The daemon's log so far (stdout and stderr of every start in `dir`).
  std::string Log() const;

  // A new channel (its own connection) to the daemon.
  std::shared_ptr<grpc::Channel> NewChannel() const;
  std::unique_ptr<v1::SweepService::Stub> SweepStub() const;
  std::unique_ptr<v1::WorkerService::Stub> WorkerStub() const;

 private:
  LoradProcess() = default;
  // Waits up to `timeout` for the child to exit; true when it did.
  bool WaitForExit(absl::Duration timeout, int* wait_status);

  LoradOptions options_;
  pid_t pid_ = -1;
  int grpc_port_ = 0;
  int http_port_ = 0;
  std::string db_path_;
  std::string log_path_;
  std::shared_ptr<grpc::Channel> channel_;
};

}  // namespace lora::integration

#endif  // LORA_SWEEP_TESTS_INTEGRATION_LORAD_PROCESS_H_
