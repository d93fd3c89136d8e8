#pragma once

// A small SVG line chart: time on x, percent on y, named series, and marked
// phase boundaries. Enough to draw the backpressure experiment like the
// original Flink figure, with no dependency.

#include <string>
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
  std::vector<ChartSeries> series;
  std::vector<ChartMarker> markers;

  [[nodiscard]] std::string to_svg(int width = 960, int height = 440) const;
};

}  // namespace sluice::tools
