/* unbounded UI charts: small SVG line and stacked-area charts, no dependencies.
 * UbCharts.line(el, spec) and UbCharts.stacked(el, spec) redraw el's chart in place.
 * spec = {series: [{name, points: [[x, y], ...]}], unit: "rows/s", xLabel: "batch"}.
 * The <svg> carries data-points (the longest series' length) and data-last-x. */
"use strict";
(function () {
  const NS = "http://www.w3.org/2000/svg";
  const COLORS = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd", "#8c564b",
    "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"];
  const W = 460, H = 200, PAD = {l: 58, r: 12, t: 12, b: 30};

  function node(name, attrs, parent) {
    const n = document.createElementNS(NS, name);
    for (const k in attrs) n.setAttribute(k, attrs[k]);
    if (parent) parent.appendChild(n);
    return n;
  }

  function fmt(v) {
    const a = Math.abs(v);
    if (a >= 1e9) return (v / 1e9).toFixed(1) + "G";
    if (a >= 1e6) return (v / 1e6).toFixed(1) + "M";
    if (a >= 1e4) return (v / 1e3).toFixed(1) + "k";
    if (Number.isInteger(v) || a >= 10) return String(Math.round(v));
    return v.toFixed(2);
  }

  function bounds(series, stacked) {
    const xs = [], tops = [];
    const sums = {};
    for (const s of series) for (const [x, y] of s.points) {
      xs.push(x);
      if (stacked) { sums[x] = (sums[x] || 0) + y; tops.push(sums[x]); } else tops.push(y);
    }
    const minX = Math.min(...xs), maxX = Math.max(...xs);
    return {minX, maxX: maxX === minX ? minX + 1 : maxX, maxY: Math.max(1e-9, ...tops) * 1.1};
  }

  function frame(svg, b, spec) {
    const sx = x => PAD.l + (x - b.minX) / (b.maxX - b.minX) * (W - PAD.l - PAD.r);
    const sy = y => H - PAD.b - y / b.maxY * (H - PAD.t - PAD.b);
    node("line", {x1: PAD.l, y1: H - PAD.b, x2: W - PAD.r, y2: H - PAD.b, class: "axis"}, svg);
    node("line", {x1: PAD.l, y1: PAD.t, x2: PAD.l, y2: H - PAD.b, class: "axis"}, svg);
    for (const f of [0, 0.5, 1]) {
      const y = b.maxY / 1.1 * f;
      node("line", {x1: PAD.l, y1: sy(y), x2: W - PAD.r, y2: sy(y), class: "grid"}, svg);
      node("text", {x: PAD.l - 4, y: sy(y) + 4, class: "tick", "text-anchor": "end"}, svg)
        .textContent = fmt(y);
    }
    for (const x of [b.minX, b.maxX]) {
      node("text", {x: sx(x), y: H - PAD.b + 14, class: "tick", "text-anchor": "middle"}, svg)
        .textContent = String(x);
    }
    node("text", {x: (W + PAD.l) / 2, y: H - 3, class: "label", "text-anchor": "middle"}, svg)
      .textContent = (spec.xLabel || "batch") + (spec.unit ? "  |  " + spec.unit : "");
    return {sx, sy};
  }

  function legend(el, series) {
    const box = document.createElement("div");
    box.className = "legend";
    series.forEach((s, i) => {
      const item = document.createElement("span");
      const dot = document.createElement("i");
      dot.style.background = s.color || COLORS[i % COLORS.length];
      item.appendChild(dot);
      item.appendChild(document.createTextNode(s.name));
      box.appendChild(item);
    });
    el.appendChild(box);
  }

  function start(el, series, spec) {
    el.textContent = "";
    const svg = node("svg", {viewBox: `0 0 ${W} ${H}`, class: "chart", role: "img"});
    const longest = series.reduce((m, s) => Math.max(m, s.points.length), 0);
    svg.setAttribute("data-points", String(longest));
    el.appendChild(svg);
    if (!longest) {
      node("text", {x: W / 2, y: H / 2, class: "empty", "text-anchor": "middle"}, svg)
        .textContent = spec.empty || "no data yet";
      return null;
    }
    const lastX = Math.max(...series.flatMap(s => s.points.map(p => p[0])));
    svg.setAttribute("data-last-x", String(lastX));
    if (series.length > 1 || spec.legend) legend(el, series);
    return svg;
  }

  function line(el, spec) {
    const series = spec.series.filter(s => s.points.length);
    const svg = start(el, series, spec);
    if (!svg) return;
    const {sx, sy} = frame(svg, bounds(series, false), spec);
    series.forEach((s, i) => {
      const color = s.color || COLORS[i % COLORS.length];
      const d = s.points.map(([x, y], j) => `${j ? "L" : "M"}${sx(x)},${sy(y)}`).join("");
      node("path", {d, fill: "none", stroke: color, "stroke-width": 2, class: "series"}, svg);
      for (const [x, y] of s.points) {
        node("circle", {cx: sx(x), cy: sy(y), r: 2.5, fill: color}, svg)
          .appendChild(node("title", {})).textContent = `${s.name} @ ${x}: ${fmt(y)}`;
      }
    });
  }

  function stacked(el, spec) {
    const series = spec.series.filter(s => s.points.some(p => p[1] > 0));
    const svg = start(el, series, spec);
    if (!svg) return;
    const b = bounds(series, true);
    const {sx, sy} = frame(svg, b, spec);
    const base = {};
    series.forEach((s, i) => {
      const color = s.color || COLORS[i % COLORS.length];
      const lower = s.points.map(([x]) => [x, base[x] || 0]);
      const upper = s.points.map(([x, y]) => [x, (base[x] || 0) + y]);
      upper.forEach(([x, y]) => { base[x] = y; });
      const top = upper.map(([x, y], j) => `${j ? "L" : "M"}${sx(x)},${sy(y)}`).join("");
      const bottom = lower.reverse().map(([x, y]) => `L${sx(x)},${sy(y)}`).join("");
      const area = node("path", {d: top + bottom + "Z", fill: color, "fill-opacity": 0.75,
        stroke: color, class: "series"}, svg);
      area.appendChild(node("title", {})).textContent = s.name;
    });
  }

  window.UbCharts = {line, stacked, fmt};
})();
