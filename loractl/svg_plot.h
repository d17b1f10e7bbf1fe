// `loractl plot`: a self-contained SVG (no scripts, no external resources,
// no plotting library) with two panels, as the seed's rank-ablation figure:
//
// - left: the sweep metric against the grouping parameter (lora.rank by
//   default; values evenly spaced in sorted order, which for ranks 1, 2, 4,
//   8 is a log2 axis): one marker per group at the mean of its runs' best
//   metric, with error bars of ± one sample standard deviation when the
//   group has several runs (seeds);
// - right: training loss against step, one curve per group (the mean over
//   the group's runs at each step), with a legend.
//
// Markers are <circle class="metric-point" data-group="VALUE">, error bars
// <line class="error-bar">, curves <polyline class="loss-curve"
// data-group="VALUE">, so tests and scripts can find them. Pure function.
#ifndef LORA_SWEEP_LORACTL_SVG_PLOT_H_
#define LORA_SWEEP_LORACTL_SVG_PLOT_H_

#include <string>

#include "absl/status/statusor.h"
#include "loractl/results_data.h"

namespace lora::loractl {

// FailedPrecondition when no group has a succeeded run (nothing to plot).
absl::StatusOr<std::string> RenderSvgPlot(const ResultsData& data);

// Text with &, <, >, " and ' escaped for XML content and attributes.
std::string XmlEscape(const std::string& text);

}  // namespace lora::loractl

#endif  // LORA_SWEEP_LORACTL_SVG_PLOT_H_
