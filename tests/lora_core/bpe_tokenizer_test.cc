#include "lora_core/bpe_tokenizer.h"

#include <cstdlib>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "lora_core/assets.h"

namespace lora::core {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

const BpeTokenizer& Gpt2() {
  static const BpeTokenizer* const tokenizer = [] {
    absl::StatusOr<std::unique_ptr<BpeTokenizer>> loaded =
        BpeTokenizer::LoadGpt2(*AssetPath("gpt2/encoder.json"),
                               *AssetPath("gpt2/vocab.bpe"));
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return loaded->release();
  }();
  return *tokenizer;
}

const BpeTokenizer& DerivedRoberta() {
  static const BpeTokenizer* const tokenizer = [] {
    absl::StatusOr<std::unique_ptr<BpeTokenizer>> loaded =
        BpeTokenizer::LoadRobertaDerivedFromGpt2(
            *AssetPath("gpt2/encoder.json"), *AssetPath("gpt2/vocab.bpe"));
    EXPECT_TRUE(loaded.ok()) << loaded.status();
    return loaded->release();
  }();
  return *tokenizer;
}

TEST(BpeTokenizerTest, ReferenceEncodingsFromTheDesign) {
  EXPECT_THAT(Gpt2().Encode("Hello world"), ElementsAre(15496, 995));
  EXPECT_THAT(Gpt2().Encode(" Hello world"), ElementsAre(18435, 995));
  EXPECT_THAT(Gpt2().Encode("I loved this movie! It was great."),
              ElementsAre(40, 6151, 428, 3807, 0, 632, 373, 1049, 13));
  EXPECT_EQ(Gpt2().vocab_size(), 50257);
  EXPECT_EQ(Gpt2().eos_id(), 50256);
}

TEST(BpeTokenizerTest, PreTokenizationFollowsTheGpt2Pattern) {
  EXPECT_THAT(Gpt2PreTokenize("Hello world"), ElementsAre("Hello", " world"));
  EXPECT_THAT(Gpt2PreTokenize("  Hello"), ElementsAre(" ", " Hello"));
  EXPECT_THAT(Gpt2PreTokenize("a\n\nb"), ElementsAre("a", "\n", "\n", "b"));
  EXPECT_THAT(
      Gpt2PreTokenize("it's I'm we'll they'RE"),
      ElementsAre("it", "'s", " I", "'m", " we", "'ll", " they", "'", "RE"));
  EXPECT_THAT(Gpt2PreTokenize("I'm 42!"), ElementsAre("I", "'m", " 42", "!"));
  EXPECT_THAT(Gpt2PreTokenize("hi  "), ElementsAre("hi", "  "));
  EXPECT_THAT(Gpt2PreTokenize("x\t\t y"), ElementsAre("x", "\t\t", " y"));
  EXPECT_THAT(Gpt2PreTokenize("caf\u00e9 \u00bd 12\u00b2"),
              ElementsAre("caf\u00e9", " \u00bd", " 12\u00b2"));
  // U+3000 (ideographic space) is whitespace, U+FEFF is not.
  EXPECT_THAT(Gpt2PreTokenize("a\u3000\u3000b"),
              ElementsAre("a", "\u3000", "\u3000", "b"));
  EXPECT_THAT(Gpt2PreTokenize("a\ufeffb"), ElementsAre("a", "\ufeff", "b"));
  EXPECT_THAT(Gpt2PreTokenize(" ...!?"), ElementsAre(" ...!?"));
  EXPECT_THAT(Gpt2PreTokenize(""), ElementsAre());
}

TEST(BpeTokenizerTest, InvalidUtf8IsKeptAndRoundTrips) {
  const std::string text = "ok \xff\xfe bytes \xc3";
  std::string joined;
  for (const std::string& piece : Gpt2PreTokenize(text)) joined += piece;
  EXPECT_EQ(joined, text);
  EXPECT_EQ(Gpt2().Decode(Gpt2().Encode(text)), text);
}

TEST(BpeTokenizerTest, UnicodeWhitespaceMatchesPythonRegex) {
  for (char32_t cp :
       {0x09, 0x0A, 0x0B, 0x0C, 0x0D, 0x20, 0x85, 0xA0, 0x1680, 0x2000, 0x2005,
        0x200A, 0x2028, 0x2029, 0x202F, 0x205F, 0x3000}) {
    EXPECT_TRUE(IsUnicodeWhitespace(cp)) << std::hex << cp;
  }
  for (char32_t cp : {0x1C, 0x1F, 0x200B, 0xFEFF, 0x41, 0x180E}) {
    EXPECT_FALSE(IsUnicodeWhitespace(cp)) << std::hex << cp;
  }
}

TEST(BpeTokenizerTest, DecodeRoundTripsExactly) {
  for (const char* text :
       {"Hello world", "  leading and trailing  ", "tabs\tand\nnewlines\r\n",
        "emoji \U0001F600\U0001F44D\U0001F3FD", "\u4e2d\u6587 \u0627\u0644",
        "contractions: don't, can't, y'all"}) {
    EXPECT_EQ(Gpt2().Decode(Gpt2().Encode(text)), text);
    EXPECT_EQ(DerivedRoberta().Decode(DerivedRoberta().Encode(text)), text);
  }
}

TEST(BpeTokenizerTest, DerivedRobertaVocabularyShiftsGpt2Ids) {
  const BpeTokenizer& roberta = DerivedRoberta();
  EXPECT_EQ(roberta.vocabulary(), "gpt2-derived");
  EXPECT_EQ(roberta.vocab_size(), 50262);
  EXPECT_EQ(roberta.bos_id(), 0);
  EXPECT_EQ(roberta.pad_id(), 1);
  EXPECT_EQ(roberta.eos_id(), 2);
  EXPECT_EQ(roberta.unk_id(), 3);
  EXPECT_EQ(roberta.mask_id(), 50261);
  EXPECT_THAT(roberta.Encode("Hello world"), ElementsAre(15500, 999));
  EncodedText encoded = roberta.EncodeForModel("Hello world", 16);
  EXPECT_THAT(encoded.input_ids, ElementsAre(0, 15500, 999, 2));
  EXPECT_THAT(encoded.attention_mask, ElementsAre(1, 1, 1, 1));
  EXPECT_EQ(roberta.Decode({0, 15500, 999, 2}), "Hello world");
  EXPECT_EQ(roberta.Decode({0, 15500, 999, 2, 50261},
                           /*skip_special_tokens=*/false),
            "<s>Hello world</s><mask>");
}

TEST(BpeTokenizerTest, TruncationAndPadding) {
  const BpeTokenizer& roberta = DerivedRoberta();
  EncodedText encoded = roberta.EncodeForModel(
      "one two three four five six", /*max_length=*/5, /*pad_to_length=*/8);
  ASSERT_EQ(encoded.input_ids.size(), 8u);
  EXPECT_EQ(encoded.input_ids[0], 0);
  EXPECT_EQ(encoded.input_ids[4], 2);  // </s> kept after truncation.
  EXPECT_THAT(encoded.attention_mask, ElementsAre(1, 1, 1, 1, 1, 0, 0, 0));
  EXPECT_EQ(encoded.input_ids[5], 1);  // <pad>
  EXPECT_EQ(roberta.Decode(encoded.input_ids), "one two three");

  EncodedText gpt2 = Gpt2().EncodeForModel("one two three", 2, 4);
  EXPECT_THAT(gpt2.input_ids, ElementsAre(505, 734, 50256, 50256));
  EXPECT_THAT(gpt2.attention_mask, ElementsAre(1, 1, 0, 0));
}

TEST(BpeTokenizerTest, SentencePairsTruncateLongestFirst) {
  const BpeTokenizer& roberta = DerivedRoberta();
  EncodedText pair = roberta.EncodeForModel("a b c d e f", "x y", 9);
  // <s> A </s></s> B </s> with A cut from 6 to 3 tokens.
  ASSERT_EQ(pair.input_ids.size(), 9u);
  EXPECT_EQ(pair.input_ids[0], 0);
  EXPECT_EQ(pair.input_ids[4], 2);
  EXPECT_EQ(pair.input_ids[5], 2);
  EXPECT_EQ(pair.input_ids[8], 2);
  const std::vector<int64_t> first(pair.input_ids.begin() + 1,
                                   pair.input_ids.begin() + 4);
  const std::vector<int64_t> second(pair.input_ids.begin() + 6,
                                    pair.input_ids.begin() + 8);
  EXPECT_EQ(roberta.Decode(first), "a b c");
  EXPECT_EQ(roberta.Decode(second), "x y");
}

TEST(BpeTokenizerTest, PairTruncationTiesCutTheSecondSequence) {
  // 3 + 3 tokens into room for 5: on the tie the second loses one.
  const std::vector<int64_t> ids =
      DerivedRoberta().EncodeForModel("a b c", "x y z", 9).input_ids;
  ASSERT_EQ(ids.size(), 9u);
  EXPECT_EQ(DerivedRoberta().Decode(
                std::vector<int64_t>(ids.begin() + 1, ids.begin() + 4)),
            "a b c");
  EXPECT_EQ(DerivedRoberta().Decode(
                std::vector<int64_t>(ids.begin() + 6, ids.begin() + 8)),
            "x y");
}

TEST(BpeTokenizerTest, BadFilesNameFileAndLine) {
  const std::string dir = std::getenv("TEST_TMPDIR");
  std::ofstream(dir + "/merges.txt") << "#version: 0.2\nĠ t\nbad-line\n";
  absl::StatusOr<std::unique_ptr<BpeTokenizer>> tokenizer =
      BpeTokenizer::LoadGpt2(*AssetPath("gpt2/encoder.json"),
                             dir + "/merges.txt");
  ASSERT_FALSE(tokenizer.ok());
  EXPECT_THAT(std::string(tokenizer.status().message()),
              HasSubstr("merges.txt:3: expected two symbols separated by one "
                        "space, got \"bad-line\""));
  std::ofstream(dir + "/vocab.json")
      << R"({"<s>": 0, "a": 1, "<|endoftext|>": 2})";
  tokenizer = BpeTokenizer::LoadRoberta(dir + "/vocab.json",
                                        *AssetPath("gpt2/vocab.bpe"));
  EXPECT_THAT(std::string(tokenizer.status().message()),
              HasSubstr("vocab.json: special token <pad> is missing"));
  std::ofstream(dir + "/huge.json") << R"({"a": 0, "b": 1000000000000})";
  tokenizer =
      BpeTokenizer::LoadGpt2(dir + "/huge.json", *AssetPath("gpt2/vocab.bpe"));
  EXPECT_THAT(std::string(tokenizer.status().message()),
              HasSubstr("huge.json: token \"b\" has id 1000000000000; ids "
                        "must be 0 .. 1"));
  std::ofstream(dir + "/twice.json") << R"({"a": 0, "b": 0})";
  tokenizer =
      BpeTokenizer::LoadGpt2(dir + "/twice.json", *AssetPath("gpt2/vocab.bpe"));
  EXPECT_THAT(std::string(tokenizer.status().message()),
              HasSubstr("twice.json: id 0 is given to more than one token"));
  std::ofstream(dir + "/broken.json") << "[1, 2]";
  tokenizer = BpeTokenizer::LoadGpt2(dir + "/broken.json",
                                     *AssetPath("gpt2/vocab.bpe"));
  EXPECT_THAT(std::string(tokenizer.status().message()),
              HasSubstr("broken.json: not a JSON object of token ids"));
  EXPECT_EQ(BpeTokenizer::LoadGpt2(dir + "/missing.json", dir + "/merges.txt")
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

}  // namespace
}  // namespace lora::core
