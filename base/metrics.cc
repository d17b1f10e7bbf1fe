#include "base/metrics.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <type_traits>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"

namespace lora::metrics {
namespace {

// The hot path promises no locks.
static_assert(std::atomic<double>::is_always_lock_free);
static_assert(std::atomic<uint64_t>::is_always_lock_free);

// std::atomic<double>::fetch_add is C++20.
void AtomicAdd(std::atomic<double>& target, double amount) {
  double current = target.load(std::memory_order_relaxed);
  while (!target.compare_exchange_weak(current, current + amount,
                                       std::memory_order_relaxed,
                                       std::memory_order_relaxed)) {
  }
}

bool IsValidMetricName(absl::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                        c == '_' || c == ':';
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !(digit && i > 0)) return false;
  }
  return true;
}

bool IsValidLabelName(absl::string_view name) {
  if (name.empty()) return false;
  for (size_t i = 0; i < name.size(); ++i) {
    const char c = name[i];
    const bool letter =
        (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
    const bool digit = c >= '0' && c <= '9';
    if (!letter && !(digit && i > 0)) return false;
  }
  return true;
}

// The length of the well-formed UTF-8 sequence at text[i] (RFC 3629: no
// overlong forms, no surrogates, nothing above U+10FFFF), or 0.
size_t Utf8SequenceLength(absl::string_view text, size_t i) {
  const auto byte = [&text](size_t k) {
    return static_cast<unsigned char>(text[k]);
  };
  const unsigned char lead = byte(i);
  if (lead < 0x80) return 1;
  size_t length;
  unsigned char low = 0x80;
  unsigned char high = 0xBF;
  if (lead >= 0xC2 && lead <= 0xDF) {
    length = 2;
  } else if (lead >= 0xE0 && lead <= 0xEF) {
    length = 3;
    if (lead == 0xE0) low = 0xA0;   // overlong
    if (lead == 0xED) high = 0x9F;  // surrogates
  } else if (lead >= 0xF0 && lead <= 0xF4) {
    length = 4;
    if (lead == 0xF0) low = 0x90;   // overlong
    if (lead == 0xF4) high = 0x8F;  // above U+10FFFF
  } else {
    return 0;
  }
  if (i + length > text.size()) return 0;
  if (byte(i + 1) < low || byte(i + 1) > high) return 0;
  for (size_t k = 2; k < length; ++k) {
    if (byte(i + k) < 0x80 || byte(i + k) > 0xBF) return 0;
  }
  return length;
}

bool IsValidUtf8(absl::string_view text) {
  for (size_t i = 0; i < text.size();) {
    const size_t length = Utf8SequenceLength(text, i);
    if (length == 0) return false;
    i += length;
  }
  return true;
}

// `text` with each byte that does not start a well-formed sequence replaced
// by U+FFFD.
std::string SanitizeUtf8(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (size_t i = 0; i < text.size();) {
    const size_t length = Utf8SequenceLength(text, i);
    if (length == 0) {
      out += "\xEF\xBF\xBD";
      ++i;
    } else {
      out.append(text.data() + i, length);
      i += length;
    }
  }
  return out;
}

bool AllValidUtf8(const std::vector<std::string>& values) {
  return std::all_of(values.begin(), values.end(),
                     [](const std::string& v) { return IsValidUtf8(v); });
}

std::vector<std::string> SanitizeAll(const std::vector<std::string>& values) {
  std::vector<std::string> out;
  out.reserve(values.size());
  for (const std::string& value : values) out.push_back(SanitizeUtf8(value));
  return out;
}

std::string EscapeHelp(absl::string_view help) {
  std::string out;
  out.reserve(help.size());
  for (const char c : help) {
    if (c == '\\') {
      out += "\\\\";
    } else if (c == '\n') {
      out += "\\n";
    } else {
      out += c;
    }
  }
  return out;
}

void AppendEscapedLabelValue(absl::string_view value, std::string* out) {
  for (const char c : value) {
    if (c == '\\') {
      *out += "\\\\";
    } else if (c == '"') {
      *out += "\\\"";
    } else if (c == '\n') {
      *out += "\\n";
    } else {
      *out += c;
    }
  }
}

// `{a="x",b="y"}`, with `le="..."` last when `le` is given; nothing when
// there are no labels at all.
void AppendLabels(const std::vector<std::string>& names,
                  const std::vector<std::string>& values, const std::string* le,
                  std::string* out) {
  if (names.empty() && le == nullptr) return;
  *out += '{';
  for (size_t i = 0; i < names.size(); ++i) {
    if (i > 0) *out += ',';
    absl::StrAppend(out, names[i], "=\"");
    AppendEscapedLabelValue(values[i], out);
    *out += '"';
  }
  if (le != nullptr) {
    if (!names.empty()) *out += ',';
    absl::StrAppend(out, "le=\"", *le, "\"");
  }
  *out += '}';
}

void AppendHeader(const FamilyBase& family, std::string* out) {
  if (!family.help().empty()) {
    absl::StrAppend(out, "# HELP ", family.name(), " ",
                    EscapeHelp(family.help()), "\n");
  }
  absl::StrAppend(out, "# TYPE ", family.name(), " ",
                  MetricTypeName(family.type()), "\n");
}

void AppendSample(absl::string_view name,
                  const std::vector<std::string>& label_names,
                  const std::vector<std::string>& label_values, double value,
                  std::string* out) {
  out->append(name.data(), name.size());
  AppendLabels(label_names, label_values, nullptr, out);
  absl::StrAppend(out, " ", FormatValue(value), "\n");
}

void AppendChild(const FamilyBase& family,
                 const std::vector<std::string>& label_values,
                 const Counter& counter, std::string* out) {
  AppendSample(family.name(), family.label_names(), label_values,
               counter.Value(), out);
}

void AppendChild(const FamilyBase& family,
                 const std::vector<std::string>& label_values,
                 const Gauge& gauge, std::string* out) {
  AppendSample(family.name(), family.label_names(), label_values, gauge.Value(),
               out);
}

void AppendChild(const FamilyBase& family,
                 const std::vector<std::string>& label_values,
                 const Histogram& histogram, std::string* out) {
  const Histogram::Snapshot snapshot = histogram.GetSnapshot();
  const std::string bucket_name = absl::StrCat(family.name(), "_bucket");
  for (size_t i = 0; i < snapshot.cumulative_counts.size(); ++i) {
    const std::string le = i < snapshot.upper_bounds.size()
                               ? FormatValue(snapshot.upper_bounds[i])
                               : std::string("+Inf");
    *out += bucket_name;
    AppendLabels(family.label_names(), label_values, &le, out);
    absl::StrAppend(out, " ", snapshot.cumulative_counts[i], "\n");
  }
  AppendSample(absl::StrCat(family.name(), "_sum"), family.label_names(),
               label_values, snapshot.sum, out);
  out->append(family.name());
  out->append("_count");
  AppendLabels(family.label_names(), label_values, nullptr, out);
  absl::StrAppend(out, " ", snapshot.count, "\n");
}

absl::Status ValidateDefinition(absl::string_view name, absl::string_view help,
                                const std::vector<std::string>& label_names,
                                MetricType type) {
  if (!IsValidMetricName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("metric name \"", name,
                     "\" is invalid: it must match [a-zA-Z_:][a-zA-Z0-9_:]*"));
  }
  if (!IsValidUtf8(help)) {
    return absl::InvalidArgumentError(
        absl::StrCat("help text of metric \"", name, "\" is not valid UTF-8"));
  }
  for (size_t i = 0; i < label_names.size(); ++i) {
    const std::string& label = label_names[i];
    if (!IsValidLabelName(label)) {
      return absl::InvalidArgumentError(
          absl::StrCat("label name \"", label, "\" of metric \"", name,
                       "\" is invalid: it must match [a-zA-Z_][a-zA-Z0-9_]*"));
    }
    if (absl::string_view(label).substr(0, 2) == "__") {
      return absl::InvalidArgumentError(
          absl::StrCat("label name \"", label, "\" of metric \"", name,
                       "\" is invalid: names starting with \"__\" are "
                       "reserved for Prometheus"));
    }
    if (type == MetricType::kHistogram && label == "le") {
      return absl::InvalidArgumentError(
          absl::StrCat("label name \"le\" of histogram \"", name,
                       "\" is reserved for bucket bounds"));
    }
    for (size_t j = 0; j < i; ++j) {
      if (label_names[j] == label) {
        return absl::InvalidArgumentError(absl::StrCat("label name \"", label,
                                                       "\" of metric \"", name,
                                                       "\" is given twice"));
      }
    }
  }
  return absl::OkStatus();
}

