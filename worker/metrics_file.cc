#include "worker/metrics_file.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cmath>
#include <cstring>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/json_util.h"

namespace lora::worker {
namespace {

constexpr size_t kReadBytes = 64 << 10;

// Closes a file descriptor on scope exit.
class Fd {
 public:
  explicit Fd(int fd) : fd_(fd) {}
  ~Fd() {
    if (fd_ >= 0) ::close(fd_);
  }
  Fd(const Fd&) = delete;
  Fd& operator=(const Fd&) = delete;
  int get() const { return fd_; }

 private:
  const int fd_;
};

absl::Status ErrnoError(const std::string& what, const std::string& path,
                        int error) {
  return absl::InternalError(
      absl::StrCat("cannot ", what, " ", path, ": ", std::strerror(error)));
}

// Opens `path` for reading; -1 with errno ENOENT when it does not exist.
absl::StatusOr<int> OpenForRead(const std::string& path) {
  const int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (fd < 0 && errno != ENOENT) return ErrnoError("open", path, errno);
  return fd;
}

absl::StatusOr<int64_t> FileSize(int fd, const std::string& path) {
  struct stat info;
  if (::fstat(fd, &info) != 0) return ErrnoError("stat", path, errno);
  return static_cast<int64_t>(info.st_size);
}

// Reads up to `size` bytes at `offset`; the count read (0 at end of file).
absl::StatusOr<size_t> ReadAt(int fd, const std::string& path, char* buffer,
                              size_t size, int64_t offset) {
  while (true) {
    const ssize_t got = ::pread(fd, buffer, size, offset);
    if (got >= 0) return static_cast<size_t>(got);
    if (errno != EINTR) return ErrnoError("read", path, errno);
  }
}

bool IsBlank(const std::string& line) {
  return std::all_of(line.begin(), line.end(), [](char c) {
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
  });
}

std::optional<double> FiniteNumber(const nlohmann::json& record,
                                   const char* key) {
  const auto it = record.find(key);
  if (it == record.end() || !it->is_number()) return std::nullopt;
  const double value = it->get<double>();
  if (!std::isfinite(value)) return std::nullopt;
  return value;
}

std::optional<int64_t> NonNegativeInteger(const nlohmann::json& record,
                                          const char* key) {
  const auto it = record.find(key);
  if (it == record.end() || !it->is_number_integer()) return std::nullopt;
  if (it->is_number_unsigned()) {
    const uint64_t value = it->get<uint64_t>();
    if (value > static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
      return std::nullopt;
    }
    return static_cast<int64_t>(value);
  }
  const int64_t value = it->get<int64_t>();
  if (value < 0) return std::nullopt;
  return value;
}

std::string TypeOf(const nlohmann::json& record) {
  if (!record.is_object()) return "";
  const auto it = record.find("type");
  if (it == record.end() || !it->is_string()) return "";
  return it->get<std::string>();
}

v1::MetricPoint MakePoint(std::string name, int64_t step, int32_t epoch,
                          double value, int64_t now_ms) {
  v1::MetricPoint point;
  point.set_name(std::move(name));
  point.set_step(step);
  point.set_epoch(epoch);
  point.set_value(value);
  point.mutable_time()->set_seconds(now_ms / 1000);
  point.mutable_time()->set_nanos(static_cast<int32_t>(now_ms % 1000) *
                                  1000000);
  return point;
}

}  // namespace

MetricsFileTail::MetricsFileTail(std::string path,
                                 MetricsFileTailOptions options)
    : path_(std::move(path)), options_(options) {}

absl::StatusOr<MetricsChunk> MetricsFileTail::Read(int64_t from_offset,
                                                   size_t max_records) {
  if (from_offset < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("negative offset ", from_offset, " into ", path_));
  }
  MetricsChunk chunk;
  chunk.next_offset = from_offset;
  absl::StatusOr<int> opened = OpenForRead(path_);
  if (!opened.ok()) return opened.status();
  const Fd fd(*opened);
  int64_t size = 0;
  if (fd.get() >= 0) {
    absl::StatusOr<int64_t> file_size = FileSize(fd.get(), path_);
    if (!file_size.ok()) return file_size.status();
    size = *file_size;
  }
  if (from_offset > size) {
    return absl::FailedPreconditionError(
        absl::StrCat("offset ", from_offset, " lies beyond the end of ", path_,
                     " (", size, " bytes): the file shrank or was replaced"));
  }
  if (fd.get() < 0 || max_records == 0) return chunk;

