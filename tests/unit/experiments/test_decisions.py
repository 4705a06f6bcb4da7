"""Verdicts that keep their error rate: families (Holm), plans, declared looks, equivalence and provenance, checked
through ``compare`` itself on simulated experiments with a known truth (experiments/calibration.py). Without the
family correction, 3 variants against one baseline at 5 seeds give a false verdict somewhere in ~15% of null
experiments, and a look at 5 seeds then at 10 in ~9%: the calibration tests below fail on that behaviour."""

import json

import numpy as np
import pytest

from scrnet.config import ConfigError
from scrnet.experiments.calibration import SCENARIOS, arm_label, as_runs, simulate_arms, true_difference
from scrnet.experiments.compare import CompareError, compare, format_markdown, format_text
from scrnet.experiments.plan import Plan, plan_from_dict, read_looks, sequential_levels

SEED_NOISE = SCENARIOS[0]
DECIDED = ("better", "worse")


def plan_for(variants: int, seeds: int, looks=(), margin=None) -> Plan:
    return Plan([(arm_label(a), arm_label(0)) for a in range(1, variants + 1)], list(range(seeds)), ["miou"],
                list(looks), margin)


def any_false(result) -> bool:
    return any(c["verdict"] in DECIDED for c in result["comparisons"])


@pytest.mark.parametrize("variants", [3])  # 5 and more: benchmarks/compare_calibration.py
def test_family_wise_false_verdicts_stay_at_alpha(variants):
    rng = np.random.default_rng(7)
    experiments = 200
    plan = plan_for(variants, 5)
    false = sum(any_false(compare(as_runs(simulate_arms(SEED_NOISE, 5, [0.0] * (variants + 1), rng)), plan=plan))
                for _ in range(experiments))
    assert false / experiments <= 0.08, f"a false verdict somewhere in {false / experiments:.1%} of experiments"


def test_without_a_plan_the_family_is_every_comparison_of_the_call():
    rng = np.random.default_rng(3)
    result = compare(as_runs(simulate_arms(SEED_NOISE, 5, [0.0, 0.0, 0.0, 0.0], rng)))
    assert result["family"]["size"] == 3 * len(result["metrics"]) and result["family"]["adjustment"] == "Holm"
    raw = sorted(c["p"] for c in result["comparisons"])
    assert min(c["p_adjusted"] for c in result["comparisons"]) == pytest.approx(min(1.0, raw[0] * len(raw)))
    text = format_text(result)
    assert f"family of {result['family']['size']} comparisons (every comparison of this call)" in text
    assert "p (Holm)" in text and "p (Holm)" in format_markdown(result)


def test_comparisons_outside_the_plan_are_exploratory_and_a_planned_pair_need_not_involve_the_baseline():
    rng = np.random.default_rng(4)
    arms = simulate_arms(SEED_NOISE, 5, [0.0, 0.05, 0.05], rng)
    plan = Plan([(arm_label(1), arm_label(0)), (arm_label(2), arm_label(1))], list(range(5)), ["miou"])
    result = compare(as_runs(arms), plan=plan)
    by_pair = {(c["group"], c["baseline"]): c for c in result["comparisons"] if c["metric"] == "miou"}
    assert by_pair[(arm_label(1), arm_label(0))]["verdict"] == "better"
    assert by_pair[(arm_label(2), arm_label(0))]["verdict"] == "exploratory"  # shown, never decided
    assert by_pair[(arm_label(2), arm_label(0))]["p_adjusted"] is None
    assert by_pair[(arm_label(2), arm_label(1))]["in_family"] and result["family"]["size"] == 2
    assert "comparisons outside the plan are exploratory" in format_text(result)
    back = json.loads(json.dumps(result))
    assert back["family"]["plan"]["comparisons"][1] == [arm_label(2), arm_label(1)]


def test_a_plan_refuses_seeds_it_did_not_fix_and_groups_it_cannot_find():
    rng = np.random.default_rng(5)
    runs = as_runs(simulate_arms(SEED_NOISE, 6, [0.0, 0.0], rng))
    with pytest.raises(CompareError, match="seeds 5 are not in the plan"):
        compare(runs, plan=plan_for(1, 5))
    with pytest.raises(CompareError, match="matches no run or group"):
        compare(runs, plan=Plan([("model.channels=999", arm_label(0))], list(range(6))))


def test_two_declared_looks_keep_the_overall_error_at_alpha():
    levels = sequential_levels([5, 10])
    assert levels[0] == pytest.approx(0.00557, abs=2e-5) and levels[1] == pytest.approx(0.0478, abs=5e-4)
    rng = np.random.default_rng(11)
    plan = plan_for(1, 10, looks=(5, 10))
    experiments, false = 200, 0
    for _ in range(experiments):
        runs = as_runs(simulate_arms(SEED_NOISE, 10, [0.0, 0.0], rng))
        early = compare([r for r in runs if r.seed < 5], plan=plan)
        assert early["family"]["look"]["index"] == 0 and early["family"]["level"] == pytest.approx(levels[0])
        false += any_false(early) or any_false(compare(runs, plan=plan))
    assert false / experiments <= 0.07
    # a difference a single look at 5 seeds would call is, at the first of two declared looks, not yet decided
    while True:
        runs = [r for r in as_runs(simulate_arms(SEED_NOISE, 10, [0.0, 0.02], rng)) if r.seed < 5]
        c = compare(runs, plan=plan)["comparisons"][0]
        if levels[0] < c["p"] < 0.05:
            break
    assert c["metric"] == "miou" and compare(runs, plan=plan_for(1, 5))["comparisons"][0]["verdict"] == "better"
    assert c["verdict"] == "inconclusive" and "interim look 1 of 2: continue to 10 seeds" in c["why"]


