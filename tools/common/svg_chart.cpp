#include "svg_chart.hpp"

#include <algorithm>
#include <cmath>
#include <cstdio>

namespace sluice::tools {

namespace {

std::string escape(const std::string& text) {
  std::string out;
  for (char c : text) {
    switch (c) {
      case '&': out += "&amp;"; break;
      case '<': out += "&lt;"; break;
      case '>': out += "&gt;"; break;
      case '"': out += "&quot;"; break;
      default: out += c;
    }
  }
  return out;
}

std::string number(double value) {
  char text[32];
  std::snprintf(text, sizeof(text), "%.1f", value);
  return text;
}

// 12345678 -> "12.3M": short enough for an axis label.
std::string short_number(double value) {
  char text[32];
  const double magnitude = std::fabs(value);
  if (magnitude >= 1e9) {
    std::snprintf(text, sizeof(text), "%.3gG", value / 1e9);
  } else if (magnitude >= 1e6) {
    std::snprintf(text, sizeof(text), "%.3gM", value / 1e6);
  } else if (magnitude >= 1e3) {
    std::snprintf(text, sizeof(text), "%.3gk", value / 1e3);
  } else {
    std::snprintf(text, sizeof(text), "%.3g", value);
  }
  return text;
}

std::string svg_open(int width, int height) {
  return "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"" + std::to_string(width) +
         "\" height=\"" + std::to_string(height) +
         "\" font-family=\"sans-serif\" font-size=\"12\">\n" +
         "<rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n";
}

}  // namespace

std::string LineChart::to_svg(int width, int height) const {
  return svg_open(width, height) + body(width, height) + "</svg>\n";
}

std::string stacked_svg(const std::vector<std::pair<LineChart, int>>& panels, int width) {
  int height = 0;
  for (const auto& panel : panels) {
    height += panel.second;
  }
  std::string svg = svg_open(width, height);
  int y = 0;
  for (const auto& [chart, panel_height] : panels) {
    svg += "<g transform=\"translate(0," + std::to_string(y) + ")\">\n" +
           chart.body(width, panel_height) + "</g>\n";
    y += panel_height;
  }
  return svg + "</svg>\n";
}

std::string LineChart::body(int width, int height) const {
  const double left = 70;
  const double right = right_scale > 0 ? 70 : 20;
  const double top = 60;
  const double bottom = 55;
  const double plot_w = width - left - right;
  const double plot_h = height - top - bottom;
  double x_max = 1;
  for (const auto& s : series) {
    for (double x : s.x) {
      x_max = std::max(x_max, x);
    }
  }
  for (const auto& m : markers) {
    x_max = std::max(x_max, m.x);
  }
  auto px = [&](double x) { return left + plot_w * x / x_max; };
  auto py = [&](double y) { return top + plot_h * (1.0 - std::clamp(y, 0.0, y_max) / y_max); };

  std::string svg = "<text x=\"" + number(width / 2.0) +
                    "\" y=\"22\" text-anchor=\"middle\" font-size=\"15\">" + escape(title) +
                    "</text>\n";
  // Grid and y axis labels.
  const double grid = y_step > 0 ? y_step : 20;
  for (double y = 0; y <= y_max + 1e-9; y += grid) {
    svg += "<line x1=\"" + number(left) + "\" y1=\"" + number(py(y)) + "\" x2=\"" +
           number(left + plot_w) + "\" y2=\"" + number(py(y)) + "\" stroke=\"#e5e5e5\"/>\n";
    svg += "<text x=\"" + number(left - 8) + "\" y=\"" + number(py(y) + 4) +
           "\" text-anchor=\"end\">" + number(y).substr(0, number(y).size() - 2) + "</text>\n";
    if (right_scale > 0) {
      svg += "<text x=\"" + number(left + plot_w + 8) + "\" y=\"" + number(py(y) + 4) +
             "\" text-anchor=\"start\">" + short_number(y * right_scale) + "</text>\n";
    }
  }
  // x axis ticks every sensible step.
  const double step = x_max <= 20 ? 2 : x_max <= 60 ? 5 : 10;
  for (double x = 0; x <= x_max + 1e-9; x += step) {
    svg += "<text x=\"" + number(px(x)) + "\" y=\"" + number(top + plot_h + 18) +
           "\" text-anchor=\"middle\">" + number(x).substr(0, number(x).size() - 2) + "</text>\n";
  }
  svg += "<rect x=\"" + number(left) + "\" y=\"" + number(top) + "\" width=\"" + number(plot_w) +
         "\" height=\"" + number(plot_h) + "\" fill=\"none\" stroke=\"#555\"/>\n";
  svg += "<text x=\"" + number(left + plot_w / 2) + "\" y=\"" + number(height - 12.0) +
         "\" text-anchor=\"middle\">" + escape(x_label) + "</text>\n";
  svg += "<text transform=\"translate(18," + number(top + plot_h / 2) +
         ") rotate(-90)\" text-anchor=\"middle\">" + escape(y_label) + "</text>\n";
  if (right_scale > 0) {
    svg += "<text transform=\"translate(" + number(width - 14.0) + "," + number(top + plot_h / 2) +
           ") rotate(90)\" text-anchor=\"middle\">" + escape(right_label) + "</text>\n";
  }
  // Phase boundaries.
  for (const auto& m : markers) {
    svg += "<line x1=\"" + number(px(m.x)) + "\" y1=\"" + number(top) + "\" x2=\"" +
           number(px(m.x)) + "\" y2=\"" + number(top + plot_h) +
           "\" stroke=\"#888\" stroke-dasharray=\"5,4\"/>\n";
    svg += "<text x=\"" + number(px(m.x) + 4) + "\" y=\"" + number(top + 14) +
           "\" fill=\"#444\" font-size=\"11\">" + escape(m.label) + "</text>\n";
  }
  // Series.
  for (const auto& s : series) {
    std::string points;
    for (std::size_t i = 0; i < s.x.size() && i < s.y.size(); ++i) {
      points += number(px(s.x[i])) + "," + number(py(s.y[i])) + " ";
    }
    svg += "<polyline fill=\"none\" stroke=\"" + s.colour + "\" stroke-width=\"" + number(s.width) +
           "\"" + (s.dash.empty() ? "" : " stroke-dasharray=\"" + s.dash + "\"") + " points=\"" +
           points + "\"/>\n";
  }
  // Legend.
  double legend_x = left;
  for (const auto& s : series) {
    svg += "<line x1=\"" + number(legend_x) + "\" y1=\"40\" x2=\"" + number(legend_x + 24) +
           "\" y2=\"40\" stroke=\"" + s.colour + "\" stroke-width=\"3\"/>\n";
    svg += "<text x=\"" + number(legend_x + 30) + "\" y=\"44\">" + escape(s.name) + "</text>\n";
    legend_x += 40 + 8.0 * static_cast<double>(s.name.size());
  }
  return svg;
}

}  // namespace sluice::tools
