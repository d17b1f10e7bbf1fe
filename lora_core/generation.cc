#include "lora_core/generation.h"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace lora::core {
namespace {

struct Beam {
  std::vector<int64_t> tokens;  // prompt + generated
  double log_probability = 0.0;
};

struct Finished {
  std::vector<int64_t> generated;
  double score;
};

double Normalised(double log_probability, int64_t length, double penalty) {
  return log_probability /
         std::pow(static_cast<double>(std::max<int64_t>(length, 1)), penalty);
}

}  // namespace

std::vector<int64_t> BannedNgramTokens(const std::vector<int64_t>& sequence,
                                       int64_t ngram_size) {
  std::vector<int64_t> banned;
  const int64_t length = static_cast<int64_t>(sequence.size());
  if (ngram_size <= 0 || length + 1 < ngram_size) return banned;
  // The last n-1 tokens; any earlier n-gram starting with them bans its last
  // token.
  const int64_t prefix = ngram_size - 1;
  for (int64_t start = 0; start + ngram_size <= length; ++start) {
    bool match = true;
    for (int64_t k = 0; k < prefix && match; ++k) {
      match = sequence[start + k] == sequence[length - prefix + k];
    }
    if (match) banned.push_back(sequence[start + prefix]);
  }
  return banned;
}

std::vector<int64_t> Generate(TaskModel& model,
                              const std::vector<int64_t>& prompt,
                              const GenerationOptions& options) {
  at::NoGradGuard no_grad;
  model.eval();
  const int64_t prompt_length = static_cast<int64_t>(prompt.size());
  const int64_t beam_size = std::max<int64_t>(options.beam_size, 1);
  const int64_t max_positions = model.config().max_position_embeddings;
  std::vector<Beam> beams = {Beam{prompt, 0.0}};
  std::vector<Finished> finished;
  for (int64_t step = 0; step < options.max_new_tokens; ++step) {
    const int64_t length = static_cast<int64_t>(beams[0].tokens.size());
    if (length >= max_positions) break;
    std::vector<int64_t> flat;
    for (const Beam& beam : beams) {
      flat.insert(flat.end(), beam.tokens.begin(), beam.tokens.end());
    }
    at::Tensor ids = at::tensor(flat, at::kLong)
                         .view({static_cast<int64_t>(beams.size()), length});
    at::Tensor logits =
        model.forward(ids, at::ones_like(ids)).logits.select(1, length - 1);
    at::Tensor log_probs = at::log_softmax(logits.to(at::kFloat), -1);
    for (size_t b = 0; b < beams.size(); ++b) {
      for (int64_t token :
           BannedNgramTokens(beams[b].tokens, options.no_repeat_ngram_size)) {
        log_probs[b][token] = -std::numeric_limits<float>::infinity();
      }
    }
    // Candidates: the best 2 * beam_size continuations over all beams.
    std::vector<float> beam_scores;
    for (const Beam& beam : beams) {
      beam_scores.push_back(static_cast<float>(beam.log_probability));
    }
    at::Tensor total =
        log_probs + at::tensor(beam_scores, at::kFloat).unsqueeze(1);
    const int64_t vocab = total.size(1);
    const int64_t candidates = std::min<int64_t>(2 * beam_size, total.numel());
    auto top = at::topk(total.view({-1}), candidates);
    at::Tensor values = std::get<0>(top), indices = std::get<1>(top);
    std::vector<Beam> next;
    for (int64_t c = 0; c < candidates; ++c) {
      const double score = values[c].item<double>();
      if (!std::isfinite(score)) break;
      const int64_t index = indices[c].item<int64_t>();
      const Beam& parent = beams[index / vocab];
      const int64_t token = index % vocab;
      const int64_t generated = length - prompt_length + 1;
      if (token == options.eos_id) {
        finished.push_back(
            Finished{std::vector<int64_t>(parent.tokens.begin() + prompt_length,
                                          parent.tokens.end()),
                     Normalised(score, generated, options.length_penalty)});
        continue;
      }
      Beam child{parent.tokens, score};
      child.tokens.push_back(token);
      next.push_back(std::move(child));
      if (static_cast<int64_t>(next.size()) == beam_size) break;
    }
    if (beam_size == 1 && !finished.empty()) break;  // Greedy hit eos.
    if (next.empty()) break;
    beams = std::move(next);
    // Done when enough beams finished and no live beam can still beat the
    // worst of them (log probabilities only fall).
    if (static_cast<int64_t>(finished.size()) >= beam_size) {
      std::sort(finished.begin(), finished.end(),
                [](const Finished& a, const Finished& b) {
                  return a.score > b.score;
                });
      finished.resize(beam_size);
      const double best_live = Normalised(
          beams[0].log_probability,
          static_cast<int64_t>(beams[0].tokens.size()) - prompt_length,
          options.length_penalty);
      if (best_live <= finished.back().score) break;
    }
  }
  if (finished.empty()) {
    for (const Beam& beam : beams) {
      finished.push_back(Finished{
          std::vector<int64_t>(beam.tokens.begin() + prompt_length,
                               beam.tokens.end()),
          Normalised(beam.log_probability,
                     static_cast<int64_t>(beam.tokens.size()) - prompt_length,
                     options.length_penalty)});
    }
  }
  return std::max_element(finished.begin(), finished.end(),
                          [](const Finished& a, const Finished& b) {
                            return a.score < b.score;
                          })
      ->generated;
}

}  // namespace lora::core