// Normalizes `bounds` (drops a trailing +Inf) or says what is wrong.
absl::Status NormalizeBounds(absl::string_view name,
                             std::vector<double>& bounds) {
  if (!bounds.empty() && bounds.back() == HUGE_VAL) bounds.pop_back();
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bucket bound ", i, " of histogram \"", name, "\" is ",
          FormatValue(bounds[i]),
          "; bounds must be finite (+Inf is added as the last bucket)"));
    }
    if (i > 0 && !(bounds[i - 1] < bounds[i])) {
      return absl::InvalidArgumentError(absl::StrCat(
          "bucket bounds of histogram \"", name,
          "\" must be strictly increasing, got ", FormatValue(bounds[i - 1]),
          " then ", FormatValue(bounds[i])));
    }
  }
  return absl::OkStatus();
}

absl::Status CheckBuckets(absl::string_view helper,
                          const std::vector<double>& bounds) {
  for (size_t i = 0; i < bounds.size(); ++i) {
    if (!std::isfinite(bounds[i]) || (i > 0 && !(bounds[i - 1] < bounds[i]))) {
      return absl::InvalidArgumentError(
          absl::StrCat(helper, ": bound ", i, " is ", FormatValue(bounds[i]),
                       ", which is not finite or not above the one before"));
    }
  }
  return absl::OkStatus();
}

