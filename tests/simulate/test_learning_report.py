"""The learning benchmark's report (bench/bench_learning.py table and summary) on rows of known values."""

from __future__ import annotations

from bench import bench_learning as learning


def _row(seed: int, win_rate: float, helpful_new: float) -> dict:
    return {
        "preference": "overall",
        "seed": seed,
        "round": 1,
        "status": "succeeded",
        "rm_heldout_accuracy": 0.8,
        "config": {"min_rm_accuracy": 0.61},
        "kl_to_base": 1.5,
        "oracle_wins": 90,
        "oracle_losses": 10,
        "oracle_ties": 100,
        "oracle_win_rate": win_rate,
        "oracle_ci95": (win_rate - 0.05, win_rate + 0.05),
        "oracle_win_rate_ties_half": 0.7,
        "oracle_tie_rate": 0.5,
        "oracle_paired": {"wins": 95, "losses": 5, "ties": 100, "win_rate": 0.95},
        "oracle_new": {"helpful": helpful_new, "evasive": 0.1, "on_topic": 0.7, "correct": 0.9, "words": 12.0},
        "oracle_base": {"helpful": 0.4, "evasive": 0.3, "on_topic": 0.5, "correct": 0.6, "words": 11.0},
        "seconds": {"judging": 10.0, "training": 60.0, "oracle": 20.0},
    }


def test_summary_gives_mean_and_sd_over_seeds_and_counts_unmeasured_runs():
    rejected = {"preference": "overall", "seed": 2, "round": 1, "status": "rejected", "error": "gate", "results": {}}
    rows = [_row(0, 0.9, 0.5), _row(1, 0.8, 0.7), rejected]
    line = next(line for line in learning.summary(rows).splitlines() if line.startswith("| overall | 1 |"))
    assert "| 2 of 3 |" in line
    assert "0.850 ± 0.071" in line  # decisive: mean and sample sd of 0.9 and 0.8
    assert "0.40 ± 0.00 → 0.60 ± 0.14" in line  # helpfulness base → new: the side effect beside the win


def test_table_shows_side_effects_and_rejected_rounds():
    rejected = {"preference": "overall", "seed": 1, "round": 1, "status": "rejected", "error": "below the gate"}
    report = learning.table([_row(0, 0.9, 0.5), rejected])
    assert "| 0.950 (95–5–100) |" in report  # paired draws beside the independent ones
    assert "0.40 → 0.50" in report and "0.30 → 0.10" in report and "11.0 → 12.0" in report
    assert "| 0.50 → 0.70 | 0.60 → 0.90 |" in report  # on topic, correct
    assert "rejected: below the gate" in report
    header, rule, *body = report.splitlines()
    assert all(line.count("|") == header.count("|") == rule.count("|") for line in body), "columns line up"


def test_a_row_measured_before_a_quality_existed_shows_a_dash_not_a_number():
    old = _row(0, 0.9, 0.5)
    old["oracle_new"] = {k: v for k, v in old["oracle_new"].items() if k != "correct"}
    assert "| 0.50 → 0.70 | — |" in learning.table([old])
    assert "| — |" in learning.summary([old])
