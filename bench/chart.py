"""A grouped bar chart written as plain SVG text, for the bench reports.

No plotting dependency: the benches must run on a bare machine, and an SVG opens in any browser
and shows in the README. One function, `grouped_bars`, draws groups (scenarios, inputs) along the
x axis with one bar per series (servers, parsers) in each, on a linear or log y axis, with an
optional reference line (for instance 1.0 when values are normalised to a baseline) and a short
text above each bar. Missing values are drawn as "n/a" rather than left out.
"""

import math
from html import escape

PALETTE = ("#2b6cb0", "#63b3ed", "#dd6b20", "#38a169", "#805ad5", "#718096", "#d53f8c", "#b7791f")

_FONT = "font-family='Helvetica, Arial, sans-serif'"


def _fmt(v: float) -> str:
    """Short tick text: 0.05, 1, 20, 5k, 2M."""
    for unit, scale in (("M", 1e6), ("k", 1e3)):
        if abs(v) >= scale:
            return f"{v / scale:g}{unit}"
    return f"{v:g}"


def _log_ticks(lo: float, hi: float) -> list:
    ticks = []
    for d in range(math.floor(math.log10(lo)), math.ceil(math.log10(hi)) + 1):
        for m in (1, 2, 5):
            t = m * 10.0 ** d
            if lo * 0.999 <= t <= hi * 1.001:
                ticks.append(float(f"{t:.6g}"))
    return ticks


def _linear_ticks(hi: float) -> list:
    raw = hi / 5
    mag = 10 ** math.floor(math.log10(raw))
    step = next(m * mag for m in (1, 2, 5, 10) if m * mag >= raw)
    return [i * step for i in range(int(hi / step) + 2) if i * step <= hi * 1.0001]


def grouped_bars(title, groups, series, values, *, log=False, reference=None,
                 reference_label="", ylabel="", labels=None, note="", colors=PALETTE) -> str:
    """Return an SVG document.

    groups: category names along x ("\\n" splits a name over two lines).
    series: names in the legend, one bar each per group, in this order.
    values: {series: {group: number or None}}; labels: the same shape, text shown over each bar.
    colors: a sequence used in series order, or {series: colour} to keep colours fixed across
    charts.
    """
    labels = labels or {}
    if not isinstance(colors, dict):
        colors = {name: colors[i % len(colors)] for i, name in enumerate(series)}
    bar_w, gap, plot_h = 15, 26, 300
    left = 64
    # Room on the right for the reference line's label, clear of the bars.
    right = 16 + (7 * len(reference_label) if reference is not None and reference_label else 0)
    group_w = bar_w * len(series) + gap
    width = max(left + group_w * len(groups) + right, 480)
    per_row = max(1, (width - left) // 200)
    top = 58 + 18 * (math.ceil(len(series) / per_row) - 1)
    height = top + plot_h + 64 + (16 if note else 0)

    present = [v for s in series for v in (values.get(s, {}).get(g) for g in groups)
               if v is not None and (v > 0 or not log)]
    if log:
        lo = min(present + ([reference] if reference else []), default=1.0)
        hi = max(present + ([reference] if reference else []), default=10.0)
        lo = 10.0 ** math.floor(math.log10(lo))
        # Headroom above the tallest bar for its label.
        hi = 10.0 ** math.ceil(math.log10(hi * 2.5))
        span = math.log10(hi) - math.log10(lo)

        def y_of(v):
            v = min(max(v, lo), hi)
            return top + plot_h - plot_h * (math.log10(v) - math.log10(lo)) / span
        ticks = _log_ticks(lo, hi)
        base = lo
    else:
        hi = max(present + ([reference] if reference else []), default=1.0) * 1.15 or 1.0
        ticks = _linear_ticks(hi)
        hi = max(hi, ticks[-1])

        def y_of(v):
            return top + plot_h - plot_h * min(max(v, 0.0), hi) / hi
        base = 0.0

    out = [f"<svg xmlns='http://www.w3.org/2000/svg' width='{width}' height='{height}' "
           f"viewBox='0 0 {width} {height}' {_FONT} font-size='11'>",
           f"<rect width='{width}' height='{height}' fill='white'/>",
           f"<text x='{left}' y='20' font-size='15' font-weight='bold'>{escape(title)}</text>"]

    for i, name in enumerate(series):
        x = left + (i % per_row) * 200
        y = 40 + 18 * (i // per_row)
        out.append(f"<rect x='{x}' y='{y - 10}' width='12' height='12' fill='{colors[name]}'/>")
        out.append(f"<text x='{x + 17}' y='{y}'>{escape(name)}</text>")

    for t in ticks:
        y = y_of(t)
        out.append(f"<line x1='{left}' x2='{width - right}' y1='{y:.1f}' y2='{y:.1f}' "
                   f"stroke='#e2e8f0'/>")
        out.append(f"<text x='{left - 6}' y='{y + 4:.1f}' text-anchor='end' "
                   f"fill='#4a5568'>{_fmt(t)}</text>")
    if ylabel:
        cy = top + plot_h / 2
        out.append(f"<text transform='translate(14 {cy:.0f}) rotate(-90)' text-anchor='middle' "
                   f"fill='#4a5568'>{escape(ylabel)}</text>")

    for gi, group in enumerate(groups):
        gx = left + gi * group_w + gap / 2
        for si, name in enumerate(series):
            x = gx + si * bar_w
            v = values.get(name, {}).get(group)
            cx = x + bar_w / 2
            if v is None or (log and v <= 0):
                out.append(f"<text transform='translate({cx + 3:.1f} {top + plot_h - 4}) "
                           f"rotate(-90)' font-size='9' fill='#a0aec0'>n/a</text>")
                continue
            y0, y1 = y_of(base), y_of(v)
            out.append(f"<rect x='{x + 1:.1f}' y='{y1:.1f}' width='{bar_w - 2}' "
                       f"height='{max(y0 - y1, 0.5):.1f}' fill='{colors[name]}'>"
                       f"<title>{escape(name)}, {escape(group)}: {v:.4g}</title></rect>")
            text = labels.get(name, {}).get(group)
            if text:
                out.append(f"<text transform='translate({cx + 3:.1f} {y1 - 3:.1f}) rotate(-90)' "
                           f"font-size='9' fill='#2d3748'>{escape(text)}</text>")
        for li, line in enumerate(group.split("\n")):
            out.append(f"<text x='{gx + bar_w * len(series) / 2:.1f}' "
                       f"y='{top + plot_h + 16 + 13 * li}' text-anchor='middle'>"
                       f"{escape(line)}</text>")

    if reference is not None:
        y = y_of(reference)
        out.append(f"<line x1='{left}' x2='{width - right}' y1='{y:.1f}' y2='{y:.1f}' "
                   f"stroke='#1a202c' stroke-dasharray='5 3'/>")
        if reference_label:
            out.append(f"<text x='{width - right + 4}' y='{y + 4:.1f}' "
                       f"fill='#1a202c'>{escape(reference_label)}</text>")
    out.append(f"<line x1='{left}' x2='{left}' y1='{top}' y2='{top + plot_h}' stroke='#4a5568'/>")
    out.append(f"<line x1='{left}' x2='{width - right}' y1='{top + plot_h}' "
               f"y2='{top + plot_h}' stroke='#4a5568'/>")
    if note:
        out.append(f"<text x='{left}' y='{height - 10}' font-size='10' fill='#4a5568'>"
                   f"{escape(note)}</text>")
    out.append("</svg>")
    return "\n".join(out) + "\n"
