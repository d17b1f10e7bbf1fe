// Reading the metrics a training child writes: `lora-train train` appends one
// JSON object per line to <output-dir>/metrics.jsonl (lora_core/trainer.cc,
// Trainer::Record). The worker only ever reads that file, by byte offset, so
// the child never waits on the worker or the network.
//
// Record types and the metric points they carry (PointsOf):
//   {"type":"step","step":N,"epoch":E,"loss":x,"lr":x,"grad_norm":x,
//    "tokens_per_second":x,"loss_scale":x,...}
//       -> "loss", "learning_rate", "grad_norm", "tokens_per_second",
//          "loss_scale" at (N, E)
//   {"type":"epoch","epoch":E,"step":N,"train_loss":x,"val_*":x,...}
//       -> "train_loss" and every numeric "val_*" key at (N, E)
//   {"type":"generation","step":N,"val_bleu":x}
//       -> every numeric "val_*" key at (N, the record's "epoch" or 0)
//   {"type":"checkpoint","step":N,"epoch":E}
//       -> no point; see CheckpointStepOf
//   anything else ("resume", "load_report", unknown types) -> no point.
// The step record's loss is "loss" and the epoch record's mean is
// "train_loss", so the two never collide on the coordinator's (run, attempt,
// step, name) key even when an epoch ends on a logged step.
#ifndef LORA_SWEEP_WORKER_METRICS_FILE_H_
#define LORA_SWEEP_WORKER_METRICS_FILE_H_

#include <cstddef>
#include <cstdint>
#include <nlohmann/json.hpp>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "lora/v1/common.pb.h"

namespace lora::worker {

// One complete line of the file, parsed.
struct MetricsRecord {
  nlohmann::json json;     // always a JSON object
  int64_t end_offset = 0;  // byte offset just after the line's '\n'
};

struct MetricsChunk {
  // Valid records in file order.
  std::vector<MetricsRecord> records;
  // Where the next Read continues: just after the last line this Read
  // examined (valid or not). Equals `from_offset` when no complete line
  // follows it. When every record is consumed, resume here rather than at
  // the last record's end_offset, so skipped lines are not examined again.
  int64_t next_offset = 0;
  // Lines in [from_offset, next_offset) that were skipped as invalid.
  int64_t invalid_lines = 0;
};

struct MetricsFileTailOptions {
  // A complete line longer than this (without its '\n') is invalid and is
  // not parsed.
  size_t max_line_bytes = 1 << 20;
  // A line nested deeper than this ([ and {) is invalid and is not parsed
  // (nlohmann's parser recurses).
  int max_nesting_depth = 32;
};

// Tails a JSON-lines file that another process appends to. Only complete
// lines count: a last line without its '\n' is still being written and is
// left for a later Read. A complete line that is not a JSON object (broken
// JSON, a bare number, too long, too deep) is skipped and counted; it never
// stops the stream. Blank lines are skipped without being counted.
//
// The file must only grow. It may not exist yet (Read then returns an empty
// chunk).
//
// Thread-compatible: one thread at a time (the counter below is not
// synchronised).
class MetricsFileTail {
 public:
  explicit MetricsFileTail(std::string path,
                           MetricsFileTailOptions options = {});

  // Up to `max_records` valid records from the complete lines that start at
  // byte `from_offset` (which must be 0 or the end of a line). Reading stops
  // right after the `max_records`-th valid record, or at the last complete
  // line. Errors: InvalidArgument for a negative offset; FailedPrecondition
  // when `from_offset` lies beyond the end of the file (it shrank or was
  // replaced); Internal when the file cannot be opened or read (naming it).
  absl::StatusOr<MetricsChunk> Read(int64_t from_offset, size_t max_records);

  // The offset just after the last complete line now in the file (0 when
  // the file does not exist or has no complete line). Errors: Internal when
  // the file exists but cannot be read.
  absl::StatusOr<int64_t> CompleteEnd() const;

  // Invalid lines seen so far by any Read, each counted once however often
  // it is read again.
  int64_t invalid_lines_total() const { return invalid_lines_total_; }

  const std::string& path() const { return path_; }

 private:
  const std::string path_;
  const MetricsFileTailOptions options_;
  // Lines ending at or before this offset have been examined before; only
  // invalid lines beyond it add to invalid_lines_total_.
  int64_t examined_until_ = 0;
  int64_t invalid_lines_total_ = 0;
};

// The metric points a record carries (see the table at the top), each with
// `time` = now_ms (Unix milliseconds). Keys that are missing, not numbers,
// or not finite are left out; a step, epoch or generation record without an
// integer "step" carries no point. Pure function.
std::vector<v1::MetricPoint> PointsOf(const nlohmann::json& record,
                                      int64_t now_ms);

// For a {"type":"checkpoint","step":N,...} record, N: a checkpoint of step
// N was durably saved in <output-dir>/checkpoint/ before the line was
// written. std::nullopt for any other record.
std::optional<int64_t> CheckpointStepOf(const nlohmann::json& record);

// The record's integer "step", if it has one (any type).
std::optional<int64_t> StepOf(const nlohmann::json& record);

}  // namespace lora::worker

#endif  // LORA_SWEEP_WORKER_METRICS_FILE_H_
