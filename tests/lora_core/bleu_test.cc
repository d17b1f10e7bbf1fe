// BLEU against Debian's python3-nltk corpus_bleu on fixed inputs with several
// references (nltk is run here, on the same tokens).
#include "lora_core/bleu.h"

#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <nlohmann/json.hpp>
#include <string>

#include "gtest/gtest.h"

namespace lora::core {
namespace {

using Json = nlohmann::json;

double NltkCorpusBleu(const std::vector<std::vector<Tokens>>& references,
                      const std::vector<Tokens>& hypotheses) {
  const std::string input =
      std::string(std::getenv("TEST_TMPDIR")) + "/bleu_input.json";
  std::ofstream(input)
      << Json({{"references", references}, {"hypotheses", hypotheses}}).dump();
  const std::string command =
      "/usr/bin/python3 -W ignore -c 'import json, sys; "
      "from nltk.translate.bleu_score import corpus_bleu; "
      "d = json.load(open(sys.argv[1])); "
      "print(repr(float(corpus_bleu(d[\"references\"], "
      "d[\"hypotheses\"]))))' " +
      input;
  FILE* pipe = ::popen(command.c_str(), "r");
  char buffer[128] = {};
  EXPECT_NE(std::fgets(buffer, sizeof buffer, pipe), nullptr);
  EXPECT_EQ(::pclose(pipe), 0);
  return std::strtod(buffer, nullptr);
}

std::vector<std::vector<Tokens>> References(
    const std::vector<std::vector<std::string>>& texts) {
  std::vector<std::vector<Tokens>> out;
  for (const auto& group : texts) {
    out.emplace_back();
    for (const std::string& text : group) {
      out.back().push_back(BleuTokenize(text));
    }
  }
  return out;
}

std::vector<Tokens> Hypotheses(const std::vector<std::string>& texts) {
  std::vector<Tokens> out;
  for (const std::string& text : texts) out.push_back(BleuTokenize(text));
  return out;
}

TEST(BleuTest, MatchesNltkWithMultipleReferences) {
  const auto references = References({
      {"The Eagle is a cheap coffee shop near Burger King.",
       "Near Burger King, The Eagle is a coffee shop with cheap prices.",
       "There is a cheap coffee shop called The Eagle near Burger King."},
      {"Aromi is a family friendly Italian restaurant in the riverside area.",
       "In the riverside area, Aromi serves Italian food to families."},
      {"Zizzi is a pub.", "Zizzi, a pub.", "There is a pub called Zizzi."},
  });
  const auto hypotheses = Hypotheses({
      "The Eagle is a coffee shop near Burger King with cheap prices.",
      "Aromi is an Italian restaurant in the riverside area.",
      "Zizzi is a pub near the river.",
  });
  const double ours = CorpusBleu(references, hypotheses);
  const double nltk = NltkCorpusBleu(references, hypotheses);
  EXPECT_GT(ours, 0.3);
  EXPECT_NEAR(ours, nltk, 1e-6);
}

TEST(BleuTest, MatchesNltkOnBrevityPenaltyAndZeroCounts) {
  // A short hypothesis (brevity penalty) and one with no 4-gram match
  // (NLTK's method0: log of the smallest double).
  const auto references = References({
      {"a b c d e f g h i j k l", "a b c d e f g h"},
      {"x y z w", "x y z"},
  });
  const auto short_hypotheses = Hypotheses({"a b c d e", "x y z"});
  EXPECT_NEAR(CorpusBleu(references, short_hypotheses),
              NltkCorpusBleu(references, short_hypotheses), 1e-6);
  const auto sparse = Hypotheses({"a x b y", "z q"});
  EXPECT_NEAR(CorpusBleu(references, sparse),
              NltkCorpusBleu(references, sparse), 1e-6);
  const auto nothing = Hypotheses({"q r", "s"});
  EXPECT_EQ(CorpusBleu(references, nothing), 0.0);
  EXPECT_EQ(NltkCorpusBleu(references, nothing), 0.0);
}

TEST(BleuTest, PerfectMatchIsOne) {
  const auto references = References({{"the cat sat on the mat"}});
  EXPECT_DOUBLE_EQ(
      CorpusBleu(references, Hypotheses({"the cat sat on the mat"})), 1.0);
}

TEST(BleuTest, TokenizeSplitsPunctuationAndLowercases) {
  EXPECT_EQ(BleuTokenize("The Eagle, near Café Rouge. It's £20-25!"),
            (Tokens{"the", "eagle", ",", "near", "café", "rouge", ".", "it's",
                    "£20-25", "!"}));
}

}  // namespace
}  // namespace lora::core
