"""Each stage runs alone from the command line (`python -m trainer.reward`, `python -m trainer.ppo`) on a
snapshot's files, writes the same outputs as in a round, and refuses a bad argument with a usage error."""

import json
import os
import subprocess
import sys

import pytest

from trainer import metrics as M
from trainer.models import load_policy, load_scalar_model, load_tokenizer, reward_norm_stats
from trainer.ppo import main as ppo_main
from trainer.reward import main as reward_main

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
PROMPT = [{"role": "user", "content": "tell me about music"}]


def _stage(module: str, *args) -> subprocess.CompletedProcess:
    env = os.environ | {"PYTHONPATH": REPO_ROOT, "OMP_NUM_THREADS": "1"}
    command = [sys.executable, "-m", module, *map(str, args)]
    return subprocess.run(command, cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=300)


def _jsonl(path, rows) -> None:
    path.write_text("".join(json.dumps(row) + "\n" for row in rows))


def test_the_reward_stage_trains_from_a_snapshot_directory(tmp_path, tiny_policy_dir, make_pairs):
    snapshot = tmp_path / "snapshot"
    snapshot.mkdir()
    _jsonl(
        snapshot / "pairs.jsonl",
        [p | {"split": "eval" if i % 4 == 0 else "train"} for i, p in enumerate(make_pairs(24, 1))],
    )
    out = tmp_path / "rm"
    done = _stage("trainer.reward", "--pairs", snapshot, "--policy", tiny_policy_dir, "--out", out,
                  "--batch-size", 6, "--log-every", 1, "--num-threads", 1)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    # the epochs unset: derived as in a round (at most 2), after the batch size given
    assert "reward.num_epochs = 2 (derived: ~250 optimizer steps from 18 training pairs in batches of 6" in done.stderr
    assert "reward.learning_rate = 0.001 (derived: by the policy's size" in done.stderr
    assert result["num_steps"] == 6 and result[M.RM_NUM_PAIRS] == 18  # 18 training pairs in batches of 6, twice
    assert "reward_model" in done.stderr and "6/6" in done.stderr  # the progress bar
    model = load_scalar_model(str(out), load_tokenizer(str(out)).pad_token_id)
    assert reward_norm_stats(model) == (result[M.RM_NORM_MEAN], result[M.RM_NORM_STD])
    steps = [row["step"] for row in M.read_metrics(str(out / "metrics.jsonl"))]
    assert steps == [0, 1, 2, 3, 4, 5, 6, 6]


def test_the_ppo_stage_trains_from_a_prompts_file(tmp_path, tiny_policy_dir, tiny_reward_dir):
    prompts = tmp_path / "prompts.jsonl"
    _jsonl(
        prompts,
        [{"prompt_id": 1, "prompt": PROMPT, "split": "train"}, {"prompt_id": 2, "prompt": PROMPT, "split": "eval"}],
    )
    out = tmp_path / "policy"
    done = _stage("trainer.ppo", "--prompts", prompts, "--policy", tiny_policy_dir, "--reward-model", tiny_reward_dir,
                  "--out", out, "--batch-size", 2, "--total-episodes", 4, "--num-ppo-epochs", 1,
                  "--response-length", 8, "--num-threads", 1)  # fmt: skip
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert (result["num_updates"], result["updates_done"], result["stopped"]) == (2, 2, False)
    assert "ppo" in done.stderr and "2/2" in done.stderr
    assert "ppo.learning_rate = 0.0001 (derived" in done.stderr  # unset: as a round would derive it
    load_policy(str(out), load_tokenizer(str(out)).pad_token_id)
    rows = M.read_metrics(str(out / "metrics.jsonl"))
    assert [row["step"] for row in rows] == [1, 2] and M.OBJECTIVE_KL in rows[-1]


def _usage_error(main, argv, capsys) -> str:
    """What `main(argv)` prints when it refuses the command line; the exit status must be argparse's 2."""
    with pytest.raises(SystemExit) as exit_:
        main([str(a) for a in argv])
    assert exit_.value.code == 2
    return capsys.readouterr().err


def test_help_lists_every_argument(capsys):
    for main, flags in (
        (reward_main, ("--pairs", "--policy", "--out", "--num-epochs", "--center-rewards-coefficient", "--precision")),
        (ppo_main, ("--prompts", "--reward-model", "--ref-policy", "--kl-coef", "--no-whiten-rewards")),
    ):  # fmt: skip
        with pytest.raises(SystemExit) as exit_:
            main(["--help"])
        assert exit_.value.code == 0
        shown = capsys.readouterr().out
        assert all(flag in shown for flag in flags)


def test_a_bad_argument_is_a_usage_error_naming_it(tmp_path, tiny_policy_dir, tiny_reward_dir, capsys):
    pairs = tmp_path / "pairs.jsonl"
    _jsonl(pairs, [{"prompt": PROMPT, "chosen": "a", "rejected": "b", "margin": 0.0, "split": "train"}])
    done = _stage("trainer.reward", "--pairs", pairs, "--policy", tiny_policy_dir, "--out", tmp_path / "o",
                  "--learning-rate", "-1")  # fmt: skip
    assert done.returncode == 2
    assert "error: --learning-rate: Input should be greater than 0" in done.stderr

    error = _usage_error(reward_main, ["--pairs", tmp_path / "missing.jsonl", "--policy", tiny_policy_dir,
                                       "--out", tmp_path], capsys)  # fmt: skip
    assert "--pairs:" in error and "missing.jsonl" in error
    ppo = ["--prompts", pairs, "--reward-model", tiny_reward_dir, "--out", tmp_path / "p"]
    error = _usage_error(ppo_main, [*ppo, "--policy", tiny_policy_dir, "--batch-size", 16, "--num-mini-batches", 3],
                         capsys)  # fmt: skip
    assert "error: --num-mini-batches: num_mini_batches (3) must divide batch_size (16)." in error
    error = _usage_error(ppo_main, [*ppo, "--policy", tmp_path / "nowhere"], capsys)
    assert "--policy:" in error and "is not a model directory" in error
