// Tokenising the 4,000 Pang & Lee polarity sentences with the RoBERTa
// (GPT-2-derived) tokenizer, with a cold per-word cache (a fresh tokenizer
// per iteration, loading excluded) and a warm one. Results: BENCHMARKS.md.
//
//   bazel run -c opt //bench:tokenizer_bench
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "lora_core/assets.h"
#include "lora_core/bpe_tokenizer.h"
#include "lora_core/text_datasets.h"

namespace lora::core {
namespace {

std::vector<std::string> Sentences() {
  static const std::vector<std::string>* const sentences = [] {
    auto* texts = new std::vector<std::string>();
    // Keep the StatusOr alive: ranging over *Temporary() would dangle.
    const absl::StatusOr<std::vector<LabeledText>> rows =
        ReadPolarityCsv(*AssetPath("polarity/pang_lee_sentences.csv"));
    for (const LabeledText& row : *rows) {
      texts->push_back(row.text);
    }
    return texts;
  }();
  return *sentences;
}

std::unique_ptr<BpeTokenizer> LoadTokenizer() {
  return *BpeTokenizer::LoadRobertaDerivedFromGpt2(
      *AssetPath("gpt2/encoder.json"), *AssetPath("gpt2/vocab.bpe"));
}

void BM_TokenizePolarityColdCache(benchmark::State& state) {
  const std::vector<std::string> sentences = Sentences();
  int64_t tokens = 0;
  for (auto _ : state) {
    state.PauseTiming();
    std::unique_ptr<BpeTokenizer> tokenizer = LoadTokenizer();
    state.ResumeTiming();
    for (const std::string& sentence : sentences) {
      tokens += tokenizer->EncodeForModel(sentence, 64).input_ids.size();
    }
  }
  state.counters["sentences/s"] = benchmark::Counter(
      static_cast<double>(sentences.size()) * state.iterations(),
      benchmark::Counter::kIsRate);
  state.counters["tokens/s"] = benchmark::Counter(static_cast<double>(tokens),
                                                  benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TokenizePolarityColdCache)->Unit(benchmark::kMillisecond);

void BM_TokenizePolarityWarmCache(benchmark::State& state) {
  const std::vector<std::string> sentences = Sentences();
  std::unique_ptr<BpeTokenizer> tokenizer = LoadTokenizer();
  for (const std::string& sentence : sentences) tokenizer->Encode(sentence);
  for (auto _ : state) {
    for (const std::string& sentence : sentences) {
      benchmark::DoNotOptimize(tokenizer->EncodeForModel(sentence, 64));
    }
  }
  state.counters["sentences/s"] = benchmark::Counter(
      static_cast<double>(sentences.size()) * state.iterations(),
      benchmark::Counter::kIsRate);
}
BENCHMARK(BM_TokenizePolarityWarmCache)->Unit(benchmark::kMillisecond);

void BM_LoadTokenizer(benchmark::State& state) {
  for (auto _ : state) benchmark::DoNotOptimize(LoadTokenizer());
}
BENCHMARK(BM_LoadTokenizer)->Unit(benchmark::kMillisecond);

}  // namespace
}  // namespace lora::core

BENCHMARK_MAIN();
