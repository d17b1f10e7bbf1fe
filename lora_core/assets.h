// Where the offline assets fetched by scripts/setup.sh live: GPT-2's BPE
// files, the Pang & Lee polarity corpus, Moby-Dick.
#ifndef LORA_SWEEP_LORA_CORE_ASSETS_H_
#define LORA_SWEEP_LORA_CORE_ASSETS_H_

#include <string>

#include "absl/status/statusor.h"

namespace lora::core {

// $LORA_SWEEP_ASSETS if set, else $HOME/.cache/lora-sweep/assets.
std::string AssetsDirectory();

// The path of one asset, e.g. AssetPath("gpt2/encoder.json"). NotFound,
// saying to run scripts/setup.sh, if the file is not there.
absl::StatusOr<std::string> AssetPath(const std::string& relative);

}  // namespace lora::core

#endif  // LORA_SWEEP_LORA_CORE_ASSETS_H_
