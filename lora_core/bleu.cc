#include "lora_core/bleu.h"

#include <algorithm>
#include <cctype>
#include <cfloat>
#include <cmath>
#include <cstdlib>
#include <map>

namespace lora::core {
namespace {

std::map<Tokens, int> NgramCounts(const Tokens& tokens, int n) {
  std::map<Tokens, int> counts;
  for (size_t i = 0; i + n <= tokens.size(); ++i) {
    ++counts[Tokens(tokens.begin() + i, tokens.begin() + i + n)];
  }
  return counts;
}

}  // namespace

double CorpusBleu(const std::vector<std::vector<Tokens>>& references,
                  const std::vector<Tokens>& hypotheses, int max_order) {
  std::vector<long long> numerators(max_order + 1, 0);
  std::vector<long long> denominators(max_order + 1, 0);
  long long hypothesis_length = 0, reference_length = 0;
  for (size_t i = 0; i < hypotheses.size() && i < references.size(); ++i) {
    const Tokens& hypothesis = hypotheses[i];
    for (int n = 1; n <= max_order; ++n) {
      const std::map<Tokens, int> counts = NgramCounts(hypothesis, n);
      std::map<Tokens, int> max_reference_counts;
      for (const Tokens& reference : references[i]) {
        for (const auto& [ngram, count] : NgramCounts(reference, n)) {
          int& best = max_reference_counts[ngram];
          best = std::max(best, count);
        }
      }
      long long clipped = 0, total = 0;
      for (const auto& [ngram, count] : counts) {
        auto it = max_reference_counts.find(ngram);
        clipped +=
            std::min(count, it == max_reference_counts.end() ? 0 : it->second);
        total += count;
      }
      numerators[n] += clipped;
      denominators[n] += std::max<long long>(1, total);
    }
    const long long length = static_cast<long long>(hypothesis.size());
    hypothesis_length += length;
    long long closest = -1;
    for (const Tokens& reference : references[i]) {
      const long long candidate = static_cast<long long>(reference.size());
      if (closest < 0 ||
          std::llabs(candidate - length) < std::llabs(closest - length) ||
          (std::llabs(candidate - length) == std::llabs(closest - length) &&
           candidate < closest)) {
        closest = candidate;
      }
    }
    reference_length += std::max<long long>(closest, 0);
  }
  if (numerators[1] == 0) return 0.0;
  double brevity = 1.0;
  if (hypothesis_length <= reference_length) {
    brevity = hypothesis_length == 0
                  ? 0.0
                  : std::exp(1.0 - static_cast<double>(reference_length) /
                                       static_cast<double>(hypothesis_length));
  }
  double log_sum = 0.0;
  for (int n = 1; n <= max_order; ++n) {
    // A zero count contributes log(DBL_MIN), as NLTK's method0 does.
    const double precision =
        numerators[n] == 0
            ? DBL_MIN
            : static_cast<double>(numerators[n]) / denominators[n];
    log_sum += std::log(precision) / max_order;
  }
  return brevity * std::exp(log_sum);
}

Tokens BleuTokenize(absl::string_view text) {
  Tokens tokens;
  std::string current;
  auto flush = [&] {
    if (!current.empty()) tokens.push_back(std::move(current));
    current.clear();
  };
  for (char c : text) {
    const unsigned char u = static_cast<unsigned char>(c);
    if (std::isspace(u)) {
      flush();
    } else if (u < 0x80 && std::ispunct(u) && c != '\'' && c != '-') {
      flush();
      tokens.push_back(std::string(1, c));
    } else {
      current.push_back(static_cast<char>(std::tolower(u)));
    }
  }
  flush();
  return tokens;
}

}  // namespace lora::core
