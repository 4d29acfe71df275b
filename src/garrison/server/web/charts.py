"""Charts drawn as SVG on the server: trend lines with event dots, bars, donuts, sparklines.

Every chart is a self-contained ``<svg>`` (no script, no external resource) with ``role="img"``,
a ``<title>`` and a ``<desc>`` that states the numbers, so that screen readers and text browsers
get the data too. Interactive parts (event dots, bars, donut segments) are ``<a>`` links. Text
is escaped with markupsafe; numbers are formatted here.
"""

from __future__ import annotations

import datetime as dt
import itertools
import math
from collections.abc import Sequence
from dataclasses import dataclass

from markupsafe import Markup, escape

from garrison.tvm.queries.summary import Point

_ids = itertools.count(1)

LEVEL_COLORS = {"High": "#c4314b", "Medium": "#d9730d", "Low": "#c9a400", "None": "#5b8c5a",
                "No data / release not covered": "#c8c6c4", "No data": "#a19f9d"}


@dataclass(frozen=True)
class ChartEvent:
    day: dt.date
    label: str
    href: str = ""


@dataclass(frozen=True)
class Bar:
    label: str
    value: float
    maximum: float
    href: str = ""
    text: str = ""  # shown at the end of the bar; default "value / maximum"
    color: str = "#2f6fbf"


@dataclass(frozen=True)
class Segment:
    label: str
    value: float
    color: str
    href: str = ""


def _n(x: float) -> str:
    """Coordinates with at most one decimal: short markup, stable output."""
    r = round(x, 1)
    return str(int(r)) if r == int(r) else f"{r:.1f}"


def fmt_num(value: float | None, digits: int = 1) -> str:
    if value is None:
        return "–"
    if float(value).is_integer():
        return f"{int(value):,}"
    return f"{value:,.{digits}f}"


def _uid(prefix: str) -> str:
    return f"{prefix}{next(_ids)}"


def _svg_open(width: int, height: int, title: str, desc: str, cls: str) -> tuple[str, str]:
    tid, did = _uid("t"), _uid("d")
    head = (f'<svg class="chart {cls}" xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
            f'width="{width}" height="{height}" role="img" aria-labelledby="{tid} {did}" '
            f'preserveAspectRatio="xMinYMin meet">'
            f'<title id="{tid}">{escape(title)}</title><desc id="{did}">{escape(desc)}</desc>')
    return head, "</svg>"


def _nice_max(value: float) -> float:
    if value <= 0:
        return 1.0
    exp = 10 ** math.floor(math.log10(value))
    for step in (1, 2, 2.5, 5, 10):
        if value <= step * exp:
            return step * exp
    return 10 * exp


