// Dataset readers, splits, the E2E generator, batching and the tokenised
// dataset cache; and one test per kind of malformed input.
#include "lora_core/text_datasets.h"

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <set>
#include <string>

#include "absl/strings/match.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lora_core/assets.h"
#include "lora_core/batching.h"
#include "lora_core/task_data.h"

namespace lora::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

std::string TempFile(const std::string& name, const std::string& contents) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/data";
  std::filesystem::create_directories(dir);
  const std::string path = dir + "/" + name;
  std::ofstream(path, std::ios::binary) << contents;
  return path;
}

const BpeTokenizer& Roberta() {
  static const BpeTokenizer* const tokenizer =
      BpeTokenizer::LoadRobertaDerivedFromGpt2(*AssetPath("gpt2/encoder.json"),
                                               *AssetPath("gpt2/vocab.bpe"))
          ->release();
  return *tokenizer;
}

const BpeTokenizer& Gpt2() {
  static const BpeTokenizer* const tokenizer =
      BpeTokenizer::LoadGpt2(*AssetPath("gpt2/encoder.json"),
                             *AssetPath("gpt2/vocab.bpe"))
          ->release();
  return *tokenizer;
}

std::string Message(const absl::Status& status) {
  return std::string(status.message());
}

TEST(CsvTest, QuotesDoubledQuotesNewlinesAndBom) {
  absl::StatusOr<std::vector<CsvRecord>> records = ParseCsv(
      "\xEF\xBB\xBF\"1\",\"say \"\"hi\"\"\nthere\"\r\nplain,x\n\n\"\",last\n",
      "t.csv");
  ASSERT_TRUE(records.ok()) << records.status();
  ASSERT_EQ(records->size(), 3u);
  EXPECT_THAT((*records)[0].fields, ElementsAre("1", "say \"hi\"\nthere"));
  EXPECT_EQ((*records)[0].line, 1);
  EXPECT_THAT((*records)[1].fields, ElementsAre("plain", "x"));
  EXPECT_EQ((*records)[1].line, 3);
  EXPECT_THAT((*records)[2].fields, ElementsAre("", "last"));
  EXPECT_EQ((*records)[2].line, 5);
}

TEST(CsvTest, MalformedCsvNamesTheLine) {
  EXPECT_THAT(Message(ParseCsv("a,b\n\"open,c\n", "t.csv").status()),
              HasSubstr("t.csv:2: quoted field is never closed"));
  EXPECT_THAT(Message(ParseCsv("a,b\n\"x\"y,c\n", "t.csv").status()),
              HasSubstr("t.csv:2: unexpected character 'y' after a closing "
                        "quote"));
  EXPECT_THAT(Message(ParseCsv("ok\nbad \xff byte\n", "t.csv").status()),
              HasSubstr("t.csv:2: invalid UTF-8 (byte 0xff at offset 7)"));
}

TEST(Sst2Test, ReadsGlueTsv) {
  const std::string path = TempFile(
      "train.tsv", "sentence\tlabel\nhide new secretions \t0\ngreat fun \t1\n");
  absl::StatusOr<std::vector<LabeledText>> rows = ReadSst2Tsv(path);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  EXPECT_EQ((*rows)[0].text, "hide new secretions ");
  EXPECT_EQ((*rows)[0].label, 0);
  EXPECT_EQ((*rows)[1].label, 1);
  EXPECT_EQ((*rows)[1].line, 3);
}

