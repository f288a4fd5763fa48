import math

import pytest
import torch

from trainer.ppo_math import (
    AdaptiveKLController,
    FixedKLController,
    compute_gae,
    compute_rewards,
    kl_penalty,
    last_true_indices,
    policy_loss,
    value_loss,
)
from trainer.tensor_utils import response_mask_from_eos, truncate_after_eos

EOS, PAD = 2, 0


# ---- KL ------------------------------------------------------------------------------------------------


def test_kl_penalty_k1_and_k3_hand_values():
    logprobs = torch.log(torch.tensor([0.5]))
    ref_logprobs = torch.log(torch.tensor([0.25]))
    assert kl_penalty(logprobs, ref_logprobs, "k1").item() == pytest.approx(math.log(2))
    # k3 = (q/p - 1) - log(q/p) = (0.5 - 1) - log 0.5
    assert kl_penalty(logprobs, ref_logprobs, "k3").item() == pytest.approx(-0.5 + math.log(2))
    assert kl_penalty(ref_logprobs, logprobs, "k3").item() >= 0  # k3 is never negative


def test_kl_penalty_rejects_unknown_estimator():
    with pytest.raises(ValueError, match="unknown KL estimator 'k2'"):
        kl_penalty(torch.zeros(1), torch.zeros(1), "k2")


# ---- rewards -------------------------------------------------------------------------------------------


def test_compute_rewards_puts_score_on_last_real_token_and_kl_on_real_tokens():
    mask = torch.tensor([[1, 1, 1, 0], [1, 1, 1, 1]], dtype=torch.bool)
    logprobs = torch.full((2, 4), -1.0)
    ref_logprobs = torch.full((2, 4), -1.1)  # k1 KL = 0.1 per token
    rewards, kl = compute_rewards(torch.tensor([10.0, 20.0]), logprobs, ref_logprobs, mask, kl_coef=0.5)
    expected = [[-0.05, -0.05, -0.05 + 10.0, 0.0], [-0.05, -0.05, -0.05, -0.05 + 20.0]]
    assert rewards.tolist() == [pytest.approx(row) for row in expected]
    assert kl.tolist() == [pytest.approx([0.1, 0.1, 0.1, 0.0]), pytest.approx([0.1] * 4)]


def test_reward_placement_with_left_padded_prompts_and_right_padded_responses():
    # two prompts of different length, left-padded to 4; responses end at different positions
    queries = torch.tensor([[PAD, PAD, 11, 12], [11, 12, 13, 14]])
    generated = torch.tensor([[7, EOS, 9, 9], [7, 8, 9, EOS]])  # row 0 keeps sampling after its EOS
    responses = truncate_after_eos(generated, EOS, PAD)
    assert responses.tolist() == [[7, EOS, PAD, PAD], [7, 8, 9, EOS]]
    mask = response_mask_from_eos(responses, EOS)
    zeros = torch.zeros(2, 4)
    rewards, _ = compute_rewards(torch.tensor([1.0, 2.0]), zeros, zeros, mask, kl_coef=0.05)
    assert rewards.tolist() == [[0.0, 1.0, 0.0, 0.0], [0.0, 0.0, 0.0, 2.0]]  # on each EOS
    # the reward model reads its score at the same token: column P + 1 and P + 3 of prompt + response
    last = queries.size(1) + last_true_indices(mask)
    assert last.tolist() == [5, 7]
    assert torch.cat([queries, responses], dim=1)[torch.arange(2), last].tolist() == [EOS, EOS]


def test_last_true_indices_rejects_empty_rows():
    assert last_true_indices(torch.tensor([[1, 1, 0], [1, 1, 1]], dtype=torch.bool)).tolist() == [1, 2]
    with pytest.raises(ValueError, match="at least one real token"):
        last_true_indices(torch.tensor([[0, 0, 0]], dtype=torch.bool))


# ---- GAE -----------------------------------------------------------------------------------------------


def test_compute_gae_three_step_hand_example():
    rewards = torch.tensor([[0.0, 0.0, 1.0]])
    values = torch.tensor([[0.5, 0.6, 0.7]])
    mask = torch.ones(1, 3, dtype=torch.bool)
    advantages, returns = compute_gae(rewards, values, mask, gamma=1.0, lam=0.5)
    # t=2: delta = 1 - 0.7 = 0.3;  t=1: 0.7 - 0.6 + 0.5 * 0.3 = 0.25;  t=0: 0.6 - 0.5 + 0.5 * 0.25 = 0.225
    assert advantages[0].tolist() == pytest.approx([0.225, 0.25, 0.3])
    assert returns[0].tolist() == pytest.approx([0.725, 0.85, 1.0])


def naive_gae(rewards, values, length, gamma, lam):
    """A_t = sum_k (gamma lam)^k delta_{t+k}, written as a double loop over one row."""
    deltas = [rewards[t] + gamma * (values[t + 1] if t + 1 < length else 0.0) - values[t] for t in range(length)]
    return [sum((gamma * lam) ** k * deltas[t + k] for k in range(length - t)) for t in range(length)]


