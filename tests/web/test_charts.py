"""The dashboard's price chart (pure SVG)."""

from __future__ import annotations

import xml.etree.ElementTree as ET

from trader.web.charts import HEIGHT, PAD, WIDTH, price_svg

NS = "{http://www.w3.org/2000/svg}"


def test_a_rising_line_spans_the_box_and_is_green():
    svg = ET.fromstring(price_svg("AAPL", [(0, 10.0), (60, 12.0), (120, 11.0), (180, 14.0)], "stored 1 day bars"))
    line = svg.find(f"{NS}polyline")
    points = [tuple(map(float, p.split(","))) for p in line.get("points").split()]
    assert len(points) == 4 and line.get("stroke") == "#1a7f37"
    assert points[0][0] == PAD and points[-1][0] == WIDTH - PAD
    assert min(y for _, y in points) == 32 and max(y for _, y in points) == HEIGHT - PAD  # high at top, low at bottom
    assert "AAPL: stored 1 day bars" == svg.find(f"{NS}title").text


def test_a_falling_line_is_red_and_too_few_points_say_so():
    assert 'stroke="#cf222e"' in price_svg("X", [(0, 2.0), (1, 1.0)])
    one = ET.fromstring(price_svg("X<y>", [(0, 5.0)]))  # escaped, and no line from one price
    assert one.find(f"{NS}polyline") is None and "not enough prices" in "".join(one.itertext())
    assert ET.fromstring(price_svg("FLAT", [(0, 3.0), (5, 3.0)])).find(f"{NS}polyline") is not None
