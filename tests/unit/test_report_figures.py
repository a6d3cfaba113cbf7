"""The report's figures read as people expect: a PR curve has its no-skill baseline, and a legend never covers
the lines it names."""

from __future__ import annotations

from loopline.operate.report import figures


def _runs() -> list[dict[str, object]]:
    return [{"value": 0.9 - 0.02 * i, "measured_at": f"2026-12-05T12:0{i}:00+00:00", "metric": "f1",
             "champion_version": "m-1", "champion_holdout_score": 0.95, "alarm_threshold": 0.85} for i in range(4)]


def test_the_precision_recall_curve_shows_the_prevalence_baseline():
    # given a class that is 37% of the holdout
    numbers = {"curves": [{"class": "yes", "positives": 37, "prevalence": 0.37,
                           "pr": {"recall": [0, 0.5, 1], "precision": [1, 0.9, 0.37], "average_precision": 0.9}}]}

    # when the figure is drawn
    (axes,) = figures.precision_recall_curves(numbers).axes

    # then a horizontal line at precision 0.37 is there, named in the legend
    baselines = [line for line in axes.get_lines() if list(line.get_ydata()) == [0.37, 0.37]]
    assert baselines
    assert any("prevalence 0.370" in text.get_text() for text in axes.get_legend().get_texts())


def test_the_monitoring_legend_sits_below_the_axes_not_on_the_holdout_line():
    runs = _runs()
    figure = figures.metric_against_champion(runs, runs[-1])
    (axes,) = figure.axes
    figure.canvas.draw()
    legend_box = figure.legends[0].get_window_extent()
    assert axes.get_legend() is None
    for level in (0.95, 0.85):  # the holdout score and the alarm threshold
        _, y = axes.transData.transform((0, level))
        assert y > legend_box.y1


def test_report_times_read_as_local_time_to_the_second_with_the_zone(monkeypatch):
    import time

    from loopline.operate.report import page

    # given a reader in Central European Time and a time the functions recorded in UTC with microseconds
    monkeypatch.setenv("TZ", "Europe/Berlin")
    time.tzset()
    try:
        # when it is shown
        shown = page._when("2026-12-05T12:00:01.123456+00:00")
    finally:
        monkeypatch.delenv("TZ")
        time.tzset()

    # then local time, no microseconds, the zone named
    assert shown == "2026-12-05 13:00:01 CET"
    assert page._when(None) == "-"
    assert page._when("not a time") == "not a time"