TEST(Sst2Test, MalformedFilesNameFileLineAndProblem) {
  EXPECT_THAT(
      Message(ReadSst2Tsv(TempFile("h.tsv", "text\tlabel\na\t1\n")).status()),
      HasSubstr("h.tsv:1: expected the header \"sentence<TAB>label\", "
                "got \"text\tlabel\""));
  EXPECT_THAT(
      Message(ReadSst2Tsv(TempFile("c.tsv", "sentence\tlabel\na\t1\nb\t0\tx\n"))
                  .status()),
      HasSubstr("c.tsv:3: expected 2 tab-separated columns, got 3"));
  EXPECT_THAT(
      Message(ReadSst2Tsv(TempFile("l.tsv", "sentence\tlabel\na\tpositive\n"))
                  .status()),
      HasSubstr("l.tsv:2: label must be 0 or 1, got \"positive\""));
  EXPECT_THAT(Message(ReadSst2Tsv(TempFile("e.tsv", "  \n")).status()),
              HasSubstr("e.tsv: file is empty"));
  EXPECT_THAT(
      Message(ReadSst2Tsv(TempFile("u.tsv", "sentence\tlabel\n\xc3(\t1\n"))
                  .status()),
      HasSubstr("u.tsv:2: invalid UTF-8"));
  EXPECT_THAT(
      Message(ReadSst2Tsv(TempFile("o.tsv", "sentence\tlabel\n")).status()),
      HasSubstr("o.tsv: no examples after the header"));
  EXPECT_EQ(ReadSst2Tsv(TempFile("x", "") + ".missing").status().code(),
            absl::StatusCode::kNotFound);
}

TEST(PolarityTest, RealCorpusSplitsIntoBalanced3000And1000) {
  absl::StatusOr<std::vector<LabeledText>> rows =
      ReadPolarityCsv(*AssetPath("polarity/pang_lee_sentences.csv"));
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 4000u);
  EXPECT_TRUE(absl::StartsWith((*rows)[0].text, "the rock is destined"));
  EXPECT_EQ((*rows)[0].label, 1);
  LabeledSplits splits = SplitPolarity(*rows);
  EXPECT_EQ(splits.train.size(), 3000u);
  EXPECT_EQ(splits.validation.size(), 1000u);
  int positive = 0;
  for (const LabeledText& row : splits.validation) positive += row.label;
  EXPECT_EQ(positive, 500);
  EXPECT_EQ(splits.validation[0].text, (*rows)[3].text);
  // Deterministic: the same split every time.
  EXPECT_EQ(SplitPolarity(*rows).validation[999].text,
            splits.validation[999].text);
}

TEST(PolarityTest, MalformedRowsNameTheLine) {
  EXPECT_THAT(Message(ReadPolarityCsv(
                          TempFile("p1.csv", "\"1\",\"good\"\n\"0\",\"meh\"\n"))
                          .status()),
              HasSubstr("p1.csv:2: label must be 1 or -1, got \"0\""));
  EXPECT_THAT(
      Message(ReadPolarityCsv(TempFile("p2.csv", "\"1\",\"a\",\"extra\"\n"))
                  .status()),
      HasSubstr("p2.csv:1: expected 2 columns (\"label\",\"text\"), got 3"));
}

TEST(LanguageModelTest, CorpusCsvRowsAreValidated) {
  absl::StatusOr<std::vector<std::string>> documents = ReadCorpusDocuments(
      TempFile("reviews.csv", "\"1\",\"good film\"\n\"-1\",\"bad\"\n"));
  ASSERT_TRUE(documents.ok()) << documents.status();
  EXPECT_THAT(*documents, ElementsAre("good film", "bad"));
  EXPECT_THAT(Message(ReadCorpusDocuments(
                          TempFile("r1.csv", "\"1\",\"a\"\n\"2\",\"b\"\n"))
                          .status()),
              HasSubstr("r1.csv:2: label must be 1 or -1, got \"2\""));
  EXPECT_THAT(
      Message(ReadCorpusDocuments(TempFile("r2.csv", "just text\n")).status()),
      HasSubstr("r2.csv:1: expected 2 columns"));
  absl::StatusOr<std::vector<std::string>> plain =
      ReadCorpusDocuments(TempFile("book.txt", "Call me Ishmael."));
  ASSERT_TRUE(plain.ok());
  EXPECT_THAT(*plain, ElementsAre("Call me Ishmael."));
  EXPECT_TRUE(PackLanguageModelBlocks({"a b"}, Gpt2(), 0).empty());
}

