"""The forest plot's rows and title: every comparison of a plan's family gets a row (a pair not against the baseline
too, named with both sides), and the title says which look it is."""

import pytest

from scrnet.experiments.compare import CompareError
from scrnet.experiments.forest import forest_plot, pairs, row_label, title


def comparison(group, against, metric="miou", diff=0.004, verdict="equivalent"):
    return {"group": group, "baseline": against, "metric": metric, "diff": diff, "low": diff - 0.002,
            "high": diff + 0.002, "verdict": verdict, "pairing": "paired", "group_seeds": [100, 101],
            "baseline_seeds": [100, 101]}


def result(look=None):
    rows = [comparison(g, b, m) for g, b in (("neighbor", "dysample"), ("neighbor", "bilinear"),
                                              ("dysample", "bilinear")) for m in ("miou", "boundary_iou")]
    family = {"size": 6, "look": look} if look else None
    return {"baseline": "bilinear", "comparisons": rows, "margin": 1.0, "family": family}


def test_every_pair_is_a_row_those_against_the_baseline_first():
    assert list(pairs(result())) == [("neighbor", "bilinear"), ("dysample", "bilinear"), ("neighbor", "dysample")]


def test_a_row_not_against_the_baseline_names_both_sides():
    r = result()
    assert row_label(r["comparisons"][2], "bilinear") == "neighbor\nseeds 100,101"
    assert row_label(r["comparisons"][0], "bilinear") == "neighbor vs dysample\nseeds 100,101"


def test_the_title_names_the_look_and_whether_it_is_interim():
    assert "look" not in title(result())
    interim = title(result({"seeds": 5, "index": 0, "looks": [5, 10], "levels": [0.0056, 0.048]}))
    assert "look 1 of 2, 5 seeds: interim" in interim
    final = title(result({"seeds": 10, "index": 1, "looks": [5, 10], "levels": [0.0056, 0.048]}))
    assert "look 2 of 2, 10 seeds)" in final and "interim" not in final


def test_the_plot_is_written_and_an_empty_result_is_refused(tmp_path):
    pytest.importorskip("matplotlib")
    path = forest_plot(result(), tmp_path / "forest.png")
    assert path.read_bytes().startswith(b"\x89PNG")
    with pytest.raises(CompareError, match="nothing to plot"):
        forest_plot({"baseline": "bilinear", "comparisons": [], "margin": None}, tmp_path / "none.png")
