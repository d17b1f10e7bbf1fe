// The C++ models against an independent Python implementation
// (reference_models.py, written from the architecture definitions and run
// with Debian's python3-torch): same safetensors weights and inputs, logits
// within 1e-4 in eval mode, without and with LoRA (non-zero B, loaded from
// the reference's PEFT-format adapter).
#include <ATen/ATen.h>

#include <cstdlib>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lora_core/hf_checkpoint.h"
#include "lora_core/peft_adapter.h"
#include "lora_core/tensor_io.h"
#include "lora_core/torch_runtime.h"

namespace lora::core {
namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

std::string ReferenceDir(const std::string& name) {
  return std::string(std::getenv("TEST_SRCDIR")) + "/" +
         std::getenv("TEST_WORKSPACE") + "/tests/lora_core/reference/" + name;
}

struct Reference {
  NamedTensors inputs;
  NamedTensors outputs;
};

Reference ReadReference(const std::string& dir) {
  Reference reference;
  absl::StatusOr<NamedTensors> inputs =
      LoadSafetensors(dir + "/inputs.safetensors");
  absl::StatusOr<NamedTensors> outputs =
      LoadSafetensors(dir + "/outputs.safetensors");
  EXPECT_TRUE(inputs.ok()) << inputs.status();
  EXPECT_TRUE(outputs.ok()) << outputs.status();
  if (inputs.ok()) reference.inputs = *inputs;
  if (outputs.ok()) reference.outputs = *outputs;
  return reference;
}

void ExpectClose(const at::Tensor& actual, const at::Tensor& expected,
                 const std::string& what) {
  ASSERT_TRUE(actual.defined()) << what;
  ASSERT_EQ(actual.sizes(), expected.sizes()) << what;
  const double max_error = (actual - expected).abs().max().item<double>();
  EXPECT_LE(max_error, 1e-4) << what << ": max abs error " << max_error;
}

std::shared_ptr<TaskModel> Load(const std::string& dir, HeadKind head,
                                LoadReport* report = nullptr) {
  ModelSpec spec;
  spec.head = head;
  at::manual_seed(0);
  absl::StatusOr<PretrainedModel> loaded = LoadPretrained(dir, spec);
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  if (!loaded.ok()) return nullptr;
  if (report != nullptr) *report = loaded->report;
  loaded->model->eval();
  return loaded->model;
}

void ApplyAdapter(const std::string& dir, TaskModel& model) {
  absl::StatusOr<PeftAdapter> adapter = ReadPeftAdapter(dir);
  ASSERT_TRUE(adapter.ok()) << adapter.status();
  absl::Status applied = ApplyPeftAdapter(*adapter, model);
  ASSERT_TRUE(applied.ok()) << applied;
  model.eval();
}

class CrossImplementationTest : public ::testing::Test {
 protected:
  void SetUp() override { SetTorchThreads(2); }
};

TEST_F(CrossImplementationTest, RobertaMatchesReference) {
  const std::string dir = ReferenceDir("roberta");
  Reference reference = ReadReference(dir);
  LoadReport report;
  std::shared_ptr<TaskModel> classifier =
      Load(dir, HeadKind::kRobertaClassification, &report);
  ASSERT_NE(classifier, nullptr);
  // HF's sequence classifier has no pooler: the reference's is unused.
  EXPECT_THAT(
      report.unexpected_keys,
      ElementsAre("roberta.pooler.dense.bias", "roberta.pooler.dense.weight"));
  EXPECT_THAT(report.missing_keys, IsEmpty());
  TaskModelOutput out = classifier->forward(reference.inputs["input_ids"],
                                            reference.inputs["attention_mask"]);
  ExpectClose(out.hidden, reference.outputs["last_hidden_state"],
              "last_hidden_state");
  ExpectClose(out.logits, reference.outputs["logits"], "logits");

  // The bare model with pooler, from the same file.
  std::shared_ptr<TaskModel> bare = Load(dir, HeadKind::kNone, &report);
  EXPECT_THAT(report.missing_keys, IsEmpty());
  out = bare->forward(reference.inputs["input_ids"],
                      reference.inputs["attention_mask"]);
  ExpectClose(out.pooled, reference.outputs["pooler_output"], "pooler_output");
}

TEST_F(CrossImplementationTest, RobertaWithLoraMatchesReference) {
  const std::string dir = ReferenceDir("roberta_lora");
  Reference reference = ReadReference(dir);
  std::shared_ptr<TaskModel> model =
      Load(dir, HeadKind::kRobertaClassification);
  ASSERT_NE(model, nullptr);
  ApplyAdapter(dir, *model);
  ASSERT_EQ(model->LoraLayers().size(), 4u);  // q and v in 2 layers.
  TaskModelOutput out = model->forward(reference.inputs["input_ids"],
                                       reference.inputs["attention_mask"]);
  ExpectClose(out.hidden, reference.outputs["last_hidden_state"],
              "last_hidden_state");
  ExpectClose(out.logits, reference.outputs["logits"], "logits");
}

TEST_F(CrossImplementationTest, Gpt2MatchesReference) {
  const std::string dir = ReferenceDir("gpt2");
  Reference reference = ReadReference(dir);
  LoadReport report;
  std::shared_ptr<TaskModel> model =
      Load(dir, HeadKind::kGpt2LanguageModel, &report);
  ASSERT_NE(model, nullptr);
  EXPECT_THAT(report.missing_keys, IsEmpty());
  EXPECT_THAT(report.unexpected_keys, IsEmpty());
  TaskModelOutput out = model->forward(reference.inputs["input_ids"],
                                       reference.inputs["attention_mask"]);
  ExpectClose(out.hidden, reference.outputs["last_hidden_state"],
              "last_hidden_state");
  ExpectClose(out.logits, reference.outputs["logits"], "logits");
}

TEST_F(CrossImplementationTest, Gpt2WithLoraMatchesReference) {
  const std::string dir = ReferenceDir("gpt2_lora");
  Reference reference = ReadReference(dir);
  std::shared_ptr<TaskModel> model = Load(dir, HeadKind::kGpt2LanguageModel);
  ASSERT_NE(model, nullptr);
  ApplyAdapter(dir, *model);
  ASSERT_EQ(model->LoraLayers().size(), 4u);  // c_attn and c_fc in 2 layers.
  TaskModelOutput out = model->forward(reference.inputs["input_ids"],
                                       reference.inputs["attention_mask"]);
  ExpectClose(out.logits, reference.outputs["logits"], "logits");
}

TEST_F(CrossImplementationTest, Gpt2QueryValueInsideFusedAttention) {
  // loralib-style LoRA on the q and v thirds of c_attn only: the path PEFT
  // cannot express, checked against the reference's own implementation.
  const std::string dir = ReferenceDir("gpt2_lora_qv");
  Reference reference = ReadReference(dir);
  ModelSpec spec;
  spec.head = HeadKind::kGpt2LanguageModel;
  spec.lora.rank = 4;
  spec.lora.alpha = 8;  // scaling 2, as the reference
  spec.lora.target_modules = {"query", "value"};
  at::manual_seed(0);
  absl::StatusOr<PretrainedModel> loaded = LoadPretrained(dir, spec);
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  absl::StatusOr<NamedTensors> lora =
      LoadSafetensors(dir + "/lora_qv.safetensors");
  ASSERT_TRUE(lora.ok()) << lora.status();
  {
    torch::NoGradGuard no_grad;
    for (auto& [path, layer] : loaded->model->LoraLayers()) {
      ASSERT_TRUE(lora->count(path + ".lora_A")) << path;
      layer->lora_A.copy_(lora->at(path + ".lora_A"));
      layer->lora_B.copy_(lora->at(path + ".lora_B"));
    }
  }
  ASSERT_EQ(loaded->model->LoraLayers().size(), 2u);
  loaded->model->eval();
  TaskModelOutput out = loaded->model->forward(
      reference.inputs["input_ids"], reference.inputs["attention_mask"]);
  ExpectClose(out.logits, reference.outputs["logits"], "logits");
  // And the rank-2r PEFT export computes the same.
  absl::StatusOr<PeftAdapter> adapter = MakePeftAdapter(*loaded->model);
  ASSERT_TRUE(adapter.ok());
  ModelSpec plain;
  plain.head = HeadKind::kGpt2LanguageModel;
  absl::StatusOr<PretrainedModel> base = LoadPretrained(dir, plain);
  ASSERT_TRUE(base.ok());
  ASSERT_TRUE(ApplyPeftAdapter(*adapter, *base->model).ok());
  base->model->eval();
  ExpectClose(base->model
                  ->forward(reference.inputs["input_ids"],
                            reference.inputs["attention_mask"])
                  .logits,
              reference.outputs["logits"], "logits via PEFT export");
}

TEST_F(CrossImplementationTest, LoraChangesTheOutputs) {
  // Guards the two LoRA tests above against an adapter that does nothing.
  Reference plain = ReadReference(ReferenceDir("roberta"));
  Reference adapted = ReadReference(ReferenceDir("roberta_lora"));
  EXPECT_GT((plain.outputs["logits"] - adapted.outputs["logits"])
                .abs()
                .max()
                .item<double>(),
            1e-2);
}

}  // namespace
}  // namespace lora::core