// Samples computed by a callback at scrape time.
class CallbackFamily final : public FamilyBase {
 public:
  CallbackFamily(std::string name, std::string help, MetricType type,
                 std::vector<std::string> label_names, SampleCallback callback)
      : FamilyBase(std::move(name), std::move(help), type,
                   std::move(label_names)),
        callback_(std::move(callback)) {}

 private:
  void AppendExposition(std::string* out) const override {
    std::vector<Sample> samples;
    {
      // Held while the callback runs, so Detach() waits for it.
      absl::MutexLock lock(&mu_);
      if (!callback_) return;
      samples = callback_();
    }
    std::map<std::vector<std::string>, double> sorted;
    for (Sample& sample : samples) {
      if (sample.label_values.size() != label_names().size()) continue;
      if (AllValidUtf8(sample.label_values)) {
        sorted[std::move(sample.label_values)] = sample.value;
      } else {
        sorted[SanitizeAll(sample.label_values)] = sample.value;
      }
    }
    if (sorted.empty()) return;
    AppendHeader(*this, out);
    for (const auto& [label_values, value] : sorted) {
      AppendSample(name(), label_names(), label_values, value, out);
    }
  }

  void Detach() override {
    absl::MutexLock lock(&mu_);
    callback_ = nullptr;
  }

  mutable absl::Mutex mu_;
  SampleCallback callback_ ABSL_GUARDED_BY(mu_);
};

// The names `family` puts in the exposition.
std::vector<std::string> ExposedNames(const FamilyBase& family) {
  std::vector<std::string> names = {family.name()};
  if (family.type() == MetricType::kHistogram) {
    names.push_back(absl::StrCat(family.name(), "_bucket"));
    names.push_back(absl::StrCat(family.name(), "_sum"));
    names.push_back(absl::StrCat(family.name(), "_count"));
  }
  return names;
}

// How `b` differs from the registered `a`, or "" when it is the same
// definition.
std::string DefinitionDifference(const FamilyBase& a, const FamilyBase& b) {
  if (dynamic_cast<const CallbackFamily*>(&a) != nullptr ||
      dynamic_cast<const CallbackFamily*>(&b) != nullptr) {
    return "callback families cannot be registered twice";
  }
  if (a.type() != b.type()) {
    return absl::StrCat("it is a ", MetricTypeName(a.type()), ", not a ",
                        MetricTypeName(b.type()));
  }
  if (a.help() != b.help()) {
    return absl::StrCat("its help is \"", a.help(), "\", not \"", b.help(),
                        "\"");
  }
  if (a.label_names() != b.label_names()) {
    return absl::StrCat("its labels are {", absl::StrJoin(a.label_names(), ","),
                        "}, not {", absl::StrJoin(b.label_names(), ","), "}");
  }
  if (a.type() == MetricType::kHistogram) {
    const std::vector<double>& bounds_a =
        static_cast<const HistogramFamily&>(a).upper_bounds();
    const std::vector<double>& bounds_b =
        static_cast<const HistogramFamily&>(b).upper_bounds();
    if (bounds_a != bounds_b) {
      const auto format = [](std::string* out, double bound) {
        out->append(FormatValue(bound));
      };
      return absl::StrCat("its bucket bounds are {",
                          absl::StrJoin(bounds_a, ",", format), "}, not {",
                          absl::StrJoin(bounds_b, ",", format), "}");
    }
  }
  return "";
}

}  // namespace

