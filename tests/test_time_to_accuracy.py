"""time_to_accuracy's rows from a training history (the training itself is a benchmark)."""
from benchmarks.time_to_accuracy import curve_rows, quick_rows


def history(top1s, seconds=60.0):
    return [{"epoch": i + 1, "seconds": seconds, "test_top1": t, "test_top5": 0.9} for i, t in enumerate(top1s)]


def by_measure(rows, start):
    return [r for r in rows if r["measure"].startswith(start)]


def test_recipe_run_is_held_to_80_in_8_minutes_85_in_15_and_85_final():
    rows = curve_rows(history([0.5, 0.79, 0.81, 0.83]), epochs=4)
    (to_80,) = by_measure(rows, "seconds to 80%")
    assert to_80["value"] == 180 and to_80["met"] is True and to_80["target"] == "<= 480 s"
    (to_85,) = by_measure(rows, "seconds to 85%")
    assert "not reached in 4 of 4" in to_85["measure"] and to_85["met"] is False
    (final,) = by_measure(rows, "final test top-1")
    assert final["value"] == 0.83 and final["met"] is False


def test_a_longer_schedule_is_held_to_the_same_times():
    rows = curve_rows(history([0.5] * 10 + [0.81, 0.86]), epochs=12)
    (to_80,) = by_measure(rows, "seconds to 80%")
    assert to_80["value"] == 660 and to_80["met"] is False  # 11 minutes: over 8
    (to_85,) = by_measure(rows, "seconds to 85%")
    assert to_85["value"] == 720 and to_85["met"] is True
    (final,) = by_measure(rows, "final test top-1")
    assert final["met"] is True and "12 epochs" in final["measure"]


def test_unfinished_run_has_no_final_row():
    rows = curve_rows(history([0.5, 0.6]), epochs=12)
    assert not by_measure(rows, "final test top-1")
    (to_80,) = by_measure(rows, "seconds to 80%")
    assert to_80["met"] is None  # 120 s so far: neither met nor missed yet
    over = curve_rows(history([0.5] * 9), epochs=12)  # 540 s without 80%: missed before the end
    assert [r["met"] for r in by_measure(over, "seconds to 8")] == [False, None]


def test_quick_recipe_is_held_to_55_percent_in_150_seconds():
    (top1,) = by_measure(quick_rows(history([0.45, 0.58]), epochs=2), "quick recipe: final test top-1")
    assert top1["value"] == 0.58 and top1["met"] is True
    (secs,) = by_measure(quick_rows(history([0.45, 0.58]), epochs=2), "quick recipe: training seconds")
    assert secs["value"] == 120 and secs["met"] is True
    slow = quick_rows(history([0.40, 0.50, 0.54], seconds=55.0), epochs=3)
    assert [r["met"] for r in slow if r["met"] is not None] == [False, False]


def test_unfinished_quick_run_has_no_verdict():
    rows = quick_rows(history([0.45]), epochs=2)
    assert all(r["met"] is None for r in rows) and not by_measure(rows, "quick recipe: final")
