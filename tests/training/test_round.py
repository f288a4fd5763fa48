"""trainer/round.py on its own: reading the snapshot the app writes, gates, and failing fast on bad input."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from app.core.config import Settings
from app.training.schemas import resolve_config
from trainer.contract import TRAINER_STAGES, GateConfig
from trainer.models import ModelLoadError
from trainer.round import Round, StopFlag, explain, gate_verdicts, run_round

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture
def plain_settings(tmp_path) -> Settings:
    """Settings without a database: these tests only resolve round configurations."""
    return Settings(DATA_DIR=tmp_path / "data", _env_file=None)


def _snapshot(workdir, settings, policy_dir, *, pairs=None, **overrides):
    """A snapshot directory as app/training/snapshot.py writes one, around `policy_dir`."""
    snap = workdir / "snapshot"
    snap.mkdir(parents=True)
    config = resolve_config(settings=settings, overrides=overrides).model_dump()
    config |= {
        "round_id": 1,
        "policy_dir": str(policy_dir),
        "base_policy_dir": str(policy_dir),
        "ref_policy_dir": str(policy_dir),
    }
    prompt = [{"role": "user", "content": "Tell me about owls."}]
    if pairs is None:
        pairs = [
            {
                "judgment_id": i,
                "prompt_id": i,
                "prompt": prompt,
                "chosen": "Owls hunt at night.",
                "rejected": "no",
                "margin": 0.0,
                "split": "eval" if i % 4 == 0 else "train",
            }
            for i in range(16)
        ]
    (snap / "config.json").write_text(json.dumps(config))
    (snap / "pairs.jsonl").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    (snap / "prompts.jsonl").write_text(
        json.dumps({"prompt_id": 1, "prompt": prompt, "split": "train"})
        + "\n"
        + json.dumps({"prompt_id": 2, "prompt": prompt, "split": "eval"})
        + "\n"
    )
    (snap / "manifest.json").write_text("{}")


def _run(workdir) -> tuple[int, dict]:
    code = run_round(workdir, StopFlag())
    return code, json.loads((workdir / "status.json").read_text())


def test_inconsistent_ppo_batch_sizes_fail_before_any_model_is_loaded(tmp_path, plain_settings):
    """total_episodes that does not tile into batches: the app cannot see it when it comes from an edited
    snapshot, so the trainer checks again, first thing."""
    _snapshot(tmp_path, plain_settings, tmp_path / "no-model-needed")
    config = json.loads((tmp_path / "snapshot" / "config.json").read_text())
    config["ppo"] |= {"total_episodes": 40, "batch_size": 16}
    (tmp_path / "snapshot" / "config.json").write_text(json.dumps(config))
    code, status = _run(tmp_path)
    assert code == 1 and status["state"] == "failed"
    assert status["error"] == (
        "snapshot: inconsistent PPO batch sizes: total_episodes (40) must be a multiple of batch_size (16)."
    )
    assert not (tmp_path / "outputs" / "reward_model").exists()


def test_an_unknown_trainer_setting_fails_with_its_name(tmp_path, plain_settings):
    _snapshot(tmp_path, plain_settings, tmp_path / "none")
    config = json.loads((tmp_path / "snapshot" / "config.json").read_text())
    config["reward"]["warmup"] = 3
    (tmp_path / "snapshot" / "config.json").write_text(json.dumps(config))
    code, status = _run(tmp_path)
    assert code == 1
    assert status["error"] == "snapshot: invalid config.json: reward.warmup: Extra inputs are not permitted"


def test_a_trainer_argument_the_console_does_not_offer_is_read_from_the_snapshot(tmp_path, plain_settings):
    """config.json may set any of the stage arguments (trainer/contract.py), not only the console's."""
    from trainer.round import load_snapshot

    _snapshot(tmp_path, plain_settings, tmp_path / "none")
    config = json.loads((tmp_path / "snapshot" / "config.json").read_text())
    config["ppo"]["gamma"] = 0.9
    (tmp_path / "snapshot" / "config.json").write_text(json.dumps(config))
    snap = load_snapshot(tmp_path)
    assert (snap.config.ppo.gamma, snap.config.ppo.kl_coef, snap.config.reward.log_every) == (0.9, 0.05, 10)


def test_a_snapshot_without_held_out_pairs_fails(tmp_path, plain_settings):
    pairs = [
        {
            "judgment_id": 1,
            "prompt_id": 1,
            "prompt": [{"role": "user", "content": "q"}],
            "chosen": "a",
            "rejected": "b",
            "margin": 0.0,
            "split": "train",
        }
    ]
    _snapshot(tmp_path, plain_settings, tmp_path / "none", pairs=pairs)
    code, status = _run(tmp_path)
    assert code == 1
    assert status["error"] == (
        "snapshot: the snapshot has no held-out pairs, so the reward model's accuracy cannot be measured"
    )