  std::string buffer(kReadBytes, '\0');
  std::string line;
  bool overlong = false;
  int64_t position = from_offset;  // of buffer[0]
  while (true) {
    absl::StatusOr<size_t> got =
        ReadAt(fd.get(), path_, buffer.data(), buffer.size(), position);
    if (!got.ok()) return got.status();
    if (*got == 0) return chunk;  // a last line without '\n' waits
    for (size_t i = 0; i < *got; ++i) {
      const char c = buffer[i];
      if (c != '\n') {
        // Past the limit the line is invalid anyway: stop keeping its bytes.
        if (line.size() < options_.max_line_bytes) {
          line.push_back(c);
        } else {
          overlong = true;
        }
        continue;
      }
      const int64_t end = position + static_cast<int64_t>(i) + 1;
      bool valid = false;
      bool blank = false;
      nlohmann::json record;
      if (overlong) {
        valid = false;
      } else if (IsBlank(line)) {
        blank = true;
      } else if (JsonNestingDepth(line) <= options_.max_nesting_depth) {
        record =
            nlohmann::json::parse(line, nullptr, /*allow_exceptions=*/false);
        valid = !record.is_discarded() && record.is_object();
      }
      if (valid) {
        chunk.records.push_back({std::move(record), end});
      } else if (!blank) {
        ++chunk.invalid_lines;
        if (end > examined_until_) ++invalid_lines_total_;
      }
      examined_until_ = std::max(examined_until_, end);
      chunk.next_offset = end;
      line.clear();
      overlong = false;
      if (chunk.records.size() >= max_records) return chunk;
    }
    position += static_cast<int64_t>(*got);
  }
}

absl::StatusOr<int64_t> MetricsFileTail::CompleteEnd() const {
  absl::StatusOr<int> opened = OpenForRead(path_);
  if (!opened.ok()) return opened.status();
  const Fd fd(*opened);
  if (fd.get() < 0) return 0;
  absl::StatusOr<int64_t> size = FileSize(fd.get(), path_);
  if (!size.ok()) return size.status();
  std::string buffer(kReadBytes, '\0');
  int64_t end = *size;  // search [0, end) backwards for the last '\n'
  while (end > 0) {
    const int64_t start = std::max<int64_t>(0, end - kReadBytes);
    absl::StatusOr<size_t> got =
        ReadAt(fd.get(), path_, buffer.data(), static_cast<size_t>(end - start),
               start);
    if (!got.ok()) return got.status();
    for (size_t i = *got; i > 0; --i) {
      if (buffer[i - 1] == '\n') return start + static_cast<int64_t>(i);
    }
    if (*got == 0) break;
    end = start;
  }
  return 0;
}

std::vector<v1::MetricPoint> PointsOf(const nlohmann::json& record,
                                      int64_t now_ms) {
  std::vector<v1::MetricPoint> points;
  const std::string type = TypeOf(record);
  if (type != "step" && type != "epoch" && type != "generation") return points;
  const std::optional<int64_t> step = StepOf(record);
  if (!step.has_value()) return points;
  const std::optional<int64_t> epoch_value =
      NonNegativeInteger(record, "epoch");
  const int32_t epoch =
      epoch_value.has_value() &&
              *epoch_value <= std::numeric_limits<int32_t>::max()
          ? static_cast<int32_t>(*epoch_value)
          : 0;
  auto add = [&](const char* key, const char* name) {
    if (std::optional<double> value = FiniteNumber(record, key)) {
      points.push_back(MakePoint(name, *step, epoch, *value, now_ms));
    }
  };
  if (type == "step") {
    add("loss", "loss");
    add("lr", "learning_rate");
    add("grad_norm", "grad_norm");
    add("tokens_per_second", "tokens_per_second");
    add("loss_scale", "loss_scale");
    return points;
  }
  if (type == "epoch") add("train_loss", "train_loss");
  // Validation metrics of an epoch or generation record; keys iterate in
  // sorted order, so the points come out deterministically.
  for (const auto& item : record.items()) {
    if (absl::StartsWith(item.key(), "val_")) {
      add(item.key().c_str(), item.key().c_str());
    }
  }
  return points;
}

std::optional<int64_t> CheckpointStepOf(const nlohmann::json& record) {
  if (TypeOf(record) != "checkpoint") return std::nullopt;
  return StepOf(record);
}

std::optional<int64_t> StepOf(const nlohmann::json& record) {
  if (!record.is_object()) return std::nullopt;
  return NonNegativeInteger(record, "step");
}

}  // namespace lora::worker