TEST(LanguageModelTest, PacksDocumentsIntoBlocksWithEosBetween) {
  std::vector<std::vector<int64_t>> blocks =
      PackLanguageModelBlocks({"Hello world", "Hello world"}, Gpt2(), 3);
  // Stream: 15496 995 50256 15496 995 50256.
  ASSERT_EQ(blocks.size(), 2u);
  EXPECT_THAT(blocks[0], ElementsAre(15496, 995, 50256));
  EXPECT_THAT(blocks[1], ElementsAre(15496, 995, 50256));
  EXPECT_EQ(PackLanguageModelBlocks({"Hello world"}, Gpt2(), 4).size(), 0u);
}

TEST(E2eTest, GeneratorIsDeterministicWithSeveralReferences) {
  std::vector<E2eExample> a = GenerateE2e(200, 7);
  std::vector<E2eExample> b = GenerateE2e(200, 7);
  std::vector<E2eExample> c = GenerateE2e(200, 8);
  ASSERT_EQ(a.size(), 200u);
  std::set<std::string> distinct;
  for (size_t i = 0; i < a.size(); ++i) {
    EXPECT_EQ(a[i].meaning_representation, b[i].meaning_representation);
    EXPECT_EQ(a[i].references, b[i].references);
    distinct.insert(a[i].meaning_representation);
    ASSERT_EQ(a[i].references.size(), 3u);
    EXPECT_NE(a[i].references[0], a[i].references[1]);
    EXPECT_NE(a[i].references[1], a[i].references[2]);
    EXPECT_TRUE(absl::StartsWith(a[i].meaning_representation, "name["));
    EXPECT_THAT(a[i].meaning_representation, HasSubstr("eatType["));
    const std::string name = a[i].meaning_representation.substr(
        5, a[i].meaning_representation.find(']') - 5);
    for (const std::string& reference : a[i].references) {
      EXPECT_THAT(reference, HasSubstr(name));
    }
  }
  EXPECT_EQ(distinct.size(), 200u);
  EXPECT_NE(a[0].meaning_representation, c[0].meaning_representation);
}

TEST(E2eTest, ReadsRealCsvGroupingReferences) {
  const std::string path = TempFile(
      "trainset.csv",
      "mr,ref\n\"name[The Vaults], eatType[pub]\",\"The Vaults is a pub.\"\n"
      "\"name[The Vaults], eatType[pub]\",\"A pub, The Vaults.\"\n"
      "\"name[Cocum], eatType[coffee shop]\",Cocum is a coffee shop.\n");
  absl::StatusOr<std::vector<E2eExample>> examples = ReadE2eCsv(path);
  ASSERT_TRUE(examples.ok()) << examples.status();
  ASSERT_EQ(examples->size(), 2u);
  EXPECT_THAT((*examples)[0].references,
              ElementsAre("The Vaults is a pub.", "A pub, The Vaults."));
  EXPECT_THAT(
      Message(ReadE2eCsv(TempFile("bad1.csv", "meaning,text\na,b\n")).status()),
      HasSubstr("bad1.csv:1: expected the header \"mr,ref\""));
  EXPECT_THAT(
      Message(ReadE2eCsv(TempFile("bad2.csv", "mr,ref\na,b,c\n")).status()),
      HasSubstr("bad2.csv:2: expected 2 columns (mr,ref), got 3"));
  EXPECT_THAT(
      Message(ReadE2eCsv(TempFile("bad3.csv", "mr,ref\na,\n")).status()),
      HasSubstr("bad3.csv:2: empty meaning representation or reference"));
}

TEST(E2eTest, TokenizedExamplesScoreOnlyTheReference) {
  std::vector<E2eExample> examples = {
      {"name[Aromi], eatType[pub]", {"Aromi is a pub.", "A pub: Aromi."}}};
  std::vector<TokenizedExample> tokenized = TokenizeE2e(examples, Gpt2(), 128);
  ASSERT_EQ(tokenized.size(), 2u);
  const std::vector<int64_t> prompt =
      Gpt2().Encode(E2ePrompt(examples[0].meaning_representation));
  EXPECT_EQ(tokenized[0].prompt_length, static_cast<int64_t>(prompt.size()));
  EXPECT_EQ(tokenized[0].input_ids.back(), Gpt2().eos_id());
  EXPECT_EQ(tokenized[1].group, 0);
  EXPECT_EQ(Gpt2().Decode(tokenized[0].input_ids),
            "name[Aromi], eatType[pub] => Aromi is a pub.");
}

