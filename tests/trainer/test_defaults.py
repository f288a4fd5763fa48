"""The size-dependent round defaults (trainer/defaults.py): each part of the rule at its anchors and limits,
and the parameter count read from safetensors headers."""

from __future__ import annotations

import json
import struct

import pytest

from trainer import defaults
from trainer.contract import PPOArgs, RewardArgs
from trainer.defaults import RoundSizes


@pytest.mark.parametrize(
    ("num_parameters", "reward_lr", "ppo_lr"),
    [
        (150_000, 1e-3, 1e-4),  # smaller than the small anchor: held there, not extrapolated
        (1_500_000, 1e-3, 1e-4),
        (1_000_000_000, 1e-5, 3e-6),
        (70_000_000_000, 1e-5, 3e-6),  # larger than the large anchor: held there
    ],
)
def test_learning_rates_follow_the_anchors_and_stay_flat_outside(num_parameters, reward_lr, ppo_lr):
    rates = defaults.learning_rates(num_parameters)
    assert rates["reward.learning_rate"].value == pytest.approx(reward_lr)
    assert rates["ppo.learning_rate"].value == pytest.approx(ppo_lr)


def test_learning_rates_fall_monotonically_between_the_anchors():
    sizes = [1.5e6, 1.2e7, 1.24e8, 3.5e8, 1e9]
    reward = [defaults.learning_rates(int(n))["reward.learning_rate"].value for n in sizes]
    ppo = [defaults.learning_rates(int(n))["ppo.learning_rate"].value for n in sizes]
    assert reward == sorted(reward, reverse=True) and len(set(reward)) == len(reward)
    assert ppo == sorted(ppo, reverse=True) and len(set(ppo)) == len(ppo)
    # GPT-2 small (124M): between the anchors, in the range published recipes use for it
    assert 1e-5 < defaults.learning_rates(124_000_000)["reward.learning_rate"].value < 1e-4
    assert "124.0M parameters" in defaults.learning_rates(124_000_000)["ppo.learning_rate"].reason


@pytest.mark.parametrize(("usable", "share"), [(0, 0.3), (190, 0.3), (400, 0.25), (500, 0.2), (800, 0.12), (5000, 0.1)])
def test_heldout_share_aims_at_a_hundred_pairs_within_ten_to_thirty_percent(usable, share):
    assert defaults.heldout_fraction(usable).value == share


@pytest.mark.parametrize(("eval_pairs", "threshold"), [(10, 0.76), (40, 0.63), (100, 0.582), (300, 0.547)])
def test_accuracy_gate_is_a_95_percent_bound_over_chance(eval_pairs, threshold):
    assert defaults.min_rm_accuracy(eval_pairs).value == pytest.approx(threshold, abs=0.001)


def test_reward_model_gets_about_250_steps_at_most_two_epochs_large_data_one():
    # a first round of 400 judgments: ~140 strict training pairs
    assert defaults.reward_batch_size(140).value == 8
    assert defaults.reward_epochs(140, 8).value == 2  # capped: 18 steps an epoch
    assert defaults.reward_batch_size(2000).value == 32
    assert defaults.reward_epochs(2000, 32).value == 2  # capped: 63 steps an epoch
    assert defaults.reward_batch_size(20_000).value == 32
    assert defaults.reward_epochs(20_000, 32).value == 1  # 625 steps in one pass


def test_ppo_passes_aim_at_480_episodes():
    assert defaults.ppo_prompt_epochs(160).value == 3.0
    assert defaults.ppo_prompt_epochs(40).value == 4.0
    assert defaults.ppo_prompt_epochs(5000).value == 1.0


def test_derive_follows_an_explicit_reward_batch_and_never_states_the_gate_below_the_smallest_round():
    sizes = RoundSizes(num_parameters=None, usable_pairs=0, train_pairs=400, eval_pairs=0, ppo_prompts=160)
    derived = defaults.derive(sizes, min_heldout_pairs=10, reward_batch=100)
    assert "reward.batch_size" not in derived and "reward.learning_rate" not in derived  # size unknown
    assert derived["reward.num_epochs"].value == 2  # 4 steps an epoch at batch 100, capped
    assert derived["gates.min_rm_accuracy"].value == 0.76  # as for 10 held-out pairs, not 0


def _safetensors(path, tensors: dict[str, list[int]]) -> None:
    offset, header = 0, {"__metadata__": {"format": "pt"}}
    for name, shape in tensors.items():
        size = 4
        for dim in shape:
            size *= dim
        header[name] = {"dtype": "F32", "shape": shape, "data_offsets": [offset, offset + size]}
        offset += size
    raw = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(raw)) + raw + b"\0" * offset)


def test_parameter_count_from_headers_single_and_sharded(tmp_path):
    single = tmp_path / "single"
    single.mkdir()
    _safetensors(single / "model.safetensors", {"wte": [10, 4], "ln.bias": [4]})
    assert defaults.count_parameters(single) == 44

    sharded = tmp_path / "sharded"
    sharded.mkdir()
    _safetensors(sharded / "model-00001-of-00002.safetensors", {"a": [3, 3]})
    _safetensors(sharded / "model-00002-of-00002.safetensors", {"b": [2]})
    weight_map = {"a": "model-00001-of-00002.safetensors", "b": "model-00002-of-00002.safetensors"}
    (sharded / "model.safetensors.index.json").write_text(json.dumps({"weight_map": weight_map}))
    assert defaults.count_parameters(sharded) == 11


def test_parameter_count_is_none_without_readable_safetensors(tmp_path):
    assert defaults.count_parameters(tmp_path) is None
    (tmp_path / "model.safetensors").write_bytes(b"\xff" * 4)
    assert defaults.count_parameters(tmp_path) is None


def test_a_stage_run_alone_gets_the_derived_defaults_for_what_its_command_line_left_unset():
    sizes = RoundSizes(num_parameters=1_500_000, usable_pairs=200, train_pairs=160, eval_pairs=40, ppo_prompts=160)
    told: list[str] = []
    reward = defaults.for_stage(RewardArgs(learning_rate=5e-4), "reward", sizes, log=told.append)
    assert reward.learning_rate == 5e-4  # given: kept
    assert (reward.batch_size, reward.num_epochs) == (8, 2)  # derived from 160 training pairs
    assert any(line.startswith("reward.num_epochs = 2 (derived:") for line in told)
    assert not any(line.startswith("reward.learning_rate") for line in told)
    ppo = defaults.for_stage(PPOArgs(), "ppo", sizes)
    assert (ppo.learning_rate, ppo.num_prompt_epochs) == (1e-4, 3.0)
    unknown_size = RoundSizes(None, 0, 0, 0, 160)
    assert defaults.for_stage(PPOArgs(), "ppo", unknown_size).learning_rate == PPOArgs().learning_rate
