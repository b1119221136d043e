// Charts drawn in the page as SVG (no library): columns over days, bars per model or key.
// Each chart is an image with a summary for screen readers, and its numbers are also given
// as a table next to it.

import { h, s } from "./dom.js";

const WIDTH = 640;

function niceMax(value) {
  if (value <= 0) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  for (const step of [1, 2, 2.5, 5, 10]) {
    if (value <= step * power) return step * power;
  }
  return 10 * power;
}

/** Columns: points = [{label, value}], e.g. one per day. */
export function columnChart(points, { title, format }) {
  const height = 220;
  const left = 56;
  const bottom = 28;
  const top = 12;
  const plotW = WIDTH - left - 8;
  const plotH = height - top - bottom;
  const max = niceMax(Math.max(0, ...points.map((p) => p.value)));
  const step = plotW / Math.max(points.length, 1);
  const svg = s("svg", {
    viewBox: `0 0 ${WIDTH} ${height}`, class: "chart", role: "img",
    "aria-label": summary(title, points, format),
  });
  for (const fraction of [0, 0.5, 1]) {
    const y = top + plotH * (1 - fraction);
    svg.append(s("line", { x1: left, x2: WIDTH - 8, y1: y, y2: y, class: "grid" }),
      s("text", { x: left - 6, y: y + 4, "text-anchor": "end", class: "axis", text: format(max * fraction) }));
  }
  const labelEvery = Math.ceil(points.length / 8);
  points.forEach((point, index) => {
    const barH = max ? (point.value / max) * plotH : 0;
    const x = left + index * step;
    const bar = s("rect", {
      x: x + step * 0.15, width: Math.max(step * 0.7, 1), y: top + plotH - barH,
      height: Math.max(barH, point.value > 0 ? 1 : 0), class: "bar",
    }, s("title", { text: `${point.label}: ${format(point.value)}` }));
    svg.append(bar);
    if (index % labelEvery === 0) {
      svg.append(s("text", {
        x: x + step / 2, y: height - 8, "text-anchor": "middle", class: "axis",
        text: point.label.slice(5),
      }));
    }
  });
  return svg;
}

/** Horizontal bars: points = [{label, value}], largest first. */
export function barChart(points, { title, format }) {
  const rowH = 26;
  const labelW = 220;
  const height = Math.max(points.length, 1) * rowH + 8;
  const plotW = WIDTH - labelW - 90;
  const max = Math.max(0, ...points.map((p) => p.value)) || 1;
  const svg = s("svg", {
    viewBox: `0 0 ${WIDTH} ${height}`, class: "chart", role: "img",
    "aria-label": points.length
      ? `${title}: ${points.map((p) => `${p.label} ${format(p.value)}`).join("; ")}`
      : `${title}: no data`,
  });
  points.forEach((point, index) => {
    const y = 4 + index * rowH;
    const label = point.label.length > 30 ? `${point.label.slice(0, 29)}…` : point.label;
    svg.append(
      s("text", { x: labelW - 8, y: y + rowH / 2 + 4, "text-anchor": "end", class: "axis", text: label },
        s("title", { text: point.label })),
      s("rect", {
        x: labelW, y: y + 4, height: rowH - 8,
        width: Math.max((point.value / max) * plotW, point.value > 0 ? 1 : 0), class: "bar",
      }),
      s("text", {
        x: labelW + (point.value / max) * plotW + 6, y: y + rowH / 2 + 4, class: "axis",
        text: format(point.value),
      }));
  });
  return svg;
}

function summary(title, points, format) {
  if (!points.length) return `${title}: no data`;
  const top = [...points].sort((a, b) => b.value - a.value)[0];
  const total = points.reduce((sum, p) => sum + p.value, 0);
  return `${title}: ${points.length} entries, total ${format(total)}, highest ${top.label} at ${format(top.value)}`;
}

/** A figure: the chart, its caption, and its numbers in a table (collapsed). */
export function figure(title, chart, rows, columns) {
  return h("figure", { class: "card chart-card" },
    h("figcaption", {}, h("h2", {}, title)),
    chart,
    h("details", {},
      h("summary", {}, "The numbers"),
      h("div", { class: "table-wrap" }, h("table", {},
        h("thead", {}, h("tr", {}, columns.map((c) => h("th", { scope: "col", class: c.num ? "num" : null }, c.title)))),
        h("tbody", {}, rows.map((row) => h("tr", {}, columns.map((c, i) =>
          (i === 0 ? h("th", { scope: "row" }, c.value(row)) : h("td", { class: c.num ? "num" : null }, c.value(row)))))))))));
}
