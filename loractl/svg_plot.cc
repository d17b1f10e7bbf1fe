#include "loractl/svg_plot.h"

#include <algorithm>
#include <cmath>
#include <map>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "loractl/display.h"

namespace lora::loractl {
namespace {

constexpr double kWidth = 980;
constexpr double kHeight = 440;
constexpr const char* kColors[] = {"#1f77b4", "#ff7f0e", "#2ca02c", "#d62728",
                                   "#9467bd", "#8c564b", "#e377c2", "#7f7f7f",
                                   "#bcbd22", "#17becf"};

// A panel's plotting area in SVG coordinates.
struct Frame {
  double left, top, right, bottom;
  double width() const { return right - left; }
  double height() const { return bottom - top; }
};

struct Axis {
  double lo = 0;
  double hi = 1;
  double step = 0.1;
};

// Round tick spacing (1, 2 or 5 times a power of ten) giving about `ticks`
// intervals over [lo, hi], and the range widened to whole steps.
Axis NiceAxis(double lo, double hi, int ticks = 5) {
  if (!(hi > lo)) {
    const double pad = std::max(std::fabs(lo) * 0.05, 1e-3);
    lo -= pad;
    hi += pad;
  }
  const double raw = (hi - lo) / ticks;
  const double power = std::pow(10.0, std::floor(std::log10(raw)));
  double step = power;
  for (double factor : {1.0, 2.0, 5.0, 10.0}) {
    step = factor * power;
    if (raw <= step) break;
  }
  Axis axis;
  axis.step = step;
  axis.lo = std::floor(lo / step) * step;
  axis.hi = std::ceil(hi / step) * step;
  return axis;
}

// Decimals needed to tell ticks `step` apart.
int Decimals(double step) {
  return std::max(0, static_cast<int>(std::ceil(-std::log10(step) - 1e-9)));
}

std::string TickLabel(double value, double step, bool percent) {
  if (percent) {
    return absl::StrFormat("%.*f%%", Decimals(step * 100), value * 100);
  }
  if (std::fabs(value) >= 1e5) return absl::StrFormat("%.3g", value);
  return absl::StrFormat("%.*f", Decimals(step), value);
}

std::string Num(double value) { return absl::StrFormat("%.2f", value); }

std::string Text(double x, double y, const std::string& text,
                 const std::string& anchor, int size,
                 const std::string& extra = "") {
  return absl::StrCat("<text x=\"", Num(x), "\" y=\"", Num(y),
                      "\" text-anchor=\"", anchor, "\" font-size=\"", size,
                      "\"", extra, ">", XmlEscape(text), "</text>\n");
}

std::string Line(double x1, double y1, double x2, double y2,
                 const std::string& attributes) {
  return absl::StrCat("<line x1=\"", Num(x1), "\" y1=\"", Num(y1), "\" x2=\"",
                      Num(x2), "\" y2=\"", Num(y2), "\" ", attributes, "/>\n");
}

// Axes, grid and tick labels of a frame.
std::string DrawYAxis(const Frame& frame, const Axis& axis, bool percent) {
  std::string out;
  const int count =
      static_cast<int>(std::llround((axis.hi - axis.lo) / axis.step));
  for (int i = 0; i <= count; ++i) {
    const double value = axis.lo + i * axis.step;
    const double y =
        frame.bottom - (value - axis.lo) / (axis.hi - axis.lo) * frame.height();
    out += Line(frame.left, y, frame.right, y,
                "stroke=\"#e0e0e0\" stroke-width=\"1\"");
    out += Text(frame.left - 6, y + 4, TickLabel(value, axis.step, percent),
                "end", 11);
  }
  out += Line(frame.left, frame.top, frame.left, frame.bottom,
              "stroke=\"#333\" stroke-width=\"1\"");
  out += Line(frame.left, frame.bottom, frame.right, frame.bottom,
              "stroke=\"#333\" stroke-width=\"1\"");
  return out;
}

double Scale(double value, const Axis& axis, double from, double to) {
  return from + (value - axis.lo) / (axis.hi - axis.lo) * (to - from);
}

std::string MetricPanel(const ResultsData& data, const Frame& frame) {
  const bool percent = IsPercentMetric(data.metric_name);
  double lo = INFINITY;
  double hi = -INFINITY;
  for (const AblationGroup& group : data.groups) {
    if (group.runs == 0) continue;
    const double spread = group.runs > 1 ? group.std : 0.0;
    lo = std::min(lo, group.mean - spread);
    hi = std::max(hi, group.mean + spread);
  }
  const Axis axis = NiceAxis(lo, hi);
  std::string out = DrawYAxis(frame, axis, percent);
  const size_t n = data.groups.size();
  auto x_of = [&](size_t i) {
    return frame.left + frame.width() * (i + 0.5) / static_cast<double>(n);
  };
  std::string polyline;
  for (size_t i = 0; i < n; ++i) {
    const AblationGroup& group = data.groups[i];
    const std::string label = FormatJsonValue(group.value);
    const double x = x_of(i);
    out += Line(x, frame.bottom, x, frame.bottom + 5,
                "stroke=\"#333\" stroke-width=\"1\"");
    out += Text(x, frame.bottom + 18, label, "middle", 12);
    if (group.runs == 0) continue;
    const double y = Scale(group.mean, axis, frame.bottom, frame.top);
    absl::StrAppend(&polyline, polyline.empty() ? "" : " ", Num(x), ",",
                    Num(y));
    if (group.runs > 1 && group.std > 0) {
      const double y_hi =
          Scale(group.mean + group.std, axis, frame.bottom, frame.top);
      const double y_lo =
          Scale(group.mean - group.std, axis, frame.bottom, frame.top);
      const std::string style =
          absl::StrCat("class=\"error-bar\" data-group=\"", XmlEscape(label),
                       "\" stroke=\"#1f77b4\" stroke-width=\"1.5\"");
      out += Line(x, y_lo, x, y_hi, style);
      out += Line(x - 6, y_hi, x + 6, y_hi, style);
      out += Line(x - 6, y_lo, x + 6, y_lo, style);
    }
    absl::StrAppend(
        &out, "<circle class=\"metric-point\" data-group=\"", XmlEscape(label),
        "\" data-mean=\"", FormatExact(group.mean), "\" data-std=\"",
        FormatExact(group.std), "\" data-runs=\"", group.runs, "\" cx=\"",
        Num(x), "\" cy=\"", Num(y), "\" r=\"4.5\" fill=\"#1f77b4\"><title>",
        XmlEscape(data.group_by), "=", XmlEscape(label), ": ",
        XmlEscape(FormatMetric(data.metric_name, group.mean)),
        group.runs > 1 ? XmlEscape(absl::StrCat(
                             " ± ", FormatMetric(data.metric_name, group.std),
                             " (", group.runs, " runs)"))
                       : std::string(),
        "</title></circle>\n");
  }
  if (!polyline.empty()) {
    out = absl::StrCat("<polyline class=\"metric-line\" points=\"", polyline,
                       "\" fill=\"none\" stroke=\"#1f77b4\" "
                       "stroke-width=\"1.5\" stroke-opacity=\"0.6\"/>\n",
                       out);
  }
  out += Text((frame.left + frame.right) / 2, frame.bottom + 40,
              data.group_by == "lora.rank" ? "LoRA rank r" : data.group_by,
              "middle", 13);
  out += Text(frame.left - 52, (frame.top + frame.bottom) / 2,
              absl::StrCat(MetricTitle(data.metric_name),
                           " (best per run, mean ± std)"),
              "middle", 13,
              absl::StrCat(" transform=\"rotate(-90 ", Num(frame.left - 52),
                           " ", Num((frame.top + frame.bottom) / 2), ")\""));
  out +=
      Text((frame.left + frame.right) / 2, frame.top - 12,
           absl::StrCat(MetricTitle(data.metric_name), " by ",
                        data.group_by == "lora.rank" ? "rank" : data.group_by),
           "middle", 14, " font-weight=\"bold\"");
  return out;
}

std::string LossPanel(const ResultsData& data, const Frame& frame) {
  // Mean loss over each group's runs at every step.
  std::vector<std::map<int64_t, std::pair<double, int>>> curves(
      data.groups.size());
  for (const RunResults& run : data.runs) {
    const nlohmann::json value =
        run.parameters.is_object() && run.parameters.contains(data.group_by)
            ? run.parameters[data.group_by]
            : nlohmann::json(nullptr);
    for (size_t i = 0; i < data.groups.size(); ++i) {
      if (data.groups[i].value != value) continue;
      for (const auto& [step, loss] : run.loss_curve) {
        curves[i][step].first += loss;
        curves[i][step].second += 1;
      }
    }
  }
  double lo = INFINITY, hi = -INFINITY;
  int64_t max_step = 0;
  for (const auto& curve : curves) {
    for (const auto& [step, sum] : curve) {
      const double mean = sum.first / sum.second;
      lo = std::min(lo, mean);
      hi = std::max(hi, mean);
      max_step = std::max(max_step, step);
    }
  }
  std::string out;
  out +=
      Text((frame.left + frame.right) / 2, frame.top - 12,
           absl::StrCat("Training loss by ",
                        data.group_by == "lora.rank" ? "rank" : data.group_by),
           "middle", 14, " font-weight=\"bold\"");
  if (max_step == 0) {
    out += Line(frame.left, frame.top, frame.left, frame.bottom,
                "stroke=\"#333\" stroke-width=\"1\"");
    out += Line(frame.left, frame.bottom, frame.right, frame.bottom,
                "stroke=\"#333\" stroke-width=\"1\"");
    out += Text((frame.left + frame.right) / 2, (frame.top + frame.bottom) / 2,
                "no loss reported yet", "middle", 13);
    return out;
  }
  const Axis y_axis = NiceAxis(lo, hi);
  const Axis x_axis = NiceAxis(0, static_cast<double>(max_step));
  out += DrawYAxis(frame, y_axis, false);
  const int x_ticks =
      static_cast<int>(std::llround((x_axis.hi - x_axis.lo) / x_axis.step));
  for (int i = 0; i <= x_ticks; ++i) {
    const double value = x_axis.lo + i * x_axis.step;
    const double x = Scale(value, x_axis, frame.left, frame.right);
    out += Line(x, frame.bottom, x, frame.bottom + 5,
                "stroke=\"#333\" stroke-width=\"1\"");
    out += Text(x, frame.bottom + 18, TickLabel(value, x_axis.step, false),
                "middle", 11);
  }
  for (size_t i = 0; i < curves.size(); ++i) {
    if (curves[i].empty()) continue;
    const std::string label = FormatJsonValue(data.groups[i].value);
    const char* color = kColors[i % (sizeof(kColors) / sizeof(kColors[0]))];
    std::string points;
    for (const auto& [step, sum] : curves[i]) {
      absl::StrAppend(
          &points, points.empty() ? "" : " ",
          Num(Scale(static_cast<double>(step), x_axis, frame.left,
                    frame.right)),
          ",",
          Num(Scale(sum.first / sum.second, y_axis, frame.bottom, frame.top)));
    }
    absl::StrAppend(&out, "<polyline class=\"loss-curve\" data-group=\"",
                    XmlEscape(label), "\" points=\"", points,
                    "\" fill=\"none\" stroke=\"", color,
                    "\" stroke-width=\"1.5\"/>\n");
    // Legend, top right inside the frame.
    const double ly = frame.top + 14 + 18 * static_cast<double>(i);
    out += Line(frame.right - 90, ly - 4, frame.right - 70, ly - 4,
                absl::StrCat("stroke=\"", color, "\" stroke-width=\"3\""));
    out += Text(frame.right - 64, ly,
                data.group_by == "lora.rank"
                    ? absl::StrCat("r = ", label)
                    : absl::StrCat(data.group_by, " = ", label),
                "start", 12);
  }
  out += Text((frame.left + frame.right) / 2, frame.bottom + 40, "step",
              "middle", 13);
  out += Text(frame.left - 52, (frame.top + frame.bottom) / 2,
              "training loss (mean over runs)", "middle", 13,
              absl::StrCat(" transform=\"rotate(-90 ", Num(frame.left - 52),
                           " ", Num((frame.top + frame.bottom) / 2), ")\""));
  return out;
}

}  // namespace

std::string XmlEscape(const std::string& text) {
  std::string out;
  out.reserve(text.size());
  for (char c : text) {
    switch (c) {
      case '&':
        out += "&amp;";
        break;
      case '<':
        out += "&lt;";
        break;
      case '>':
        out += "&gt;";
        break;
      case '"':
        out += "&quot;";
        break;
      case '\'':
        out += "&apos;";
        break;
      default:
        // Control characters other than tab and newline are not allowed
        // in XML 1.0.
        if (static_cast<unsigned char>(c) < 0x20 && c != '\t' && c != '\n') {
          out += ' ';
        } else {
          out += c;
        }
    }
  }
  return out;
}

absl::StatusOr<std::string> RenderSvgPlot(const ResultsData& data) {
  const bool any =
      std::any_of(data.groups.begin(), data.groups.end(),
                  [](const AblationGroup& g) { return g.runs > 0; });
  if (!any) {
    return absl::FailedPreconditionError(
        absl::StrCat("nothing to plot: no run of sweep ", data.sweep_id,
                     " has succeeded with a ", data.metric_name, " yet"));
  }
  std::string out = absl::StrCat(
      "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n",
      "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"", Num(kWidth),
      "\" height=\"", Num(kHeight), "\" viewBox=\"0 0 ", Num(kWidth), " ",
      Num(kHeight), "\" font-family=\"Helvetica, Arial, sans-serif\">\n",
      "<title>", XmlEscape(absl::StrCat(data.name, " (", data.sweep_id, ")")),
      "</title>\n", "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n");
  out +=
      Text(kWidth / 2, 24,
           absl::StrCat(data.name, " — ", data.sweep_id, " (", data.state, ")"),
           "middle", 15, " font-weight=\"bold\"");
  out += "<g class=\"metric-panel\">\n";
  out += MetricPanel(data, Frame{90, 70, 450, 370});
  out += "</g>\n<g class=\"loss-panel\">\n";
  out += LossPanel(data, Frame{590, 70, 950, 370});
  out += "</g>\n</svg>\n";
  return out;
}

}  // namespace lora::loractl