def line_chart(points: Sequence[Point], *, title: str, width: int = 560, height: int = 180,
               y_max: float | None = None, color: str = "#2f6fbf", events: Sequence[ChartEvent] = (),
               value_label: str = "score", higher_is_better: bool = False) -> Markup:
    """A daily trend: one value per day (None = no data that day), optional event dots."""
    left, right, top, bottom = 36, 12, 10, 24
    pw, ph = width - left - right, height - top - bottom
    known = [p for p in points if p.value is not None]
    if known:
        last = known[-1]
        desc = (f"{value_label} from {points[0].day.isoformat()} to {points[-1].day.isoformat()}: "
                f"latest {fmt_num(last.value)}, lowest {fmt_num(min(p.value for p in known))}, "  # type: ignore[type-var]
                f"highest {fmt_num(max(p.value for p in known))}")  # type: ignore[type-var]
    else:
        desc = f"no {value_label} recorded yet"
    if events:
        desc += f"; {len(events)} event day(s) marked"
    head, tail = _svg_open(width, height, title, desc, "line")
    out = [head]
    top_value = y_max if y_max is not None else _nice_max(max((p.value or 0) for p in known) if known else 1)
    ticks = [top_value * i / 4 for i in range(5)]

    def y_of(v: float) -> float:
        return top + ph - (min(max(v, 0), top_value) / top_value) * ph

    for t in ticks:
        y = y_of(t)
        out.append(f'<line class="grid" x1="{left}" x2="{width - right}" y1="{_n(y)}" y2="{_n(y)}"/>')
        out.append(f'<text class="axis" x="{left - 6}" y="{_n(y + 4)}" text-anchor="end">{fmt_num(t, 0)}</text>')
    if not points:
        out.append(f'<text class="empty" x="{left + pw / 2:.0f}" y="{top + ph / 2:.0f}" '
                   f'text-anchor="middle">No data yet</text>')
        out.append(tail)
        return Markup("".join(out))
    first_day = points[0].day
    span = max((points[-1].day - first_day).days, 1)

    def x_of(day: dt.date) -> float:
        return left + ((day - first_day).days / span) * pw

    # x-axis labels: first, middle and last day
    label_days = [points[0].day, points[len(points) // 2].day, points[-1].day] if len(points) > 2 else \
        [p.day for p in points]
    for i, day in enumerate(dict.fromkeys(label_days)):
        anchor = "start" if i == 0 else ("end" if day == points[-1].day else "middle")
        out.append(f'<text class="axis" x="{_n(x_of(day))}" y="{height - 6}" text-anchor="{anchor}">'
                   f'{day.strftime("%b %-d")}</text>')
    # one line through the known values: a day without a value (the job did not run) is bridged
    if known:
        coords = [(x_of(p.day), y_of(p.value or 0)) for p in known]
        line = " ".join(f"{_n(x)},{_n(y)}" for x, y in coords)
        base = _n(top + ph)
        area = f"{_n(coords[0][0])},{base} {line} {_n(coords[-1][0])},{base}"
        out.append(f'<polygon class="area" points="{area}" fill="{color}"/>')
        out.append(f'<polyline class="trend" points="{line}" stroke="{color}"/>')
        for x, y in coords if len(coords) <= 40 else ():
            out.append(f'<circle class="pt" cx="{_n(x)}" cy="{_n(y)}" r="2" fill="{color}"/>')
    by_day = {p.day: p.value for p in points}
    for ev in events:
        if ev.day < first_day or ev.day > points[-1].day:
            continue
        v = by_day.get(ev.day)
        cx, cy = x_of(ev.day), y_of(v if v is not None else 0)
        dot = (f'<circle class="event" cx="{_n(cx)}" cy="{_n(cy)}" r="5"><title>{escape(ev.label)}</title>'
               f'</circle>')
        if ev.href:
            dot = f'<a href="{escape(ev.href)}" aria-label="{escape(ev.label)}">{dot}</a>'
        out.append(dot)
    if known:
        lx, ly = x_of(known[-1].day), y_of(known[-1].value or 0)
        out.append(f'<circle class="last" cx="{_n(lx)}" cy="{_n(ly)}" r="3.5" fill="{color}"/>')
    out.append(tail)
    return Markup("".join(out))


def bar_chart(bars: Sequence[Bar], *, title: str, width: int = 420, row: int = 30, label_width: int = 130) -> Markup:
    """Horizontal bars, one row each; a bar with an ``href`` is a link (e.g. to a filtered list)."""
    height = max(row * len(bars), row)
    desc = "; ".join(f"{b.label}: {b.text or f'{fmt_num(b.value)} of {fmt_num(b.maximum)}'}" for b in bars) \
        or "no data"
    head, tail = _svg_open(width, height, title, desc, "bars")
    out = [head]
    track = width - label_width - 70
    if not bars:
        out.append(f'<text class="empty" x="{width / 2:.0f}" y="{row / 2 + 4:.0f}" text-anchor="middle">'
                   f'No data yet</text>')
    for i, b in enumerate(bars):
        y = i * row
        frac = 0.0 if b.maximum <= 0 else max(0.0, min(1.0, b.value / b.maximum))
        text = b.text or f"{fmt_num(b.value)}/{fmt_num(b.maximum)}"
        parts = (f'<text class="label" x="0" y="{y + row / 2 + 4:.0f}">{escape(b.label)}</text>'
                 f'<rect class="track" x="{label_width}" y="{y + 8}" width="{track}" height="{row - 16}" rx="3"/>'
                 f'<rect class="bar" x="{label_width}" y="{y + 8}" width="{_n(track * frac)}" height="{row - 16}" '
                 f'rx="3" fill="{b.color}"/>'
                 f'<text class="value" x="{label_width + track + 8}" y="{y + row / 2 + 4:.0f}">{escape(text)}</text>')
        if b.href:
            parts = (f'<a href="{escape(b.href)}" aria-label="{escape(b.label)}: {escape(text)}">'
                     f'<rect class="hit" x="0" y="{y}" width="{width}" height="{row}"/>{parts}</a>')
        out.append(f"<g>{parts}</g>")
    out.append(tail)
    return Markup("".join(out))


def _polar(c: float, radius: float, angle: float) -> tuple[float, float]:
    """Point at ``angle`` radians clockwise from 12 o'clock."""
    return c + radius * math.sin(angle), c - radius * math.cos(angle)


def _sector(c: float, outer: float, inner: float, a0: float, a1: float) -> str:
    """Path of a ring sector from a0 to a1 (radians, clockwise, a1 - a0 < 2π)."""
    large = 1 if a1 - a0 > math.pi else 0
    (x0, y0), (x1, y1) = _polar(c, outer, a0), _polar(c, outer, a1)
    (x2, y2), (x3, y3) = _polar(c, inner, a1), _polar(c, inner, a0)
    return (f"M{_n(x0)} {_n(y0)}A{_n(outer)} {_n(outer)} 0 {large} 1 {_n(x1)} {_n(y1)}"
            f"L{_n(x2)} {_n(y2)}A{_n(inner)} {_n(inner)} 0 {large} 0 {_n(x3)} {_n(y3)}Z")


def donut(segments: Sequence[Segment], *, title: str, center: str = "", center_sub: str = "",
          size: int = 160, thickness: int = 26) -> Markup:
    """A donut of ``segments`` (zero-valued ones are skipped); each segment may link somewhere.

    Segments are ring-sector paths (not dashed circles), so a segment's link is exactly its shape.
    """
    total = sum(max(s.value, 0) for s in segments)
    desc = "; ".join(f"{s.label}: {fmt_num(s.value)}" for s in segments) or "no data"
    head, tail = _svg_open(size, size, title, desc, "donut")
    out = [head]
    c = size / 2
    outer, inner = c - 1, c - 1 - thickness
    out.append(f'<circle class="track" cx="{_n(c)}" cy="{_n(c)}" r="{_n((outer + inner) / 2)}" '
               f'stroke-width="{thickness}"/>')
    shown = [s for s in segments if s.value > 0]
    gap = 0.012 if len(shown) > 1 else 0.0
    angle = 0.0
    for s in shown:
        sweep = 2 * math.pi * s.value / total
        a0, a1 = angle + gap / 2, angle + sweep - gap / 2
        angle += sweep
        if a1 <= a0:
            continue
        pct = 100 * s.value / total
        if sweep >= 2 * math.pi - 1e-9:  # one segment: a full ring, drawn as two halves
            d = _sector(c, outer, inner, 0, math.pi) + _sector(c, outer, inner, math.pi, 2 * math.pi - 1e-6)
        else:
            d = _sector(c, outer, inner, a0, a1)
        arc = (f'<path class="seg" d="{d}" fill="{s.color}">'
               f'<title>{escape(s.label)}: {fmt_num(s.value)} ({pct:.0f}%)</title></path>')
        if s.href:
            arc = f'<a href="{escape(s.href)}" aria-label="{escape(s.label)}: {fmt_num(s.value)}">{arc}</a>'
        out.append(arc)
    if center:
        out.append(f'<text class="center" x="{_n(c)}" y="{_n(c + (2 if center_sub else 7))}" '
                   f'text-anchor="middle">{escape(center)}</text>')
    if center_sub:
        out.append(f'<text class="center-sub" x="{_n(c)}" y="{_n(c + 20)}" text-anchor="middle">'
                   f'{escape(center_sub)}</text>')
    out.append(tail)
    return Markup("".join(out))


def sparkline(values: Sequence[float], *, title: str, width: int = 72, height: int = 20,
              rising_is_bad: bool = True) -> Markup:
    """A tiny trend for table cells: red when rising (if rising is bad), green when falling."""
    vals = [float(v) for v in values]
    if len(vals) < 2:
        return Markup("")
    lo, hi = min(vals), max(vals)
    span = (hi - lo) or 1.0
    trend = "flat" if vals[-1] == vals[0] else ("up" if vals[-1] > vals[0] else "down")
    bad = (trend == "up") == rising_is_bad if trend != "flat" else None
    cls = "flat" if bad is None else ("bad" if bad else "good")
    desc = f"from {fmt_num(vals[0])} to {fmt_num(vals[-1])} ({'rising' if trend == 'up' else 'falling' if trend == 'down' else 'unchanged'})"
    head, tail = _svg_open(width, height, title, desc, f"spark {cls}")
    step = (width - 4) / (len(vals) - 1)
    pts = " ".join(f"{_n(2 + i * step)},{_n(height - 2 - (v - lo) / span * (height - 4))}" for i, v in enumerate(vals))
    return Markup(f'{head}<polyline points="{pts}"/>{tail}')


