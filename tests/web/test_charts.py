"""The server-side SVG charts: well-formed, accessible, escaped, and drawing what the numbers say."""

from __future__ import annotations

import datetime as dt
import math
import re
import xml.etree.ElementTree as ET

from garrison.server.web import charts
from garrison.server.web.charts import Bar, ChartEvent, Segment
from garrison.tvm.queries.summary import Point, exposure_level

NS = {"svg": "http://www.w3.org/2000/svg"}
DAY = dt.date(2026, 11, 1)


def parse(markup: str) -> ET.Element:
    root = ET.fromstring(str(markup))
    assert root.tag == "{http://www.w3.org/2000/svg}svg"
    assert root.get("role") == "img"
    ids = root.get("aria-labelledby", "").split()
    assert len(ids) == 2
    assert root.find("svg:title", NS).get("id") == ids[0]
    assert root.find("svg:desc", NS).get("id") == ids[1]
    return root


def days(values: list[float | None]) -> list[Point]:
    return [Point(DAY + dt.timedelta(days=i), v) for i, v in enumerate(values)]


def test_line_chart_draws_one_line_through_known_days_and_bridges_gaps() -> None:
    svg = parse(charts.line_chart(days([70, None, 60, 50, None, 40]), title="Exposure", y_max=100))
    lines = svg.findall(".//svg:polyline", NS)
    assert len(lines) == 1
    pts = [tuple(map(float, p.split(","))) for p in lines[0].get("points").split()]
    assert len(pts) == 4
    xs, ys = [p[0] for p in pts], [p[1] for p in pts]
    assert xs == sorted(xs) and ys == sorted(ys)  # later days to the right; falling score goes down the chart
    desc = svg.find("svg:desc", NS).text
    assert "latest 40" in desc and "lowest 40" in desc and "highest 70" in desc


def test_line_chart_y_axis_is_fixed_for_scores_and_nice_otherwise() -> None:
    fixed = charts.line_chart(days([10, 20]), title="t", y_max=100)
    assert ">100<" in str(fixed) and ">50<" in str(fixed)
    free = charts.line_chart(days([3, 7]), title="t")
    assert ">10<" in str(free)


def test_line_chart_event_dots_are_links_with_titles() -> None:
    events = [ChartEvent(DAY + dt.timedelta(days=1), "2 events", "/console/timeline?start=2026-11-02"),
              ChartEvent(DAY + dt.timedelta(days=40), "outside the chart", "/x")]
    svg = parse(charts.line_chart(days([50, 60, 55]), title="t", events=events))
    links = svg.findall(".//svg:a", NS)
    assert len(links) == 1
    assert links[0].get("href") == "/console/timeline?start=2026-11-02"
    assert links[0].find("svg:circle/svg:title", NS).text == "2 events"


def test_line_chart_without_data_says_so() -> None:
    svg = parse(charts.line_chart([], title="Nothing"))
    assert "No data yet" in ET.tostring(svg, encoding="unicode")
    assert svg.find("svg:desc", NS).text == "no score recorded yet"


def test_text_is_escaped_everywhere() -> None:
    evil = '<script>alert("x")</script>&'
    for markup in (charts.line_chart(days([1, 2]), title=evil, events=[ChartEvent(DAY, evil, "/a?b=1&c=<2>")]),
                   charts.bar_chart([Bar(evil, 1, 2, href="/x?a=<b>")], title=evil),
                   charts.donut([Segment(evil, 1, "#000", "/y?<z>")], title=evil, center=evil, center_sub=evil),
                   charts.sparkline([1, 2], title=evil)):
        text = str(markup)
        assert "<script>" not in text and "&lt;script&gt;" in text
        parse(text)  # still well-formed XML


def test_bars_are_proportional_clamped_and_linked() -> None:
    svg = parse(charts.bar_chart([Bar("OS", 75, 100, href="/r?category=OS"), Bar("Network", 150, 100),
                                  Bar("Accounts", 0, 0, text="no data")], title="By category", width=400,
                                 label_width=100))
    rects = [r for r in svg.findall(".//svg:rect", NS) if r.get("class") == "bar"]
    track = float(next(r for r in svg.findall(".//svg:rect", NS) if r.get("class") == "track").get("width"))
    widths = [float(r.get("width")) for r in rects]
    assert math.isclose(widths[0], track * 0.75, abs_tol=0.1)
    assert math.isclose(widths[1], track, abs_tol=0.1)  # over the maximum: a full bar, not more
    assert widths[2] == 0
    links = svg.findall(".//svg:a", NS)
    assert [a.get("href") for a in links] == ["/r?category=OS"]
    assert "no data" in ET.tostring(svg, encoding="unicode")


def _angles(path: str) -> tuple[float, float]:
    nums = [float(x) for x in re.findall(r"-?\d+(?:\.\d+)?", path)]
    (x0, y0), (x1, y1) = nums[0:2], nums[7:9]
    return math.atan2(x0 - 80, 80 - y0) % (2 * math.pi), math.atan2(x1 - 80, 80 - y1) % (2 * math.pi)


def test_donut_segments_are_sized_by_value_and_skip_zeroes() -> None:
    svg = parse(charts.donut([Segment("High", 3, "#f00", "/d?e=High"), Segment("Low", 1, "#ff0", "/d?e=Low"),
                              Segment("None", 0, "#0f0", "/d?e=None")], title="Exposure", center="4",
                             center_sub="devices", size=160, thickness=20))
    paths = svg.findall(".//svg:a/svg:path", NS)
    assert len(paths) == 2
    assert [a.get("aria-label") for a in svg.findall(".//svg:a", NS)] == ["High: 3", "Low: 1"]
    start, end = _angles(paths[0].get("d"))
    assert math.isclose(end - start, 2 * math.pi * 0.75, abs_tol=0.05)  # 3 of 4, less the small gap
    assert paths[0].find("svg:title", NS).text == "High: 3 (75%)"
    texts = [t.text for t in svg.findall("svg:text", NS)]
    assert texts == ["4", "devices"]


def test_donut_with_one_segment_is_a_full_ring_and_empty_one_only_a_track() -> None:
    full = parse(charts.donut([Segment("All", 5, "#f00")], title="t"))
    path = full.find(".//svg:path", NS).get("d")
    assert path.count("M") == 2  # two halves: one arc cannot close a circle
    empty = parse(charts.donut([Segment("High", 0, "#f00")], title="t"))
    assert empty.findall(".//svg:path", NS) == []
    assert empty.find("svg:circle", NS).get("class") == "track"


def test_sparkline_colour_follows_the_direction() -> None:
    assert 'class="chart spark bad"' in str(charts.sparkline([1, 3, 5], title="t"))
    assert 'class="chart spark good"' in str(charts.sparkline([5, 3, 1], title="t"))
    assert 'class="chart spark flat"' in str(charts.sparkline([2, 4, 2], title="t"))
    assert 'class="chart spark good"' in str(charts.sparkline([1, 3], title="t", rising_is_bad=False))
    assert str(charts.sparkline([3], title="t")) == ""


def test_exposure_levels_follow_defenders_bands() -> None:
    assert [exposure_level(v) for v in (0, 29.9, 30, 69.9, 70, 100, None)] == \
        ["Low", "Low", "Medium", "Medium", "High", "High", "No data"]


def test_numbers_are_formatted_for_people() -> None:
    assert charts.fmt_num(12345) == "12,345"
    assert charts.fmt_num(1.25, 1) == "1.2" or charts.fmt_num(1.25, 1) == "1.3"
    assert charts.fmt_num(None) == "–"