absl::string_view MetricTypeName(MetricType type) {
  switch (type) {
    case MetricType::kCounter:
      return "counter";
    case MetricType::kGauge:
      return "gauge";
    case MetricType::kHistogram:
      return "histogram";
  }
  return "untyped";
}

void Counter::Increment(double amount) {
  if (!(amount >= 0.0)) return;  // negative or NaN
  AtomicAdd(value_, amount);
}

void Gauge::Add(double amount) { AtomicAdd(value_, amount); }

Histogram::Histogram(std::shared_ptr<const std::vector<double>> upper_bounds)
    : upper_bounds_(std::move(upper_bounds)),
      bucket_counts_(new std::atomic<uint64_t>[upper_bounds_->size() + 1]) {
  for (size_t i = 0; i <= upper_bounds_->size(); ++i) {
    bucket_counts_[i].store(0, std::memory_order_relaxed);
  }
}

void Histogram::Observe(double value) {
  const std::vector<double>& bounds = *upper_bounds_;
  const size_t bucket =
      std::isnan(value)
          ? bounds.size()
          : static_cast<size_t>(
                std::lower_bound(bounds.begin(), bounds.end(), value) -
                bounds.begin());
  bucket_counts_[bucket].fetch_add(1, std::memory_order_relaxed);
  AtomicAdd(sum_, value);
}

Histogram::Snapshot Histogram::GetSnapshot() const {
  Snapshot snapshot;
  snapshot.upper_bounds = *upper_bounds_;
  snapshot.cumulative_counts.reserve(upper_bounds_->size() + 1);
  uint64_t running = 0;
  for (size_t i = 0; i <= upper_bounds_->size(); ++i) {
    running += bucket_counts_[i].load(std::memory_order_relaxed);
    snapshot.cumulative_counts.push_back(running);
  }
  snapshot.count = running;
  snapshot.sum = sum_.load(std::memory_order_relaxed);
  return snapshot;
}

absl::StatusOr<std::vector<double>> ExponentialBuckets(double start,
                                                       double factor,
                                                       int count) {
  if (!(start > 0.0) || !(factor > 1.0) || count < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "ExponentialBuckets needs start > 0, factor > 1 and count >= 1, got "
        "start=",
        FormatValue(start), " factor=", FormatValue(factor), " count=", count));
  }
  std::vector<double> bounds;
  bounds.reserve(count);
  double bound = start;
  for (int i = 0; i < count; ++i) {
    bounds.push_back(bound);
    bound *= factor;
  }
  LORA_RETURN_IF_ERROR(CheckBuckets("ExponentialBuckets", bounds));
  return bounds;
}

absl::StatusOr<std::vector<double>> LinearBuckets(double start, double width,
                                                  int count) {
  if (!std::isfinite(start) || !(width > 0.0) || count < 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        "LinearBuckets needs a finite start, width > 0 and "
        "count >= 1, got start=",
        FormatValue(start), " width=", FormatValue(width), " count=", count));
  }
  std::vector<double> bounds;
  bounds.reserve(count);
  for (int i = 0; i < count; ++i) bounds.push_back(start + i * width);
  LORA_RETURN_IF_ERROR(CheckBuckets("LinearBuckets", bounds));
  return bounds;
}

std::string FormatValue(double value) {
  if (std::isnan(value)) return "NaN";
  if (std::isinf(value)) return value > 0 ? "+Inf" : "-Inf";
  // Every integer up to 2^53 is exact; write those in plain digits (and -0
  // as 0) rather than "1e+06".
  if (std::fabs(value) <= 9007199254740992.0 && value == std::trunc(value)) {
    return absl::StrCat(static_cast<int64_t>(value));
  }
  char buffer[64];
  const std::to_chars_result result =
      std::to_chars(buffer, buffer + sizeof(buffer), value);
  return std::string(buffer, result.ptr);
}

