#!/usr/bin/env bash
# Draws the per-second CSV the two-hosts tests write (second, producer and
# consumer records/s, ...) as an SVG line chart, and a PNG beside it when
# rsvg-convert is installed.
#
#   rates_chart.sh RATES.csv OUT.svg
set -euo pipefail
[ $# -eq 2 ] || { echo "usage: rates_chart.sh RATES.csv OUT.svg" >&2; exit 2; }
[ -r "$1" ] || { echo "rates_chart.sh: cannot read $1" >&2; exit 2; }
awk -F, -v title="$(basename "$1" .csv)" '
  NR == 1 { next }
  { n++; t[n] = $1; p[n] = $2; c[n] = $3; if ($2 > top) top = $2; if ($3 > top) top = $3 }
  END {
    if (n == 0) { exit 1 }
    w = 960; h = 440; left = 90; right = 30; upper = 50; lower = 60
    if (top <= 0) top = 1
    tmax = t[n] > 1 ? t[n] : 1
    pw = w - left - right; ph = h - upper - lower
    printf "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"%d\" height=\"%d\" font-family=\"sans-serif\" font-size=\"13\">\n", w, h
    printf "<rect width=\"100%%\" height=\"100%%\" fill=\"white\"/>\n"
    printf "<text x=\"%d\" y=\"28\" font-size=\"16\">%s: records/s each second</text>\n", left, title
    for (i = 0; i <= 4; i++) {
      y = upper + ph - ph * i / 4
      printf "<line x1=\"%d\" y1=\"%.1f\" x2=\"%d\" y2=\"%.1f\" stroke=\"#ddd\"/>\n", left, y, w - right, y
      printf "<text x=\"%d\" y=\"%.1f\" text-anchor=\"end\">%.0f</text>\n", left - 6, y + 4, top * i / 4
    }
    printf "<text x=\"%d\" y=\"%d\" text-anchor=\"middle\">seconds</text>\n", left + pw / 2, h - 15
    split("producer consumer", names, " "); split("#1f77b4 #d62728", colours, " ")
    for (s = 1; s <= 2; s++) {
      printf "<polyline fill=\"none\" stroke=\"%s\" stroke-width=\"%s\" points=\"", colours[s], s == 1 ? "4" : "2"
      for (i = 1; i <= n; i++) {
        v = s == 1 ? p[i] : c[i]
        printf "%.1f,%.1f ", left + pw * t[i] / tmax, upper + ph - ph * v / top
      }
      printf "\"/>\n"
      printf "<text x=\"%d\" y=\"%d\" fill=\"%s\">%s</text>\n", w - right - 200 + (s - 1) * 100, upper - 8, colours[s], names[s]
    }
    for (i = 1; i <= n; i++) {
      if (i % 2 == 1 || n < 12) {
        printf "<text x=\"%.1f\" y=\"%d\" text-anchor=\"middle\">%d</text>\n", left + pw * t[i] / tmax, upper + ph + 18, t[i]
      }
    }
    printf "</svg>\n"
  }' "$1" >"$2"
if command -v rsvg-convert >/dev/null; then
  rsvg-convert "$2" -o "${2%.svg}.png"
fi
