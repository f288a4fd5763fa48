"""What a round's page says in every state (app/training/round_view.py): stage ticks, "N / 5 stages", the bar
and the line under it agree; every gate is listed with its threshold, value and verdict; the log is clean text."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from app.training import round_view
from app.training.workdir import clean_log, log_tail
from trainer.contract import LOG_FILE

ALL = ["snapshot", "reward_model", "ppo", "evaluate", "publish"]


def view(status, stage="", completed=(), step=0, total=0, started=True):
    states = round_view.stage_states(status=status, stage=stage, completed_stages=list(completed), started=started)
    round_ = SimpleNamespace(status=status, stage=stage, step=step, total_steps=total)
    return (
        list(states.values()),
        round_view.stages_done(states),
        round_view.round_fraction(states, step=step, total_steps=total),
        round_view.progress_line(round_, states),
    )


P, D, C, F, R, S = "pending", "done", "current", "failed", "rejected", "stopped"


@pytest.mark.parametrize(
    ("round_", "states", "done", "bar", "line"),
    [
        # queued: nothing yet; a failed round queued again keeps what it completed (it resumes)
        ({"status": "queued", "started": False}, [P] * 5, 0, 0.0, "waiting for a worker"),
        (
            {"status": "queued", "stage": "ppo", "completed": ALL[:2]},
            [D, D, P, P, P],
            2,
            0.4,
            "2 / 5 stages · waiting for a worker",
        ),
        # running: the snapshot, a trainer that has not reported yet, a stage with steps, evaluate
        ({"status": "running"}, [C, P, P, P, P], 0, 0.0, "0 / 5 stages · snapshot: starting"),
        ({"status": "running", "completed": ALL[:1]}, [D, C, P, P, P], 1, 0.2, "1 / 5 stages · reward model: starting"),
        (
            {"status": "running", "stage": "reward_model", "completed": ALL[:1], "step": 12, "total": 40},
            [D, C, P, P, P],
            1,
            (1 + 0.3) / 5,
            "1 / 5 stages · reward model: step 12 / 40 (30%)",
        ),
        (
            {"status": "running", "stage": "evaluate", "completed": ALL[:3], "step": 1, "total": 4},
            [D, D, D, C, P],
            3,
            (3 + 0.25) / 5,
            "3 / 5 stages · evaluate: step 1 / 4 (25%)",
        ),
        # succeeded
        (
            {"status": "succeeded", "stage": "publish", "completed": ALL, "step": 4, "total": 4},
            [D] * 5,
            5,
            1.0,
            "5 / 5 stages · published",
        ),
        # failed in each stage
        ({"status": "failed"}, [F, P, P, P, P], 0, 0.0, "0 / 5 stages · failed in snapshot"),
        (
            {"status": "failed", "stage": "reward_model", "completed": ALL[:1], "step": 3, "total": 40},
            [D, F, P, P, P],
            1,
            0.2,
            "1 / 5 stages · failed in reward model at step 3 / 40",
        ),
        (
            {"status": "failed", "stage": "ppo", "completed": ALL[:2], "step": 9, "total": 30},
            [D, D, F, P, P],
            2,
            0.4,
            "2 / 5 stages · failed in ppo at step 9 / 30",
        ),
        (
            {"status": "failed", "stage": "evaluate", "completed": ALL[:3]},
            [D, D, D, F, P],
            3,
            0.6,
            "3 / 5 stages · failed in evaluate",
        ),
        # publishing failed: every trainer stage completed, the stage it reported is done
        (
            {"status": "failed", "stage": "evaluate", "completed": ALL[:4], "step": 4, "total": 4},
            [D, D, D, D, F],
            4,
            0.8,
            "4 / 5 stages · failed in publish",
        ),
        # rejected by the gate after the reward model, or after the evaluation
        (
            {"status": "rejected", "stage": "reward_model", "completed": ALL[:2], "step": 40, "total": 40},
            [D, R, P, P, P],
            1,
            0.2,
            "1 / 5 stages · rejected by the gate after reward model",
        ),
        (
            {"status": "rejected", "stage": "evaluate", "completed": ALL[:4], "step": 4, "total": 4},
            [D, D, D, R, P],
            3,
            0.6,
            "3 / 5 stages · rejected by the gate after evaluate",
        ),
        # cancelled before it started, and while a stage ran (the bar never runs ahead of the ticks)
        ({"status": "cancelled", "started": False}, [P] * 5, 0, 0.0, "0 / 5 stages · cancelled before it started"),
        (
            {"status": "cancelled", "stage": "reward_model", "completed": ALL[:1], "step": 40, "total": 40},
            [D, S, P, P, P],
            1,
            0.2,
            "1 / 5 stages · cancelled during reward model at step 40 / 40",
        ),
        ({"status": "cancelled", "completed": []}, [S, P, P, P, P], 0, 0.0, "0 / 5 stages · cancelled during snapshot"),
    ],
)
def test_ticks_count_bar_and_line_agree(round_, states, done, bar, line):
    got_states, got_done, got_bar, got_line = view(**round_)
    assert got_states == states
    assert got_done == done == states.count(D)
    assert got_bar == pytest.approx(bar)
    if round_["status"] not in ("running",):
        assert got_bar == pytest.approx(done / 5), "a finished or waiting round's bar is its stages done"
    assert got_line == line


def _verdict(value, limit, op, what, setting, passed):
    return {"value": value, "limit": limit, "op": op, "what": what, "setting": setting, "passed": passed}


GATES = {"min_rm_accuracy": 0.6, "max_kl": 8.0, "min_eos_rate": 0.5, "min_score_gain": None}
SIDE_EFFECT_GATES = ["max_evasion_increase", "max_length_change", "min_distinct_2_ratio"]  # off unless set


def test_gates_list_every_gate_passed_failed_and_not_reached():
    results = {
        "reward_model": {"rm/eval/accuracy": 0.82},
        "gates": {
            "rm_accuracy": _verdict(0.82, 0.6, ">=", "reward model held-out accuracy", "gates.min_rm_accuracy", True),
            "finite": _verdict(0.0, 1.0, ">=", "PPO losses finite", "NaN/inf during PPO", False),
        },
    }
    rows = round_view.gate_rows(results=results, gates_config=GATES, live=False)
    assert [(r.name, r.threshold, r.value, r.verdict) for r in rows] == [
        ("rm_accuracy", "≥ 0.6", 0.82, "passed"),
        ("finite", "≥ 1", 0.0, "failed"),
        ("max_kl", "≤ 8", None, "not reached"),
        ("min_eos_rate", "≥ 0.5", None, "not reached"),
        ("min_score_gain", "off", None, "off"),
        *[(name, "off", None, "off") for name in SIDE_EFFECT_GATES],
    ]
    assert rows[0].what == "reward model held-out accuracy"
    # while the round runs, the gates ahead are pending rather than not reached
    live = round_view.gate_rows(results=results, gates_config=GATES, live=True)
    assert [r.verdict for r in live][2:] == ["pending", "pending", "off", "off", "off", "off"]


def test_gates_before_any_stage_and_after_all():
    before = round_view.gate_rows(results={}, gates_config=GATES, live=False)
    assert [(r.name, r.verdict) for r in before] == [
        ("min_rm_accuracy", "not reached"),
        ("max_kl", "not reached"),
        ("min_eos_rate", "not reached"),
        ("min_score_gain", "off"),
        *[(name, "off") for name in SIDE_EFFECT_GATES],
    ]
    checked = {
        "rm_accuracy": _verdict(0.9, 0.6, ">=", "acc", "gates.min_rm_accuracy", True),
        "kl": _verdict(9.1, 8.0, "<=", "kl", "gates.max_kl", False),
        "eos_rate": _verdict(1.0, 0.5, ">=", "eos", "gates.min_eos_rate", True),
        "score_gain": _verdict(-0.02, 0.0, ">=", "gain", "gates.min_score_gain", False),
    }
    after = round_view.gate_rows(results={"gates": checked}, gates_config={**GATES, "min_score_gain": 0.0}, live=False)
    assert [(r.name, r.threshold, r.verdict) for r in after] == [
        ("rm_accuracy", "≥ 0.6", "passed"),
        ("kl", "≤ 8", "failed"),
        ("eos_rate", "≥ 0.5", "passed"),
        ("score_gain", "≥ 0", "failed"),
        *[(name, "off", "off") for name in SIDE_EFFECT_GATES],
    ]


def test_the_trainer_verdicts_name_the_setting_the_page_matches_them_by():
    from trainer.contract import GateConfig
    from trainer.round import gate_verdicts

    gates = GateConfig(
        min_rm_accuracy=0.6,
        max_kl=5.0,
        min_eos_rate=0.5,
        min_score_gain=0.0,
        max_evasion_increase=0.05,
        max_length_change=0.3,
        min_distinct_2_ratio=0.8,
    )
    evaluation = {"eval/kl": 1.0, "eval/score_gain": 0.1, "eval/eos_rate": 1.0, "eval/eos_rate_old": 1.0}
    evaluation |= {"eval/evasion_rate": 0.1, "eval/evasion_rate_old": 0.1, "eval/response_length": 11.0}
    evaluation |= {"eval/response_length_old": 10.0, "eval/distinct_2": 0.5, "eval/distinct_2_old": 0.55}
    results = {"reward_model": {"rm/eval/accuracy": 0.8}, "ppo": {"gates": {"nan_or_inf": False}}}
    results["evaluate"] = evaluation
    rows = round_view.gate_rows(
        results={"gates": gate_verdicts(results, gates)}, gates_config=gates.model_dump(), live=False
    )
    assert [r.verdict for r in rows] == ["passed"] * 8, "every setting is matched by a verdict, none listed twice"


def test_a_round_stored_before_gates_were_described_lists_each_gate_once():
    # Such rounds kept only value, limit, passed and reason per gate (no setting, operator or description).
    old = {
        "rm_accuracy": {"value": 0.81, "limit": 0.6, "passed": True, "reason": ""},
        "finite": {"value": 1.0, "limit": 1.0, "passed": True, "reason": ""},
        "kl": {"value": 9.5, "limit": 8.0, "passed": False, "reason": "KL ... is 9.5, the gate is <= 8 (gates.max_kl)"},
        "eos_rate": {"value": 0.97, "limit": 0.5, "passed": True, "reason": ""},
    }
    rows = round_view.gate_rows(results={"gates": old}, gates_config=GATES, live=False)
    assert [(r.name, r.threshold, r.value, r.verdict) for r in rows] == [
        ("rm_accuracy", "≥ 0.6", 0.81, "passed"),
        ("finite", "≥ 1", 1.0, "passed"),
        ("kl", "≤ 8", 9.5, "failed"),
        ("eos_rate", "≥ 0.5", 0.97, "passed"),
        ("min_score_gain", "off", None, "off"),
        *[(name, "off", None, "off") for name in SIDE_EFFECT_GATES],
    ]
    assert rows[0].what == "reward model held-out accuracy"


def test_the_descriptions_of_undescribed_gates_are_the_trainers():
    from trainer.contract import GateConfig
    from trainer.round import gate_verdicts

    gates = GateConfig(min_rm_accuracy=0.6, max_kl=5.0, min_eos_rate=0.5, min_score_gain=0.0)
    results = {
        "reward_model": {"rm/eval/accuracy": 0.8},
        "ppo": {"gates": {"nan_or_inf": False}},
        "evaluate": {"eval/kl": 1.0, "eval/eos_rate": 1.0, "eval/score_gain": 0.1},
    }
    described = {
        name: {key: verdict[key] for key in ("setting", "op", "what")}
        for name, verdict in gate_verdicts(results, gates).items()
    }
    assert described == round_view.UNDESCRIBED_GATES


def test_clean_log_drops_escape_codes_and_keeps_the_last_state_of_a_redrawn_line():
    raw = (
        "\rLoading weights:   0%|          | 0/28\rLoading weights: 100%|██████████| 28/28\n"
        "[transformers] \x1b[1mGPT2 LOAD REPORT\x1b[0m from: /m\n"
        "score.weight | \x1b[31mMISSING\x1b[0m |\r\n"
        "\x1b]0;title\x07reward_model 12/40 loss=0.5\n"
    )
    assert clean_log(raw) == (
        "Loading weights: 100%|██████████| 28/28\n"
        "[transformers] GPT2 LOAD REPORT from: /m\n"
        "score.weight | MISSING |\n"
        "reward_model 12/40 loss=0.5\n"
    )


def test_log_tail_starts_at_a_whole_line_and_is_clean(tmp_path):
    lines = [f"line {i} " + "x" * 50 for i in range(200)]
    (tmp_path / LOG_FILE).write_bytes(("\n".join(lines) + "\n\x1b[32mdone\x1b[0m\n").encode())
    tail = log_tail(tmp_path, max_chars=500)
    assert tail.endswith("\ndone\n") and len(tail) <= 500
    assert tail.splitlines()[0] in lines, "no partial first line"
    assert log_tail(tmp_path / "missing") == ""