TEST(BatchingTest, TrainingBatchesCoverEveryIndexOnceDeterministically) {
  std::vector<int64_t> lengths;
  for (int i = 0; i < 1000; ++i) lengths.push_back(5 + (i * 37) % 60);
  auto batches = TrainingBatches(lengths, 32, 1, 0);
  std::vector<int> seen(lengths.size(), 0);
  int64_t padded = 0, tokens = 0;
  for (const auto& batch : batches) {
    EXPECT_LE(batch.size(), 32u);
    int64_t longest = 0;
    for (size_t index : batch) {
      ++seen[index];
      longest = std::max(longest, lengths[index]);
      tokens += lengths[index];
    }
    padded += longest * static_cast<int64_t>(batch.size());
  }
  for (int count : seen) EXPECT_EQ(count, 1);
  // Bucketing keeps padding small (random batches pad ~50% here).
  EXPECT_LT(static_cast<double>(padded - tokens) / padded, 0.1);
  EXPECT_EQ(TrainingBatches(lengths, 32, 1, 0), batches);
  EXPECT_NE(TrainingBatches(lengths, 32, 1, 1), batches);
  EXPECT_NE(TrainingBatches(lengths, 32, 2, 0), batches);
}

TEST(BatchingTest, EvaluationBatchesAreSortedByLength) {
  auto batches = EvaluationBatches({5, 1, 3, 2, 4}, 2);
  EXPECT_THAT(batches, ElementsAre(ElementsAre(1u, 3u), ElementsAre(2u, 4u),
                                   ElementsAre(0u)));
}

TEST(TaskDataTest, PolarityIsTokenisedOnceThenReadFromCache) {
  const std::string cache =
      std::string(std::getenv("TEST_TMPDIR")) + "/dataset-cache";
  std::filesystem::remove_all(cache);
  TaskDataOptions options;
  options.task = DataTask::kPolarity;
  options.max_seq_len = 64;
  options.cache_dir = cache;
  absl::StatusOr<TaskData> first = LoadTaskData(options, Roberta());
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_FALSE(first->from_cache);
  EXPECT_EQ(first->train.size(), 3000u);
  EXPECT_EQ(first->validation.size(), 1000u);
  for (const TokenizedExample& example : first->train) {
    ASSERT_LE(example.input_ids.size(), 64u);
    EXPECT_EQ(example.input_ids.front(), 0);
  }
  absl::StatusOr<TaskData> second = LoadTaskData(options, Roberta());
  ASSERT_TRUE(second.ok());
  EXPECT_TRUE(second->from_cache);
  EXPECT_EQ(second->cache_key, first->cache_key);
  EXPECT_EQ(second->train[1234].input_ids, first->train[1234].input_ids);
  EXPECT_EQ(second->validation[999].label, first->validation[999].label);
  // Another setting is another key; a damaged cache file is rebuilt.
  options.max_seq_len = 32;
  absl::StatusOr<TaskData> shorter = LoadTaskData(options, Roberta());
  EXPECT_NE(shorter->cache_key, first->cache_key);
  EXPECT_FALSE(shorter->from_cache);
  std::ofstream(cache + "/" + shorter->cache_key + ".bin") << "garbage";
  absl::StatusOr<TaskData> after_garbage = LoadTaskData(options, Roberta());
  ASSERT_TRUE(after_garbage.ok());
  EXPECT_FALSE(after_garbage->from_cache);
  // A valid header with an absurd count must not allocate it.
  std::string huge = "lora-sweep tokenised dataset v1\n";
  const int64_t count = int64_t{1} << 60;
  huge.append(reinterpret_cast<const char*>(&count), sizeof(count));
  std::ofstream(cache + "/" + shorter->cache_key + ".bin") << huge;
  absl::StatusOr<TaskData> rebuilt = LoadTaskData(options, Roberta());
  ASSERT_TRUE(rebuilt.ok());
  EXPECT_FALSE(rebuilt->from_cache);
  EXPECT_EQ(rebuilt->train.size(), 3000u);
}

