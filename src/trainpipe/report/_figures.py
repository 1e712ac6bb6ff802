"""Figures for the report pages, as self-contained markup.

* Run pages draw their small charts (learning curves, PSI and slice bars) as inline SVG written here: no
  plotting library is imported while a run finishes (importing and drawing with matplotlib would cost the run
  more than the whole report), the page stays crisp when printed, and nothing needs JavaScript.
* The PNGs the evaluation already drew with matplotlib (ROC, PR, confusion matrix, predicted vs actual,
  feature importance) are embedded as ``data:`` URIs.
* The study page uses Optuna's own plotly figures (``optuna.visualization``); plotly's JavaScript is embedded
  once per page (:func:`plotly_script`), never fetched from a CDN.

Every text that reaches the markup (column names, metric names, levels) comes from user data: it is escaped
here, because these strings are inserted into the page as markup.
"""

from __future__ import annotations

import base64
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from markupsafe import Markup, escape

PALETTE = ("#2563eb", "#db2777", "#059669", "#d97706", "#7c3aed", "#0891b2", "#65a30d", "#dc2626")
MAX_PNG_BYTES = 600_000  # a larger plot is linked by name instead of embedded (page weight)


def _num(value: float) -> str:
    if value == 0 or not math.isfinite(value):
        return "0" if value == 0 else str(value)
    magnitude = abs(value)
    if magnitude >= 1000:
        return f"{value:,.0f}"
    if magnitude >= 1:
        return f"{value:.3g}" if magnitude < 100 else f"{value:.0f}"
    return f"{value:.3g}"