def test_an_unloadable_base_model_fails_the_reward_model_stage(tmp_path, plain_settings, tiny_policy_dir):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_policy_dir, broken)
    # Passes the registry's checks (valid JSON with a model_type), but transformers knows no such model.
    config = json.loads((broken / "config.json").read_text())
    (broken / "config.json").write_text(json.dumps(config | {"model_type": "gpt9000"}))
    _snapshot(tmp_path / "round", plain_settings, broken)
    code, status = _run(tmp_path / "round")
    assert code == 1 and status["stage"] == "reward_model"
    assert status["error"].startswith("could not load a model in stage reward_model:")
    assert str(broken) in status["error"]
    assert status["completed_stages"] == [] and not (tmp_path / "round" / "outputs" / "reward_model").exists()


def test_an_impossible_accuracy_gate_rejects_after_the_reward_model_and_skips_ppo(
    tmp_path, plain_settings, tiny_policy_dir
):
    _snapshot(tmp_path, plain_settings, tiny_policy_dir, gates={"min_rm_accuracy": 1.0})
    # Contradictory held-out pairs: no reward model can score "chosen" higher on both.
    pairs = [json.loads(line) for line in (tmp_path / "snapshot" / "pairs.jsonl").read_text().splitlines()]
    flipped = [p | {"chosen": p["rejected"], "rejected": p["chosen"]} for p in pairs if p["split"] == "eval"]
    with (tmp_path / "snapshot" / "pairs.jsonl").open("a") as f:
        f.writelines(json.dumps(p) + "\n" for p in flipped)
    code, status = _run(tmp_path)
    assert code == 0 and status["state"] == "rejected"
    assert status["completed_stages"] == ["reward_model"]
    [reason] = status["rejected_reasons"]
    assert reason.startswith("reward model held-out accuracy is 0.5, the gate is >= 1 (gates.min_rm_accuracy)")
    assert not (tmp_path / "work" / "ppo").exists() and not (tmp_path / "outputs" / "policy").exists()


def test_a_stage_counts_as_done_only_with_its_marker_its_output_and_every_earlier_stage(tmp_path):
    (tmp_path / "work").mkdir()
    for stage in TRAINER_STAGES:
        (tmp_path / "work" / f"{stage}.json").write_text(json.dumps({"stage": stage}))
    (tmp_path / "outputs" / "reward_model").mkdir(parents=True)
    (tmp_path / "outputs" / "reward_model" / "config.json").write_text("{}")
    # outputs/policy is gone (a publish moved it into the registry, then failed): PPO and evaluate rerun.
    assert Round(tmp_path).results == {"reward_model": {"stage": "reward_model"}}


def test_the_evaluate_stage_cuts_long_held_out_prompts_to_fit_the_position_embeddings(
    tmp_path, plain_settings, tiny_policy_dir
):
    """As PPO does: prompt + response_length must fit the policy's positions (256 for the embedded
    policy), so a held-out prompt of ~500 tokens keeps its last 256 - 64 tokens instead of crashing."""
    from trainer.models import load_scalar_model, load_tokenizer
    from trainer.round import load_snapshot, stage_evaluate

    _snapshot(tmp_path, plain_settings, tiny_policy_dir)
    long_prompt = [{"role": "user", "content": "Tell me about owls. " * 100}]
    with (tmp_path / "snapshot" / "prompts.jsonl").open("a") as f:
        f.write(json.dumps({"prompt_id": 3, "prompt": long_prompt, "split": "eval"}) + "\n")
    rnd = Round(tmp_path)
    shutil.copytree(tiny_policy_dir, rnd.outputs / "policy")
    tokenizer = load_tokenizer(str(tiny_policy_dir))
    load_scalar_model(str(tiny_policy_dir), tokenizer.pad_token_id).save_pretrained(rnd.outputs / "reward_model")
    tokenizer.save_pretrained(rnd.outputs / "reward_model")
    snap = load_snapshot(tmp_path)
    assert len(tokenizer(long_prompt[0]["content"])["input_ids"]) > 256
    seen = []  # the (step, total) the stage reports, as the round page shows them
    update = rnd.status.update
    rnd.status.update = lambda **fields: (seen.append((fields["step"], fields["total_steps"])), update(**fields))
    result = stage_evaluate(rnd, snap)
    assert result["eval/num_prompts"] == 2 and result["eval/score_gain"] == pytest.approx(0.0, abs=1e-4)
    # 2 prompts x samples_per_prompt answers fit one generation batch per policy: 2 batches in all.
    assert seen == [(0, 2), (1, 2), (2, 2)], "a real step count from the start, never 0 / 0"
    # the interval the activation rule reads, at the round's configured level
    assert result["eval/confidence"] == snap.config.evaluate.confidence == 0.95
    assert result["eval/score_gain_low"] <= result["eval/score_gain"] <= result["eval/score_gain_high"]


