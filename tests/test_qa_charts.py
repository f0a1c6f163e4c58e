"""The report's SVG chart geometry: bars, ticks, thresholds and sweep marks land where the numbers say."""

import pytest

from pairsynth.alignment import qa
from pairsynth.alignment.qa_charts import BOTTOM, LEFT, RIGHT, TOP, histogram_chart, nice_ceiling, sweep_chart


@pytest.mark.parametrize("largest, expected", [(0, (1, 1)), (4, (4, 1)), (7, (8, 2)), (11, (15, 5)), (50, (50, 10)),
                                               (51, (60, 20)), (1234, (1500, 500)), (4999, (5000, 1000))])
def test_count_axes_get_whole_number_ticks_and_at_most_five_steps(largest, expected):
    top, step = nice_ceiling(largest)
    assert (top, step) == expected
    assert top >= largest and top // step <= 5 and top % step == 0


def test_histogram_bars_are_as_tall_as_their_counts():
    edges, counts = qa.score_histogram([10.0, 10.5, 11.0, 30.0, 99.0, 100.0], bins=50)
    chart = histogram_chart(edges, counts, judge="clip", threshold=25.0, unit="CLIPScore")
    assert len(chart.bars) == 3  # empty bins draw nothing; 99 and 100 share the closed top bin
    assert sum(c for c in counts) == 6 and "about 3 below the threshold" in chart.title
    top, _ = nice_ceiling(max(counts))
    for bar in chart.bars:
        count = int(bar.tip.rsplit(": ", 1)[1].split()[0])
        assert bar.height == pytest.approx(count / top * (BOTTOM - TOP), abs=0.02)
        assert bar.y + bar.height == pytest.approx(BOTTOM, abs=0.02)
    tallest = max(chart.bars, key=lambda b: b.height)
    assert tallest.tip.startswith("10–12: 3")  # 10.0, 10.5 and 11.0 share the 10–12 bin
    assert tallest.x == pytest.approx(LEFT + 0.10 * (RIGHT - LEFT), abs=0.02)
    (rule,) = chart.rules
    assert rule.x == pytest.approx(LEFT + 0.25 * (RIGHT - LEFT), abs=0.02) and rule.label == "threshold 25"


def test_a_histogram_without_threshold_has_no_rule():
    edges, counts = qa.score_histogram([40.0, 41.0])
    chart = histogram_chart(edges, counts, judge="clap", threshold=None, unit="CLAPScore")
    assert chart.rules == [] and "below" not in chart.title and chart.colour != "#555"


def test_the_sweep_marks_the_exact_share_kept_at_the_threshold():
    thresholds = list(range(0, 101))
    sweeps = {"clip": (thresholds, qa.threshold_sweep([20.0, 30.0, 40.0, 50.0], 5, thresholds)),
              "clap": (thresholds, qa.threshold_sweep([60.0], 2, thresholds))}
    chart = sweep_chart(sweeps, {"clip": (30.0, 0.6)})
    assert [line.label for line in chart.lines] == ["CLIPScore", "CLAPScore"] and chart.legend
    first = chart.lines[0].points.split()[0]
    assert first == f"{LEFT:.1f},{BOTTOM - 0.8 * (BOTTOM - TOP):.1f}"  # 4 of 5 kept at threshold 0
    (dot,) = chart.dots
    assert dot.label == "60.0% kept at 30" and dot.y == pytest.approx(BOTTOM - 0.6 * (BOTTOM - TOP), abs=0.02)
    assert [t.label for t in chart.y_ticks] == ["0", "20", "40", "60", "80", "100"]
