"""trainer/evaluate.py samples held-out prompts exactly as PPO's rollouts do."""

import json
import math
import shutil

import pytest
import torch

from trainer.contract import OLD_SUFFIX, SIDE_EFFECTS, PPOArgs
from trainer.evaluate import compare_policies, paired_bootstrap_interval
from trainer.models import load_scalar_model, load_tokenizer

PROMPT = [{"role": "user", "content": "tell me about the weather"}]


def _compare(old_dir, new_dir, reward_dir, args, prompts=(PROMPT,), **options):
    return compare_policies(old_dir=old_dir, new_dir=new_dir, ref_dir=old_dir, reward_model_dir=reward_dir,
                            prompts=list(prompts), args=args, samples_per_prompt=4, batch_size=4, seed=0,
                            **options)  # fmt: skip


def test_a_policys_saved_generation_settings_do_not_change_what_is_compared(tiny_policy_dir, tiny_reward_dir,
                                                                            tmp_path, monkeypatch):  # fmt: skip
    """Same weights, but the copy saved a no_repeat_ngram_size: sampled as PPO samples (its own
    GenerationConfig, nothing inherited), both sides draw the same answers, so nothing differs."""
    # one thread: with several, a busy machine can change how a matmul is split and its last bits
    monkeypatch.setattr("trainer.evaluate.configure_cpu", lambda *_: torch.set_num_threads(1))
    copy = tmp_path / "same_weights"
    shutil.copytree(tiny_policy_dir, copy)
    config = json.loads((copy / "generation_config.json").read_text())
    (copy / "generation_config.json").write_text(json.dumps(config | {"no_repeat_ngram_size": 1}))
    result = _compare(tiny_policy_dir, str(copy), tiny_reward_dir, PPOArgs(response_length=48))
    assert result["eval/score_gain"] == 0.0
    # one prompt bounds nothing: the activation rule cannot be satisfied by it
    assert (result["eval/score_gain_low"], result["eval/score_gain_high"]) == (-math.inf, math.inf)
    assert result["eval/kl"] == result["eval/kl_old"]
    for name in SIDE_EFFECTS:  # the same answers: the same side effects, measured on both sides
        assert result[name] == result[name + OLD_SUFFIX], name


def test_each_sides_answers_are_judged_by_the_configured_evasion_patterns(tiny_policy_dir, tiny_reward_dir):
    args = PPOArgs(response_length=8)
    everything = _compare(tiny_policy_dir, tiny_policy_dir, tiny_reward_dir, args, evasion_patterns=["^"])
    nothing = _compare(tiny_policy_dir, tiny_policy_dir, tiny_reward_dir, args, evasion_patterns=["(?!)"])
    assert everything["eval/evasion_rate"] == everything["eval/evasion_rate_old"] == 1.0
    assert nothing["eval/evasion_rate"] == nothing["eval/evasion_rate_old"] == 0.0
    for name in ("eval/distinct_1", "eval/distinct_2_old"):  # decoded words of 8-token answers
        assert 0.0 < everything[name] <= 1.0


def test_prompts_are_cut_to_leave_room_for_the_response_in_the_position_embeddings(tiny_policy_dir, tmp_path,
                                                                                   make_gpt2):  # fmt: skip
    """A held-out prompt longer than n_positions - response_length keeps its last tokens, as in PPO;
    otherwise generation runs past the position embeddings."""
    short = str(tmp_path / "short_context")
    tokenizer = load_tokenizer(tiny_policy_dir)
    make_gpt2(short, tokenizer, n_positions=48)
    reward_dir = str(tmp_path / "reward")
    torch.manual_seed(0)
    load_scalar_model(short, tokenizer.pad_token_id).save_pretrained(reward_dir)
    tokenizer.save_pretrained(reward_dir)
    long_prompt = [{"role": "user", "content": "tell me about the weather and music " * 20}]
    args = PPOArgs(response_length=16, max_prompt_length=256)
    result = _compare(short, short, reward_dir, args, prompts=[long_prompt, PROMPT])
    assert result["eval/num_samples"] == 8
    assert result["eval/score_gain"] == 0.0
    # two prompts, both with no difference: the interval is the point 0, whose lower end is not above 0
    assert result["eval/score_gain_low"] == result["eval/score_gain_high"] == 0.0


def test_the_gain_interval_matches_the_normal_approximation_on_many_prompts():
    """For the mean of n differences the bootstrap interval is mean +/- z * sd / sqrt(n) (here n=400)."""
    differences = torch.randn(400, generator=torch.Generator().manual_seed(1), dtype=torch.float64) + 0.3
    low, high = paired_bootstrap_interval(differences, confidence=0.95, seed=0)
    half_width = 1.96 * differences.std().item() / math.sqrt(400)
    assert low == pytest.approx(differences.mean().item() - half_width, abs=0.015)
    assert high == pytest.approx(differences.mean().item() + half_width, abs=0.015)
    narrower = paired_bootstrap_interval(differences, confidence=0.5, seed=0)
    assert low < narrower[0] < narrower[1] < high


def test_a_gain_carried_by_one_prompt_is_not_confident():
    """Nine prompts unchanged and one much better: the mean gain is positive, the lower end is not."""
    differences = torch.tensor([0.0] * 9 + [5.0], dtype=torch.float64)
    low, high = paired_bootstrap_interval(differences, confidence=0.95, seed=0)
    assert differences.mean().item() == 0.5 and low <= 0.0 < 0.5 < high