def test_gate_verdicts():
    gates = GateConfig(min_rm_accuracy=0.6, max_kl=5.0, min_eos_rate=0.5)
    results = {
        "reward_model": {"rm/eval/accuracy": 0.8},
        "ppo": {"gates": {"nan_or_inf": True}},
        "evaluate": {"eval/kl": "nan", "eval/eos_rate": 0.5},
    }
    verdicts = gate_verdicts(results, gates)
    assert {k: v["passed"] for k, v in verdicts.items()} == {
        "rm_accuracy": True,
        "finite": False,
        "kl": False,
        "eos_rate": True,
    }
    assert verdicts["kl"]["reason"] == (
        "KL of the new policy to the reference on held-out prompts (nats) is nan, the gate is <= 5 (gates.max_kl)"
    )
    assert verdicts["finite"]["reason"].endswith("(NaN/inf during PPO)")
    assert gate_verdicts({"reward_model": {"rm/eval/accuracy": None}}, gates)["rm_accuracy"]["passed"] is False
    worse = {"evaluate": {"eval/kl": 1.0, "eval/eos_rate": 1.0, "eval/score_gain": -0.2}}
    assert "score_gain" not in gate_verdicts(worse, gates)  # off unless set
    verdict = gate_verdicts(worse, gates.model_copy(update={"min_score_gain": 0.0}))["score_gain"]
    assert verdict["reason"] == (
        "held-out reward-model score gain over the old policy is -0.2, the gate is >= 0 (gates.min_score_gain)"
    )


@pytest.mark.parametrize(
    "exc",
    [
        torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB"),
        RuntimeError(
            "[enforce fail at alloc_cpu.cpp:117] DefaultCPUAllocator: can't allocate memory: you tried to "
            "allocate 1099511627776 bytes."
        ),
        MemoryError(),
    ],
)
def test_out_of_memory_is_explained_with_what_to_lower(exc):
    message = explain(exc, "ppo")
    assert message.startswith("out of memory in stage ppo: lower ppo.batch_size")


def test_other_errors_are_named_by_stage():
    assert (
        explain(ModelLoadError("no config.json"), "evaluate")
        == "could not load a model in stage evaluate: no config.json"
    )
    assert explain(KeyError("x"), "ppo") == "ppo: unexpected KeyError: 'x'"


def test_the_web_app_the_worker_and_the_round_contract_never_import_torch():
    import subprocess

    code = (
        "import sys; import trainer.contract, app.main, app.cli, app.training.worker, app.training.views; "
        "app.main.create_app; assert 'torch' not in sys.modules and 'transformers' not in sys.modules"
    )
    assert subprocess.run([sys.executable, "-c", code], capture_output=True).returncode == 0


@pytest.mark.parametrize(("given", "expected"), [(None, "PASSIVE"), ("ACTIVE", "ACTIVE")])
def test_a_round_process_lets_idle_openmp_threads_sleep_unless_told_otherwise(given, expected):
    import os
    import subprocess

    env = {k: v for k, v in os.environ.items() if k != "OMP_WAIT_POLICY"}
    if given:
        env["OMP_WAIT_POLICY"] = given
    code = "import os, trainer.round; print(os.environ['OMP_WAIT_POLICY'])"
    result = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True)
    assert result.stdout.strip() == expected


def test_the_trainer_log_holds_no_model_load_reports_or_progress_bars(tmp_path, tiny_policy_dir):
    """trainer.log is a file the console shows: without --verbose transformers' load report (a table with
    terminal colours) and its loading bar stay out of it; with --verbose the report is there."""
    load = (
        "import sys; from trainer.round import quiet_libraries; from trainer.models import load_scalar_model; "
        "quiet_libraries(verbose=sys.argv[1] == 'verbose', terminal=False); "
        f"load_scalar_model({str(tiny_policy_dir)!r}, 0)"
    )
    for mode in ("quiet", "verbose"):
        run = subprocess.run(
            [sys.executable, "-c", load, mode], capture_output=True, text=True, timeout=300, cwd=ROOT, check=True
        )
        output = run.stdout + run.stderr
        assert "Loading weights" not in output and "\r" not in output
        assert ("LOAD REPORT" in output) == (mode == "verbose")
