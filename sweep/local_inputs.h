// Local folders named by a sweep file, and the rewrite that makes the sweep
// refer to them as uploaded artifacts.
//
// A sweep may name a local dataset folder (`data_dir:`) and local Hugging
// Face checkpoint folders (`model:`, at the top level or swept). Such paths
// mean nothing on the coordinator or on workers, so loractl uploads each
// folder once as a content-addressed artifact (sweep/artifact_manifest.h)
// and submits the sweep with every such value replaced by the artifact's id:
//
//   FindLocalInputs(text, "sweep.yaml")      -> the values and where they are
//   ManifestOfFolder(input.path) + upload    -> an artifact id per folder
//   ReplaceScalars(text, {{input, id}, ...}) -> the text to submit
//
// The rewrite changes only the replaced values: every other byte, comments
// included, and every line number stay as the user wrote them, so errors the
// coordinator reports still point at the user's lines.
//
// Relative folders are resolved against the current directory, as
// LocalValidationOptions() in sweep_spec.h does. Functions keep no state;
// FindLocalInputs reads $HOME and the file system.
#ifndef LORA_SWEEP_SWEEP_LOCAL_INPUTS_H_
#define LORA_SWEEP_SWEEP_LOCAL_INPUTS_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"

namespace lora::sweep {

// lora.v1.ArtifactKind values of the inputs a sweep uploads.
inline constexpr int kArtifactKindDataset = 1;
inline constexpr int kArtifactKindBaseCheckpoint = 2;

// One value of a sweep file that names a local folder.
struct LocalInput {
  // Where the value is: "data_dir", "model", "parameters.model" or
  // "points[<i>].model" (i from 0).
  std::string key;
  std::string value;  // the scalar as parsed (quotes and escapes resolved)
  // `value` with a leading "~/" (or a lone "~") expanded from $HOME; the
  // folder to upload.
  std::string path;
  int kind = 0;  // kArtifactKindDataset or kArtifactKindBaseCheckpoint
  // Position of the scalar node (yaml-cpp's Mark), both 0-based: line counts
  // '\n', column counts bytes. For a value with an anchor or a tag
  // ("&m ./ckpt") it is where the anchor or tag begins.
  int line = 0;
  int column = 0;
};

// The local folders named by a sweep file, in file order, one entry per
// occurrence (a folder named twice is listed twice; upload it once):
// - the top-level `data_dir`, unless it is empty or an artifact id;
// - the top-level `model`, every value of a swept `model` under
//   `parameters:` (a list, or {values: [...]}), and the `model` of every
//   entry under `points:`, when the value is an existing folder. Built-in
//   model names (lora_core's BuiltinModelNames(), even if a folder of that
//   name exists, as the sweep resolves them first) and artifact ids are
//   skipped, as is any other value that is not a folder (ParseSweepSpec
//   reports it).
// Values that are not scalars, and other mistakes in the file's structure,
// are left for ParseSweepSpec to report.
//
// Errors (InvalidArgument, "<source>:<line>: <key>: <problem>"): the text is
// not valid YAML (as LoadYamlDocument reports it); `data_dir` is neither an
// artifact id nor an existing folder (the message gives the path looked at).
absl::StatusOr<std::vector<LocalInput>> FindLocalInputs(
    const std::string& text, const std::string& source);

// Returns `text` with the scalar of each replacement's input (found at its
// line and column, which must hold a scalar equal to its `value`) written as
// a double-quoted YAML scalar of the given string. Plain, single- and
// double-quoted scalars, in block or flow context, with or without an
// anchor or a tag before them, can be replaced; everything outside the
// replaced scalars stays byte-identical, and no line is added or removed.
// The same input may be given twice with the same replacement.
//
// The result is checked by parsing it: its document must equal the
// original one with exactly the replaced values changed, each at its
// original line. Errors (InvalidArgument naming the line): the text is not
// valid YAML; no scalar with the input's value is at its position; the
// scalar spans several lines (block scalars `|`, `>`, and plain or quoted
// scalars folded over lines) or cannot otherwise be replaced safely; two
// different replacements for one scalar; the check of the result fails.
absl::StatusOr<std::string> ReplaceScalars(
    const std::string& text,
    const std::vector<std::pair<LocalInput, std::string>>& replacements);

}  // namespace lora::sweep

#endif  // LORA_SWEEP_SWEEP_LOCAL_INPUTS_H_
