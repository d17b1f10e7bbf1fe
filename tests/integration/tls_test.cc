// TLS and mutual TLS on the real lorad: certificates made with the openssl
// command line for this test; a client that trusts the CA is served, a
// plain-text client is not, and with --tls_client_ca only clients that
// present a certificate signed by that CA get through.
#include <cstdlib>
#include <fstream>
#include <sstream>
#include <string>

#include "gtest/gtest.h"
#include "lora/v1/sweep_service.grpc.pb.h"
#include "tests/integration/lorad_process.h"

namespace lora::integration {
namespace {

std::string Slurp(const std::string& path) {
  std::ifstream file(path);
  std::stringstream text;
  text << file.rdbuf();
  return text.str();
}

// A CA, a server certificate for "localhost" and a client certificate,
// in `dir`.
void MakeCertificates(const std::string& dir) {
  const std::string script = "set -e; cd '" + dir + R"(';
openssl req -x509 -newkey rsa:2048 -nodes -days 2 -subj /CN=lora-test-ca \
  -keyout ca.key -out ca.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=localhost \
  -keyout server.key -out server.csr 2>/dev/null
printf 'subjectAltName=DNS:localhost\n' > server.ext
openssl x509 -req -in server.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -days 2 -extfile server.ext -out server.pem 2>/dev/null
openssl req -newkey rsa:2048 -nodes -subj /CN=lora-test-client \
  -keyout client.key -out client.csr 2>/dev/null
openssl x509 -req -in client.csr -CA ca.pem -CAkey ca.key -CAcreateserial \
  -days 2 -out client.pem 2>/dev/null
)";
  ASSERT_EQ(std::system(script.c_str()), 0) << "openssl failed";
}

std::shared_ptr<grpc::ChannelCredentials> Tls(const std::string& dir,
                                              bool client_certificate) {
  grpc::SslCredentialsOptions ssl;
  ssl.pem_root_certs = Slurp(dir + "/ca.pem");
  if (client_certificate) {
    ssl.pem_cert_chain = Slurp(dir + "/client.pem");
    ssl.pem_private_key = Slurp(dir + "/client.key");
  }
  return grpc::SslCredentials(ssl);
}

grpc::Status ListSweeps(const LoradProcess& lorad,
                        std::shared_ptr<grpc::ChannelCredentials> credentials) {
  grpc::ChannelArguments arguments;
  arguments.SetSslTargetNameOverride("localhost");
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
  auto stub = v1::SweepService::NewStub(
      grpc::CreateCustomChannel(lorad.grpc_address(), credentials, arguments));
  grpc::ClientContext context;
  PrepareContext(&context, "", absl::Seconds(5));
  v1::ListSweepsResponse response;
  return stub->ListSweeps(&context, v1::ListSweepsRequest(), &response);
}

TEST(TlsTest, ServesTlsClientsAndRefusesPlainText) {
  const std::string dir = FreshTestDir("tls");
  MakeCertificates(dir);
  LoradOptions options;
  options.dir = dir + "/lorad";
  options.extra_flags = {"--tls_cert=" + dir + "/server.pem",
                         "--tls_key=" + dir + "/server.key"};
  options.credentials = Tls(dir, false);
  options.tls_target_name = "localhost";
  auto lorad = LoradProcess::Start(options);
  ASSERT_TRUE(lorad.ok()) << lorad.status();
  EXPECT_TRUE(ListSweeps(**lorad, Tls(dir, false)).ok());
  EXPECT_FALSE(ListSweeps(**lorad, grpc::InsecureChannelCredentials()).ok());
  EXPECT_TRUE((*lorad)->Stop().ok());
}

TEST(TlsTest, MutualTlsNeedsAClientCertificateFromTheCa) {
  const std::string dir = FreshTestDir("mtls");
  MakeCertificates(dir);
  LoradOptions options;
  options.dir = dir + "/lorad";
  options.extra_flags = {"--tls_cert=" + dir + "/server.pem",
                         "--tls_key=" + dir + "/server.key",
                         "--tls_client_ca=" + dir + "/ca.pem"};
  options.credentials = Tls(dir, true);
  options.tls_target_name = "localhost";
  auto lorad = LoradProcess::Start(options);
  ASSERT_TRUE(lorad.ok()) << lorad.status();
  EXPECT_TRUE(ListSweeps(**lorad, Tls(dir, true)).ok());
  EXPECT_FALSE(ListSweeps(**lorad, Tls(dir, false)).ok());
  EXPECT_FALSE(ListSweeps(**lorad, grpc::InsecureChannelCredentials()).ok());
  EXPECT_TRUE((*lorad)->Stop().ok());
}

}  // namespace
}  // namespace lora::integration
