#pragma once

// A small SVG line chart: time on x, a quantity on y (with an optional
// second scale on the right), named series, and marked phase boundaries.
// Charts can be stacked into one image as panels. Enough to draw the
// backpressure experiment like the original Flink figure, with no dependency.

#include <string>
#include <utility>
#include <vector>

namespace sluice::tools {

struct ChartSeries {
  std::string name;
  std::string colour;  // CSS colour
  double width = 2.2;  // stroke width: draw a wide line first so a narrow one on top stays visible
  std::string dash;    // SVG dash pattern, empty for solid
  std::vector<double> x;
  std::vector<double> y;
};

struct ChartMarker {
  double x = 0;
  std::string label;  // shown at the top, right of the line
};

struct LineChart {
  std::string title;
  std::string x_label;
  std::string y_label;
  double y_max = 120;
  double y_step = 20;  // grid and label spacing on y
  // When positive, the right edge carries a second scale: y times this,
  // labelled `right_label` (e.g. percent on the left, records/s on the right).
  double right_scale = 0;
  std::string right_label;
  std::vector<ChartSeries> series;
  std::vector<ChartMarker> markers;

  [[nodiscard]] std::string to_svg(int width = 960, int height = 440) const;
  // The chart's elements without the enclosing <svg>, for stacking.
  [[nodiscard]] std::string body(int width, int height) const;
};

// One image of `panels` one above the other, each `width` wide and its own height.
std::string stacked_svg(const std::vector<std::pair<LineChart, int>>& panels, int width = 960);

}  // namespace sluice::tools