FamilyBase::FamilyBase(std::string name, std::string help, MetricType type,
                       std::vector<std::string> label_names)
    : name_(std::move(name)),
      help_(std::move(help)),
      type_(type),
      label_names_(std::move(label_names)) {}

template <typename T>
Family<T>::Family(std::string name, std::string help, MetricType type,
                  std::vector<std::string> label_names,
                  std::shared_ptr<const std::vector<double>> upper_bounds)
    : FamilyBase(std::move(name), std::move(help), type,
                 std::move(label_names)),
      upper_bounds_(std::move(upper_bounds)) {}

template <typename T>
const std::vector<double>& Family<T>::upper_bounds() const {
  static const std::vector<double>* const kNone = new std::vector<double>();
  return upper_bounds_ != nullptr ? *upper_bounds_ : *kNone;
}

template <typename T>
std::shared_ptr<T> Family<T>::NewChild() const {
  if constexpr (std::is_same_v<T, Histogram>) {
    return std::make_shared<Histogram>(upper_bounds_);
  } else {
    return std::make_shared<T>();
  }
}

template <typename T>
std::shared_ptr<T> Family<T>::WithLabels(
    const std::vector<std::string>& label_values) {
  if (label_values.size() != label_names().size()) {
    std::fprintf(stderr,
                 "metrics: %s{%s} takes %zu label values, WithLabels got %zu "
                 "{%s}\n",
                 name().c_str(), absl::StrJoin(label_names(), ",").c_str(),
                 label_names().size(), label_values.size(),
                 absl::StrJoin(label_values, ",").c_str());
    std::abort();
  }
  if (!AllValidUtf8(label_values)) return WithLabels(SanitizeAll(label_values));
  absl::MutexLock lock(&mu_);
  auto it = children_.find(label_values);
  if (it == children_.end()) {
    it = children_.emplace(label_values, NewChild()).first;
  }
  return it->second;
}

template <typename T>
bool Family<T>::Remove(const std::vector<std::string>& label_values) {
  const std::vector<std::string> key =
      AllValidUtf8(label_values) ? label_values : SanitizeAll(label_values);
  absl::MutexLock lock(&mu_);
  return children_.erase(key) > 0;
}

template <typename T>
void Family<T>::Clear() {
  absl::MutexLock lock(&mu_);
  children_.clear();
}

template <typename T>
size_t Family<T>::size() const {
  absl::MutexLock lock(&mu_);
  return children_.size();
}

template <typename T>
void Family<T>::AppendExposition(std::string* out) const {
  absl::MutexLock lock(&mu_);
  if (children_.empty()) return;
  AppendHeader(*this, out);
  for (const auto& [label_values, child] : children_) {
    AppendChild(*this, label_values, *child, out);
  }
}

template class Family<Counter>;
template class Family<Gauge>;
template class Family<Histogram>;

Registry::~Registry() = default;

absl::StatusOr<std::shared_ptr<FamilyBase>> Registry::Register(
    std::shared_ptr<FamilyBase> family) {
  absl::MutexLock lock(&mu_);
  auto existing = families_.find(family->name());
  if (existing != families_.end()) {
    const std::string difference =
        DefinitionDifference(*existing->second, *family);
    if (difference.empty()) return existing->second;
    return absl::AlreadyExistsError(
        absl::StrCat("metric family \"", family->name(),
                     "\" is already registered: ", difference));
  }
  const std::vector<std::string> exposed = ExposedNames(*family);
  for (const std::string& name : exposed) {
    auto clash = exposed_names_.find(name);
    if (clash != exposed_names_.end()) {
      return absl::AlreadyExistsError(absl::StrCat(
          "metric family \"", family->name(), "\" would expose \"", name,
          "\", which metric family \"", clash->second, "\" already exposes"));
    }
  }
  for (const std::string& name : exposed) {
    exposed_names_.emplace(name, family->name());
  }
  families_.emplace(family->name(), family);
  return family;
}

