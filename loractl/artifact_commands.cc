// `loractl artifacts get RUN|ARTIFACT -o DIR` and `loractl artifacts list`.
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "loractl/artifact_transfer.h"
#include "loractl/commands.h"
#include "loractl/display.h"
#include "sweep/artifact_manifest.h"

namespace lora::loractl {
namespace {

std::string KindName(v1::ArtifactKind kind) {
  return absl::AsciiStrToLower(
      absl::StripPrefix(v1::ArtifactKind_Name(kind), "ARTIFACT_KIND_"));
}

absl::StatusOr<int> Get(CommandContext& context) {
  const std::string& id = context.args().positional[0];
  const std::optional<std::string> dest = context.args().Get("output-dir");
  if (!dest.has_value() || dest->empty()) {
    return absl::InvalidArgumentError(
        "\"artifacts get\" needs -o DIR, the folder to download into");
  }
  absl::StatusOr<LoradClient*> client = context.Client();
  if (!client.ok()) return client.status();
  std::string artifact_id = id;
  if (!sweep::IsArtifactId(id)) {
    if (!absl::StartsWith(id, "run-")) {
      return absl::InvalidArgumentError(
          absl::StrCat("\"", id,
                       "\" is neither a run id (run-...) nor an artifact id "
                       "(sha256:...)"));
    }
    absl::StatusOr<v1::Run> run = (*client)->GetRun(id);
    if (!run.ok()) return run.status();
    if (run->adapter_artifact_id().empty()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "run ", id, " has no adapter yet (state ", RunStateName(run->state()),
          "); a run uploads its adapter when it succeeds"));
    }
    artifact_id = run->adapter_artifact_id();
  }
  absl::StatusOr<v1::Artifact> artifact =
      DownloadArtifactTo(*client, artifact_id, *dest);
  if (!artifact.ok()) return artifact.status();
  if (context.output() != OutputFormat::kTable) {
    nlohmann::json json = ProtoToJson(*artifact);
    json["downloaded_to"] = *dest;
    context.out() << StructuredText(json, context.output());
    return kExitOk;
  }
  context.out() << "downloaded " << artifact->artifact_id() << " ("
                << KindName(artifact->kind()) << ", " << artifact->files_size()
                << " files, " << FormatCount(artifact->size_bytes())
                << " bytes, sha256 verified) to " << *dest << "\n";
  for (const v1::ArtifactFile& file : artifact->files()) {
    context.out() << "  " << file.path() << "  "
                  << FormatCount(file.size_bytes()) << " bytes\n";
  }
  return kExitOk;
}

absl::StatusOr<int> List(CommandContext& context) {
  v1::ArtifactKind kind = v1::ARTIFACT_KIND_UNSPECIFIED;
  if (std::optional<std::string> name = context.args().Get("kind")) {
    const std::string full =
        absl::StrCat("ARTIFACT_KIND_", absl::AsciiStrToUpper(*name));
    if (!v1::ArtifactKind_Parse(full, &kind)) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--kind: expected dataset, base_checkpoint, training_checkpoint, "
          "adapter or run_log; got \"",
          *name, "\""));
    }
  }
  absl::StatusOr<LoradClient*> client = context.Client();
  if (!client.ok()) return client.status();
  absl::StatusOr<std::vector<v1::Artifact>> artifacts =
      (*client)->ListArtifacts(kind, context.args().GetOr("run", ""));
  if (!artifacts.ok()) return artifacts.status();
  if (context.output() != OutputFormat::kTable) {
    nlohmann::json list = nlohmann::json::array();
    for (const v1::Artifact& artifact : *artifacts) {
      list.push_back(ProtoToJson(artifact));
    }
    context.out() << StructuredText(nlohmann::json{{"artifacts", list}},
                                    context.output());
    return kExitOk;
  }
  TextTable table;
  table.header = {"artifact id", "kind", "name", "size", "run", "age"};
  table.align = "lllrll";
  const absl::Time now = context.io().now();
  for (const v1::Artifact& artifact : *artifacts) {
    table.rows.push_back({artifact.artifact_id(), KindName(artifact.kind()),
                          artifact.name(), FormatCount(artifact.size_bytes()),
                          artifact.run_id().empty() ? "-" : artifact.run_id(),
                          FormatAge(artifact.create_time(), now)});
  }
  context.out() << table.Render();
  return kExitOk;
}

}  // namespace

std::vector<Command> ArtifactCommands() {
  std::vector<Command> commands(2);
  {
    Command& c = commands[0];
    c.spec.name = "artifacts get";
    c.spec.args = "RUN";
    c.spec.min_args = c.spec.max_args = 1;
    c.spec.summary = "Download a run's adapter folder, verified by sha256";
    c.spec.description =
        "Downloads the adapter a succeeded run exported (PEFT layout: "
        "adapter_config.json,\nadapter_model.safetensors, plus the task head) "
        "into DIR, which must be new or\nempty. Every file is checked against "
        "the manifest's size and sha256 before DIR\nappears. An artifact id "
        "(sha256:...) may be given instead of a run.\n";
    c.spec.flags = {
        {"output-dir", 'o', true, "DIR", "the folder to create (required)"}};
    c.spec.examples = {
        "loractl artifacts get run-0c1d2e3f4a5b6c7d8e9f -o adapters/r4",
        "loractl artifacts get sha256:9f86d08...  -o base-checkpoint"};
    c.run = Get;
  }
  {
    Command& c = commands[1];
    c.spec.name = "artifacts list";
    c.spec.summary = "List artifacts, newest first";
    c.spec.description =
        "Datasets and base checkpoints uploaded by clients, checkpoints, "
        "adapters and run\nlogs uploaded by workers.\n";
    c.spec.flags = {
        {"kind", 0, true, "KIND",
         "only this kind: dataset, base_checkpoint, training_checkpoint, "
         "adapter, run_log"},
        {"run", 0, true, "RUN", "only artifacts produced by this run"}};
    c.spec.examples = {"loractl artifacts list --kind adapter",
                       "loractl artifacts list --run run-0c1d2e3f4a5b6c7d8e9f"};
    c.run = List;
  }
  return commands;
}

}  // namespace lora::loractl