TEST(TaskDataTest, ChangedDataFileChangesTheKey) {
  const std::string dir = std::string(std::getenv("TEST_TMPDIR")) + "/sst2";
  std::filesystem::create_directories(dir);
  std::ofstream(dir + "/train.tsv") << "sentence\tlabel\ngood\t1\nbad\t0\n";
  std::ofstream(dir + "/dev.tsv") << "sentence\tlabel\nfine\t1\n";
  TaskDataOptions options;
  options.task = DataTask::kSst2;
  options.data_dir = dir;
  options.cache_dir = dir + "/cache";
  absl::StatusOr<TaskData> before = LoadTaskData(options, Roberta());
  ASSERT_TRUE(before.ok()) << before.status();
  EXPECT_EQ(before->train.size(), 2u);
  std::ofstream(dir + "/train.tsv") << "sentence\tlabel\ngood\t1\n";
  absl::StatusOr<TaskData> after = LoadTaskData(options, Roberta());
  ASSERT_TRUE(after.ok());
  EXPECT_FALSE(after->from_cache);
  EXPECT_EQ(after->train.size(), 1u);
}

TEST(TaskDataTest, TextAndGeneratedE2eSplits) {
  TaskDataOptions text;
  text.task = DataTask::kText;
  text.max_seq_len = 128;
  absl::StatusOr<TaskData> corpus = LoadTaskData(text, Gpt2());
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_GT(corpus->train.size(), 5000u);
  EXPECT_NEAR(static_cast<double>(corpus->validation.size()) /
                  (corpus->train.size() + corpus->validation.size()),
              0.1, 0.01);
  EXPECT_EQ(corpus->train[0].input_ids.size(), 128u);

  TaskDataOptions e2e;
  e2e.task = DataTask::kE2e;
  e2e.e2e_train_mrs = 100;
  e2e.e2e_validation_mrs = 20;
  e2e.max_seq_len = 128;
  absl::StatusOr<TaskData> data = LoadTaskData(e2e, Gpt2());
  ASSERT_TRUE(data.ok()) << data.status();
  EXPECT_EQ(data->train.size(), 300u);
  EXPECT_EQ(data->validation.size(), 60u);
  ASSERT_EQ(data->validation_references.size(), 20u);
  // Training and validation share no meaning representation.
  std::set<int64_t> seen_groups;
  for (const TokenizedExample& example : data->validation) {
    seen_groups.insert(example.group);
  }
  EXPECT_EQ(seen_groups.size(), 20u);
  std::set<std::string> train_prompts;
  for (const TokenizedExample& example : data->train) {
    train_prompts.insert(Gpt2().Decode(std::vector<int64_t>(
        example.input_ids.begin(),
        example.input_ids.begin() + example.prompt_length)));
  }
  EXPECT_EQ(train_prompts.size(), 100u);
  for (const E2eExample& example : data->validation_references) {
    EXPECT_EQ(train_prompts.count(E2ePrompt(example.meaning_representation)),
              0u)
        << example.meaning_representation;
  }
}

TEST(TaskDataTest, UnknownTaskAndMissingSst2Folder) {
  EXPECT_THAT(Message(ParseDataTask("glue").status()),
              HasSubstr("task: expected one of sst2, polarity, text, e2e; got "
                        "\"glue\""));
  TaskDataOptions options;
  options.task = DataTask::kSst2;
  EXPECT_THAT(Message(LoadTaskData(options, Roberta()).status()),
              HasSubstr("data_dir must name a GLUE SST-2 folder"));
}

}  // namespace
}  // namespace lora::core