absl::StatusOr<std::shared_ptr<CounterFamily>> Registry::AddCounter(
    absl::string_view name, absl::string_view help,
    std::vector<std::string> label_names) {
  LORA_RETURN_IF_ERROR(
      ValidateDefinition(name, help, label_names, MetricType::kCounter));
  std::shared_ptr<CounterFamily> family(
      new CounterFamily(std::string(name), std::string(help),
                        MetricType::kCounter, std::move(label_names), nullptr));
  if (family->label_names().empty()) family->WithLabels({});
  LORA_ASSIGN_OR_RETURN(std::shared_ptr<FamilyBase> registered,
                        Register(family));
  return std::static_pointer_cast<CounterFamily>(registered);
}

absl::StatusOr<std::shared_ptr<GaugeFamily>> Registry::AddGauge(
    absl::string_view name, absl::string_view help,
    std::vector<std::string> label_names) {
  LORA_RETURN_IF_ERROR(
      ValidateDefinition(name, help, label_names, MetricType::kGauge));
  std::shared_ptr<GaugeFamily> family(
      new GaugeFamily(std::string(name), std::string(help), MetricType::kGauge,
                      std::move(label_names), nullptr));
  if (family->label_names().empty()) family->WithLabels({});
  LORA_ASSIGN_OR_RETURN(std::shared_ptr<FamilyBase> registered,
                        Register(family));
  return std::static_pointer_cast<GaugeFamily>(registered);
}

absl::StatusOr<std::shared_ptr<HistogramFamily>> Registry::AddHistogram(
    absl::string_view name, absl::string_view help,
    std::vector<std::string> label_names, std::vector<double> upper_bounds) {
  LORA_RETURN_IF_ERROR(
      ValidateDefinition(name, help, label_names, MetricType::kHistogram));
  LORA_RETURN_IF_ERROR(NormalizeBounds(name, upper_bounds));
  std::shared_ptr<HistogramFamily> family(new HistogramFamily(
      std::string(name), std::string(help), MetricType::kHistogram,
      std::move(label_names),
      std::make_shared<const std::vector<double>>(std::move(upper_bounds))));
  if (family->label_names().empty()) family->WithLabels({});
  LORA_ASSIGN_OR_RETURN(std::shared_ptr<FamilyBase> registered,
                        Register(family));
  return std::static_pointer_cast<HistogramFamily>(registered);
}

absl::Status Registry::AddCallbackGauge(absl::string_view name,
                                        absl::string_view help,
                                        std::vector<std::string> label_names,
                                        SampleCallback callback) {
  LORA_RETURN_IF_ERROR(
      ValidateDefinition(name, help, label_names, MetricType::kGauge));
  return Register(std::make_shared<CallbackFamily>(
                      std::string(name), std::string(help), MetricType::kGauge,
                      std::move(label_names), std::move(callback)))
      .status();
}

absl::Status Registry::AddCallbackCounter(absl::string_view name,
                                          absl::string_view help,
                                          std::vector<std::string> label_names,
                                          SampleCallback callback) {
  LORA_RETURN_IF_ERROR(
      ValidateDefinition(name, help, label_names, MetricType::kCounter));
  return Register(std::make_shared<CallbackFamily>(
                      std::string(name), std::string(help),
                      MetricType::kCounter, std::move(label_names),
                      std::move(callback)))
      .status();
}

bool Registry::Unregister(absl::string_view name) {
  std::shared_ptr<FamilyBase> family;
  {
    absl::MutexLock lock(&mu_);
    auto it = families_.find(name);
    if (it == families_.end()) return false;
    family = std::move(it->second);
    families_.erase(it);
    for (const std::string& exposed : ExposedNames(*family)) {
      exposed_names_.erase(exposed);
    }
  }
  // Outside the registry lock: waits for a running callback, which may
  // itself use the registry.
  family->Detach();
  return true;
}

std::string Registry::Exposition() const {
  std::string out;
  WriteExposition(&out);
  return out;
}

void Registry::WriteExposition(std::string* out) const {
  std::vector<std::shared_ptr<FamilyBase>> families;
  {
    absl::MutexLock lock(&mu_);
    families.reserve(families_.size());
    for (const auto& [name, family] : families_) families.push_back(family);
  }
  // Families render outside the registry lock: callbacks may be slow (they
  // read the run store) and must not block registration.
  for (const std::shared_ptr<FamilyBase>& family : families) {
    family->AppendExposition(out);
  }
}

}  // namespace lora::metrics