def test_compute_gae_matches_naive_loop_with_padding_garbage_ignored():
    torch.manual_seed(0)
    B, T, gamma, lam = 3, 6, 0.9, 0.8
    rewards, values = torch.randn(B, T), torch.randn(B, T)
    lengths = [6, 4, 1]
    mask = torch.arange(T)[None, :] < torch.tensor(lengths)[:, None]
    values_with_garbage = torch.where(mask, values, 100.0)  # padding must not leak into the result
    advantages, returns = compute_gae(rewards, values_with_garbage, mask, gamma, lam)
    for b, length in enumerate(lengths):
        expected = naive_gae(rewards[b].tolist(), values[b].tolist(), length, gamma, lam)
        assert advantages[b, :length].tolist() == pytest.approx(expected, abs=1e-5)
        assert returns[b, :length].tolist() == pytest.approx(
            [a + v for a, v in zip(expected, values[b].tolist(), strict=False)], abs=1e-5
        )
        assert torch.all(advantages[b, length:] == 0) and torch.all(returns[b, length:] == 0)


def test_compute_gae_rejects_masks_that_are_not_right_padded():
    with pytest.raises(ValueError, match="right-padded"):
        compute_gae(torch.zeros(1, 3), torch.zeros(1, 3), torch.tensor([[False, True, True]]))


# ---- clipped losses ------------------------------------------------------------------------------------


def test_policy_loss_equals_minus_advantage_when_ratio_is_one():
    advantages = torch.tensor([[1.0, -2.0, 3.0]])
    logprobs = torch.tensor([[-1.0, -2.0, -3.0]])
    mask = torch.tensor([[True, True, False]])
    loss, stats = policy_loss(logprobs, logprobs, advantages, mask, cliprange=0.2)
    assert loss.item() == pytest.approx(0.5)  # -(1 - 2) / 2
    assert stats["clipfrac"].item() == 0.0 and stats["approxkl"].item() == 0.0
    assert stats["ratio"].item() == pytest.approx(1.0)


def test_policy_loss_clips_and_counts_clipfrac():
    old = torch.zeros(1, 3)
    new = torch.log(torch.tensor([[1.5, 0.5, 0.5]])).requires_grad_()
    advantages = torch.tensor([[1.0, -1.0, 1.0]])
    loss, stats = policy_loss(new, old, advantages, torch.ones(1, 3, dtype=torch.bool), cliprange=0.2)
    # tok0: max(-1.5, -1.2) = -1.2 clipped; tok1: max(0.5, 0.8) = 0.8 clipped; tok2: max(-0.5, -0.8) = -0.5
    assert loss.item() == pytest.approx((-1.2 + 0.8 - 0.5) / 3)
    assert stats["clipfrac"].item() == pytest.approx(2 / 3)
    assert stats["approxkl"].item() == pytest.approx(0.5 * (math.log(1.5) ** 2 + 2 * math.log(0.5) ** 2) / 3)
    loss.backward()
    assert new.grad[0, 0] == 0 and new.grad[0, 1] == 0  # clipped tokens get no gradient
    assert new.grad[0, 2] == pytest.approx(-0.5 / 3)  # d(-A * ratio)/dlogp = -A * ratio / n


def test_value_loss_hand_values_and_clipfrac():
    mask = torch.tensor([[True, True, False]])
    old = torch.tensor([[0.0, 0.0, 0.0]])
    new = torch.tensor([[1.0, 0.1, 9.0]])
    returns = torch.tensor([[0.5, 1.0, 0.0]])
    loss, stats = value_loss(new, old, returns, mask, cliprange_value=0.05)
    # tok0: unclipped (1 - 0.5)^2 = 0.25 vs clipped (0.05 - 0.5)^2 = 0.2025 -> 0.25, not clipped
    # tok1: unclipped (0.1 - 1)^2 = 0.81 vs clipped (0.05 - 1)^2 = 0.9025 -> 0.9025, clipped
    assert loss.item() == pytest.approx(0.5 * (0.25 + 0.9025) / 2)
    assert stats["clipfrac"].item() == pytest.approx(0.5)


# ---- KL controllers ------------------------------------------------------------------------------------


def test_fixed_kl_controller_never_moves():
    ctl = FixedKLController(0.05)
    ctl.update(current_kl=100.0, n_steps=1000)
    assert ctl.value == 0.05


def test_adaptive_kl_controller_follows_ziegler_update():
    ctl = AdaptiveKLController(0.1, target=6.0, horizon=10000)
    ctl.update(current_kl=12.0, n_steps=1000)  # error 1.0 clipped to 0.2: mult 1 + 0.2 * 0.1
    assert ctl.value == pytest.approx(0.102)
    ctl.update(current_kl=6.6, n_steps=10000)  # error 0.1: mult 1.1
    assert ctl.value == pytest.approx(0.1122)
    ctl.update(current_kl=0.0, n_steps=5000)  # error -1 clipped to -0.2: mult 0.9
    assert ctl.value == pytest.approx(0.10098)
    restored = AdaptiveKLController(0.5, 6.0, 10000)
    restored.load_state_dict(ctl.state_dict())
    assert restored.value == ctl.value