def test_a_look_between_the_declared_ones_gives_no_verdict():
    rng = np.random.default_rng(12)
    runs = [r for r in as_runs(simulate_arms(SEED_NOISE, 10, [0.0, 0.2], rng)) if r.seed < 7]
    c = compare(runs, plan=plan_for(1, 10, looks=(5, 10)))["comparisons"][0]
    assert c["metric"] == "miou"
    assert c["verdict"] == "inconclusive" and "7 seeds is not a look of the plan" in c["why"]


def test_seeds_added_after_an_undeclared_look_are_warned_about(tmp_path):
    rng = np.random.default_rng(13)
    runs = as_runs(simulate_arms(SEED_NOISE, 8, [0.0, 0.0], rng))
    record = tmp_path / "looks.jsonl"
    first = compare([r for r in runs if r.seed < 5], looks_record=record)
    assert first["warnings"] == []
    second = compare(runs, looks_record=record)
    assert len(second["warnings"]) == 1 and "undeclared look at 5 seeds" in second["warnings"][0]
    assert "warning: seeds were added after an undeclared look" in format_text(second)
    assert [(look.seeds, look.declared) for look in read_looks(record)] == [(5, False), (8, False)]
    notes = tmp_path / "notes.txt"  # a file that is not a looks record is never appended to
    notes.write_text("my notes\n")
    with pytest.raises(ConfigError, match="line 1 is not a look scrnet recorded"):
        compare(runs, looks_record=notes)
    assert notes.read_text() == "my notes\n"
    declared = tmp_path / "declared.jsonl"
    plan = plan_for(1, 8, looks=(5, 8))
    compare([r for r in runs if r.seed < 5], plan=plan, looks_record=declared)
    assert compare(runs, plan=plan, looks_record=declared)["warnings"] == []


def test_equivalent_is_rarely_said_when_the_true_difference_is_the_margin():
    rng = np.random.default_rng(17)
    margin_points = 100 * true_difference(SEED_NOISE, 0.01)
    experiments = 200
    said = sum(compare(as_runs(simulate_arms(SEED_NOISE, 10, [0.0, 0.01], rng)),
                       margin=margin_points)["comparisons"][0]["verdict"] == "equivalent"
               for _ in range(experiments))
    assert said / experiments <= 0.08
    # and it is said when nothing differs and the margin is wide
    wide = compare(as_runs(simulate_arms(SEED_NOISE, 10, [0.0, 0.0], rng)), margin=5 * margin_points)
    assert wide["comparisons"][0]["verdict"] == "equivalent" and wide["margin"] == pytest.approx(5 * margin_points)


def test_an_inconclusive_comparison_says_how_many_seeds_would_decide_it():
    rng = np.random.default_rng(19)
    result = compare(as_runs(simulate_arms(SEED_NOISE, 5, [0.0, 0.0], rng)), effect=0.5)
    (c,) = [c for c in result["comparisons"] if c["metric"] == "miou"]
    assert c["verdict"] == "inconclusive" and c["seeds_needed"] > 5
    assert f"{c['seeds_needed']} paired seeds for 80% power at 0.5 points" in format_text(result)


def test_a_collapsed_seed_is_flagged_and_the_permutation_p_shown():
    rng = np.random.default_rng(23)
    arms = simulate_arms(SEED_NOISE, 6, [0.0, 0.0], rng)
    arms[0][2] = (arms[0][2] * 0).astype(np.int64)  # the baseline's seed 2 learnt nothing
    arms[0][2][:, :, 0] = SEED_NOISE.pixels  # every pixel called class 0
    c = compare(as_runs(arms), plan=plan_for(1, 6))["comparisons"][0]
    assert c["metric"] == "miou"
    assert c["skewed"] and 0 < c["permutation_p"] <= 1
    assert "skewed" in format_text(compare(as_runs(arms), plan=plan_for(1, 6)))


def test_runs_scored_by_other_metric_definitions_are_refused_unless_asked():
    rng = np.random.default_rng(29)
    arms = simulate_arms(SEED_NOISE, 5, [0.0, 0.0], rng)
    runs = as_runs(arms[:1], metrics_version=1) + as_runs(arms, metrics_version=None)[5:]
    with pytest.raises(CompareError, match="metrics_version 1 vs unrecorded") as err:
        compare(runs)
    assert "arm0/seed0.json" in str(err.value)
    assert compare(runs, allow_mixed_metrics=True)["metrics_version"] is None


@pytest.mark.parametrize("data, message", [
    ({"comparisons": [["a"]], "seeds": [0, 1]}, "comparisons must be"),
    ({"comparisons": [["a", "b"]], "seeds": [0]}, "seeds must be"),
    ({"comparisons": [["a", "b"]], "seeds": [0, 1, 2], "looks": [2, 5]}, "looks must be"),
    ({"comparisons": [["a", "b"]], "seeds": [0, 1], "metrics": ["acc"]}, "metrics must be"),
    ({"comparisons": [["a", "b"]], "seeds": [0, 1], "margin": -1}, "margin must be"),
    ({"comparisons": [["a", "b"]], "seeds": [0, 1], "alpha": 0.7}, "alpha must be"),
    ({"comparisons": [["a", "b"]], "seeds": [0, 1], "seed": 3}, "unknown plan key 'seed'")])
def test_a_bad_plan_is_one_line_naming_the_file_and_the_key(data, message):
    with pytest.raises(ConfigError, match=message) as err:
        plan_from_dict(data, "plans/p.yaml")
    assert str(err.value).startswith("plans/p.yaml: ") and "\n" not in str(err.value)