def png_data_uri(path: Path) -> str | None:
    """``data:image/png;base64,...`` for a PNG of at most :data:`MAX_PNG_BYTES`, else None."""
    try:
        data = path.read_bytes()
    except OSError:
        return None
    if len(data) > MAX_PNG_BYTES or not data.startswith(b"\x89PNG"):
        return None
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def line_chart(series: Mapping[str, Sequence[float]], *, xlabel: str, ylabel: str = "", mark: int | None = None,
               width: int = 640, height: int = 260, title: str = "") -> Markup:
    """One polyline per series (x = 1..n), axes with a few ticks, a legend; ``mark``: a vertical line at that
    x (the best iteration)."""
    clean = {k: [float(v) for v in vals if v is not None] for k, vals in series.items()}
    clean = {k: v for k, v in clean.items() if v and all(math.isfinite(x) for x in v)}
    if not clean:
        return Markup("")
    left, right, top, bottom = 56, 12, 12, 40
    legend_h = 18 * len(clean)
    plot_w, plot_h = width - left - right, height - top - bottom
    n = max(len(v) for v in clean.values())
    lo = min(min(v) for v in clean.values())
    hi = max(max(v) for v in clean.values())
    if hi == lo:
        hi, lo = hi + 0.5 * (abs(hi) or 1), lo - 0.5 * (abs(lo) or 1)

    def sx(i: float) -> float:
        return left + (i - 1) / max(1, n - 1) * plot_w

    def sy(v: float) -> float:
        return top + (hi - v) / (hi - lo) * plot_h

    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height + legend_h}" '
             f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title or ylabel or "chart")}">']
    for k in range(5):  # horizontal grid lines and y ticks
        v = lo + (hi - lo) * k / 4
        y = sy(v)
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y:.1f}" y2="{y:.1f}"/>'
                     f'<text class="tick" x="{left - 6}" y="{y + 4:.1f}" text-anchor="end">{escape(_num(v))}</text>')
    for i in sorted({round(1 + (n - 1) * k / 4) for k in range(5)}):  # whole rounds, each once
        parts.append(f'<text class="tick" x="{sx(i):.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                     f'{i}</text>')
    parts.append(f'<text class="axis" x="{left + plot_w / 2:.1f}" y="{top + plot_h + 32}" text-anchor="middle">'
                 f'{escape(xlabel)}</text>')
    if ylabel:
        parts.append(f'<text class="axis" transform="translate(12 {top + plot_h / 2:.1f}) rotate(-90)" '
                     f'text-anchor="middle">{escape(ylabel)}</text>')
    if mark is not None and 1 <= mark <= n:
        anchor = "end" if sx(mark) > left + plot_w * 0.8 else "start"
        dx = -4 if anchor == "end" else 4
        parts.append(f'<line class="mark" x1="{sx(mark):.1f}" x2="{sx(mark):.1f}" y1="{top}" y2="{top + plot_h}"/>'
                     f'<text class="tick" x="{sx(mark) + dx:.1f}" y="{top + 12}" text-anchor="{anchor}">'
                     f'best {mark}</text>')
    for j, (name, values) in enumerate(clean.items()):
        colour = PALETTE[j % len(PALETTE)]
        step = max(1, len(values) // 400)  # at most ~400 points per line
        points = " ".join(f"{sx(i + 1):.1f},{sy(v):.1f}" for i, v in enumerate(values) if i % step == 0
                          or i == len(values) - 1)
        parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{points}"/>')
        ly = height + 18 * j + 4
        parts.append(f'<rect x="{left}" y="{ly}" width="12" height="12" fill="{colour}"/>'
                     f'<text class="legend" x="{left + 18}" y="{ly + 10}">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def bar_chart(items: Sequence[tuple[str, float]], *, limit: float | None = None, limit_label: str = "",
              bad: Sequence[str] = (), width: int = 640, digits: int = 3, title: str = "",
              label_width: int = 170) -> Markup:
    """Horizontal bars, one per ``(label, value)`` (values >= 0 drawn from 0, negatives from 0 leftwards are
    clipped to 0); ``limit``: a dashed vertical line; labels in ``bad`` are drawn in red."""
    rows = [(str(label), float(v)) for label, v in items if v is not None and math.isfinite(float(v))]
    if not rows:
        return Markup("")
    bar_h, gap, label_w, value_w = 16, 6, label_width, 64
    height = len(rows) * (bar_h + gap) + 8
    top_value = max([v for _, v in rows] + ([limit] if limit is not None else []) + [1e-12])
    plot_w = width - label_w - value_w
    parts = [f'<svg class="chart bars" role="img" viewBox="0 0 {width} {height}" '
             f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title or "bar chart")}">']
    bad_set = set(map(str, bad))
    for i, (label, value) in enumerate(rows):
        y = 4 + i * (bar_h + gap)
        w = max(0.0, value) / top_value * plot_w
        shown = label if len(label) <= 26 else label[:25] + "…"
        cls = "bar bad" if label in bad_set else "bar"
        parts.append(f'<text class="tick" x="{label_w - 8}" y="{y + 12}" text-anchor="end">'
                     f'<title>{escape(label)}</title>{escape(shown)}</text>'
                     f'<rect class="{cls}" x="{label_w}" y="{y}" width="{w:.1f}" height="{bar_h}"/>'
                     f'<text class="tick" x="{label_w + w + 6:.1f}" y="{y + 12}">{value:.{digits}f}</text>')
    if limit is not None:
        x = label_w + limit / top_value * plot_w
        parts.append(f'<line class="mark" x1="{x:.1f}" x2="{x:.1f}" y1="0" y2="{height}"/>')
        if limit_label:
            parts.append(f'<text class="tick" x="{x - 4:.1f}" y="{height - 2}" text-anchor="end">'
                         f'{escape(limit_label)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def xy_chart(series: Mapping[str, Sequence[tuple[float, float]]], *, xlabel: str, ylabel: str,
             lines: bool = True, diagonal: bool = False, zero_line: bool = False, width: int = 420,
             height: int = 300, title: str = "") -> Markup:
    """Points (and lines through them) per series on shared axes; ``diagonal``: y = x (a calibration
    reference), ``zero_line``: y = 0 (residuals)."""
    clean = {k: [(float(x), float(y)) for x, y in v if math.isfinite(float(x)) and math.isfinite(float(y))]
             for k, v in series.items()}
    clean = {k: v for k, v in clean.items() if v}
    if not clean:
        return Markup("")
    left, right, top, bottom = 56, 12, 12, 40
    legend_h = 18 * len(clean)
    plot_w, plot_h = width - left - right, height - top - bottom
    xs = [x for v in clean.values() for x, _ in v]
    ys = [y for v in clean.values() for _, y in v]
    x0, x1, y0, y1 = min(xs), max(xs), min(ys), max(ys)
    if diagonal:  # the same scale on both axes; probabilities on [0, 1]
        x0 = y0 = 0.0 if min(x0, y0) >= 0 and max(x1, y1) <= 1 else min(x0, y0)
        x1 = y1 = 1.0 if x0 == 0.0 and max(x1, y1) <= 1 else max(x1, y1)
    if zero_line:
        y0, y1 = min(y0, 0.0), max(y1, 0.0)
    x1 = x1 if x1 > x0 else x0 + 1.0
    y1 = y1 if y1 > y0 else y0 + 1.0

    def sx(x: float) -> float:
        return left + (x - x0) / (x1 - x0) * plot_w

    def sy(y: float) -> float:
        return top + (y1 - y) / (y1 - y0) * plot_h

    parts = [f'<svg class="chart" role="img" viewBox="0 0 {width} {height + legend_h}" '
             f'xmlns="http://www.w3.org/2000/svg" aria-label="{escape(title or ylabel)}">']
    for k in range(5):
        yv, xv = y0 + (y1 - y0) * k / 4, x0 + (x1 - x0) * k / 4
        parts.append(f'<line class="grid" x1="{left}" x2="{left + plot_w}" y1="{sy(yv):.1f}" y2="{sy(yv):.1f}"/>'
                     f'<text class="tick" x="{left - 6}" y="{sy(yv) + 4:.1f}" text-anchor="end">{escape(_num(yv))}'
                     f'</text><text class="tick" x="{sx(xv):.1f}" y="{top + plot_h + 16}" text-anchor="middle">'
                     f'{escape(_num(xv))}</text>')
    parts.append(f'<text class="axis" x="{left + plot_w / 2:.1f}" y="{top + plot_h + 32}" text-anchor="middle">'
                 f'{escape(xlabel)}</text><text class="axis" transform="translate(12 {top + plot_h / 2:.1f}) '
                 f'rotate(-90)" text-anchor="middle">{escape(ylabel)}</text>')
    if diagonal:
        parts.append(f'<line class="mark" x1="{sx(x0):.1f}" y1="{sy(x0):.1f}" x2="{sx(x1):.1f}" y2="{sy(x1):.1f}"/>')
    if zero_line:
        parts.append(f'<line class="mark" x1="{left}" x2="{left + plot_w}" y1="{sy(0):.1f}" y2="{sy(0):.1f}"/>')
    for j, (name, points) in enumerate(clean.items()):
        colour = PALETTE[j % len(PALETTE)]
        if lines and len(points) > 1:
            path = " ".join(f"{sx(x):.1f},{sy(y):.1f}" for x, y in points)
            parts.append(f'<polyline fill="none" stroke="{colour}" stroke-width="2" points="{path}"/>')
        radius = 3.5 if lines else 2
        parts.extend(f'<circle cx="{sx(x):.1f}" cy="{sy(y):.1f}" r="{radius}" fill="{colour}" fill-opacity="0.8"/>'
                     for x, y in points)
        ly = height + 18 * j + 4
        parts.append(f'<rect x="{left}" y="{ly}" width="12" height="12" fill="{colour}"/>'
                     f'<text class="legend" x="{left + 18}" y="{ly + 10}">{escape(name)}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


def timeline(events: Sequence[Mapping[str, Any]], *, width: int = 720) -> Markup:
    """The alias moves of a model on one horizontal time axis: one lane per alias, a dot per move, labelled
    with the version it moved to. ``events``: dicts with ``t`` (epoch seconds), ``alias`` and ``label``."""
    if not events:
        return Markup("")
    lanes = list(dict.fromkeys(str(e["alias"]) for e in events))
    t0 = min(float(e["t"]) for e in events)
    t1 = max(float(e["t"]) for e in events)
    span = (t1 - t0) or 1.0
    left, right, lane_h = 110, 40, 44
    height = lane_h * len(lanes) + 30
    plot_w = width - left - right
    parts = [f'<svg class="chart timeline" role="img" viewBox="0 0 {width} {height}" '
             'xmlns="http://www.w3.org/2000/svg" aria-label="alias history">']
    for i, lane in enumerate(lanes):
        y = 20 + i * lane_h
        parts.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{y}" y2="{y}"/>'
                     f'<text class="axis" x="{left - 10}" y="{y + 4}" text-anchor="end">@{escape(lane)}</text>')
    for j, e in enumerate(events):
        x = left + (float(e["t"]) - t0) / span * plot_w if len(events) > 1 else left + plot_w / 2
        y = 20 + lanes.index(str(e["alias"])) * lane_h
        colour = PALETTE[lanes.index(str(e["alias"])) % len(PALETTE)]
        dy = -8 if j % 2 == 0 else 18
        parts.append(f'<circle cx="{x:.1f}" cy="{y}" r="6" fill="{colour}"><title>{escape(e.get("title", ""))}'
                     f'</title></circle><text class="tick" x="{x:.1f}" y="{y + dy}" text-anchor="middle">'
                     f'{escape(e["label"])}</text>')
    parts.append("</svg>")
    return Markup("".join(parts))


_PLOTLY_GZ: list[str] = []  # plotly.js gzipped and base64-encoded, once per process (~0.4 s)
_PLOTLY_LOADER = """<script>
(async function () {
  var holder = document.getElementById("plotly-gz");
  if (!holder || typeof DecompressionStream === "undefined") { return; }
  var raw = atob(holder.textContent.trim());
  var bytes = new Uint8Array(raw.length);
  for (var i = 0; i < raw.length; i++) { bytes[i] = raw.charCodeAt(i); }
  var stream = new Blob([bytes]).stream().pipeThrough(new DecompressionStream("gzip"));
  var code = await new Response(stream).text();
  var tag = document.createElement("script");
  tag.textContent = code;
  document.head.appendChild(tag);
  document.querySelectorAll("script.plotly-figure").forEach(function (el) {
    var spec = JSON.parse(el.textContent);
    var target = document.getElementById(el.dataset.target);
    target.textContent = "";
    window.Plotly.newPlot(target, spec.data, spec.layout, {displaylogo: false, responsive: true});
  });
  document.body.dataset.plotly = "ready";
})();
</script>"""


def plotly_script() -> Markup:
    """plotly.js, once per page, embedded gzipped (1.9 MB instead of 4.8 MB: the study page stays under 3 MB)
    with a loader that unpacks it in the browser (``DecompressionStream``) and draws every figure of
    :func:`plotly_div`. Nothing is fetched from the network."""
    if not _PLOTLY_GZ:
        import gzip

        from plotly.offline import get_plotlyjs

        _PLOTLY_GZ.append(base64.b64encode(gzip.compress(get_plotlyjs().encode("utf-8"), 9, mtime=0)).decode())
    return Markup(f'<script id="plotly-gz" type="application/octet-stream">{_PLOTLY_GZ[0]}</script>'
                  + _PLOTLY_LOADER)


def plotly_div(figure: Any, div_id: str) -> Markup:
    """One plotly figure: a ``<div>`` (saying that the figure needs JavaScript until it is drawn) and its JSON,
    with every ``<`` escaped so that no text of the figure can close the script element."""
    spec = figure.to_json().replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return Markup(f'<div id="{escape(div_id)}" class="plotly-target"><p class="noscript">Interactive figure: '
                  f'needs JavaScript.</p></div><script type="application/json" class="plotly-figure" '
                  f'data-target="{escape(div_id)}">{spec}</script>')


__all__ = ["bar_chart", "line_chart", "plotly_div", "plotly_script", "png_data_uri", "timeline", "xy_chart"]
