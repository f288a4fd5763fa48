"""PPO math for RLHF as pure functions: KL penalty, per-token rewards, GAE, clipped losses, KL control.

Nothing here touches a model, an optimizer or global state, so every function is unit-tested with
hand-computed numbers (tests/trainer/test_ppo_math.py). Semantics follow "The N+ implementation
details of RLHF with PPO" reference code (vwxyzjn/summarize_from_feedback_details, `ppo.py`) and TRL's
experimental PPOTrainer; where the two differ, the docstring says which one we follow and why.

All per-token tensors are response-aligned: (B, T) with T = response tokens, right-padded, and a
bool `mask` that is True on each row's real tokens (a prefix of the row, ending at the EOS token).
"""

import torch

from trainer.tensor_utils import first_true_indices, masked_mean, masked_var


def kl_penalty(logprobs: torch.Tensor, ref_logprobs: torch.Tensor, estimator: str = "k1") -> torch.Tensor:
    """Per-token estimate of KL(policy || reference) from the log-probs of the *sampled* tokens.

    k1 = log p - log q (unbiased, can be negative per token; the N+/TRL default).
    k3 = (q/p - 1) - log(q/p) (unbiased, always >= 0, lower variance; http://joschu.net/blog/kl-approx.html).
    """
    logr = ref_logprobs - logprobs  # log(q/p), (B, T)
    if estimator == "k1":
        return -logr
    if estimator == "k3":
        return torch.expm1(logr) - logr
    raise ValueError(f"unknown KL estimator {estimator!r}; use 'k1' or 'k3'")


def last_true_indices(mask: torch.Tensor) -> torch.Tensor:
    """Index of the last True in each row: (B, T) -> (B,). Raises if a row has no True."""
    if not mask.any(dim=-1).all():
        raise ValueError("every row needs at least one real token; got an empty response mask row")
    return mask.size(-1) - 1 - first_true_indices(mask.bool().flip(-1))


def compute_rewards(
    scores: torch.Tensor,
    logprobs: torch.Tensor,
    ref_logprobs: torch.Tensor,
    mask: torch.Tensor,
    kl_coef: float,
    estimator: str = "k1",
) -> tuple[torch.Tensor, torch.Tensor]:
    """Per-token rewards = -kl_coef * KL_t on every real token, plus the sequence score on the last one.

    scores (B,), logprobs/ref_logprobs/mask (B, T) -> (rewards (B, T), kl (B, T)); both are 0 where
    mask is False. The score goes *on* the last real response token (N+ reference), not one past it
    as in TRL (trl#3750): with gamma=1 the returns are the same, but putting it on a real token means
    the token that earned it also gets it, and no value is bootstrapped from a padding position.
    """
    mask = mask.bool()
    kl = torch.where(mask, kl_penalty(logprobs, ref_logprobs, estimator), 0.0)  # (B, T)
    rewards = -kl_coef * kl  # the "non-score reward", (B, T)
    last = last_true_indices(mask)  # (B,)
    rewards[torch.arange(rewards.size(0), device=rewards.device), last] += scores
    return rewards, kl


def compute_gae(
    rewards: torch.Tensor,
    values: torch.Tensor,
    mask: torch.Tensor,
    gamma: float = 1.0,
    lam: float = 0.95,
) -> tuple[torch.Tensor, torch.Tensor]:
    """Generalized advantage estimation (Schulman et al. 2015) over right-padded responses.

    delta_t = r_t + gamma * V_{t+1} - V_t and A_t = delta_t + gamma * lam * A_{t+1}, where V and r are
    zero after the last real token, so the episode ends there (no bootstrap from padding).
    Returns (advantages, returns) of shape (B, T), with returns = A + V; both are 0 on padding.
    The mask must be right-padded (True then False in each row).
    """
    mask = mask.bool()
    if (mask[:, 1:] & ~mask[:, :-1]).any():
        raise ValueError("compute_gae expects right-padded masks (a True prefix in each row)")
    values = torch.where(mask, values, 0.0)
    rewards = torch.where(mask, rewards, 0.0)
    T = rewards.size(1)
    lastgaelam = torch.zeros_like(rewards[:, 0])  # (B,)
    advantages_reversed = []
    for t in reversed(range(T)):
        nextvalues = values[:, t + 1] if t < T - 1 else torch.zeros_like(lastgaelam)
        delta = rewards[:, t] + gamma * nextvalues - values[:, t]
        lastgaelam = delta + gamma * lam * lastgaelam
        advantages_reversed.append(lastgaelam)
    advantages = torch.stack(advantages_reversed[::-1], dim=1)  # (B, T)
    returns = advantages + values
    return advantages, returns


def policy_loss(
    new_logprobs: torch.Tensor,
    old_logprobs: torch.Tensor,
    advantages: torch.Tensor,
    mask: torch.Tensor,
    cliprange: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """PPO clipped surrogate loss, averaged over real tokens.

    loss = mean(max(-A * ratio, -A * clip(ratio, 1 - eps, 1 + eps))), ratio = exp(new - old).
    Stats (detached scalars): clipfrac = share of tokens where the clipped term was the larger one,
    approxkl = 0.5 * mean((new - old)^2) (the k2 estimate TRL logs), ratio and ratio_var.
    """
    logratio = new_logprobs - old_logprobs  # (B, T)
    ratio = torch.exp(logratio)
    pg_losses = -advantages * ratio
    pg_losses2 = -advantages * torch.clamp(ratio, 1.0 - cliprange, 1.0 + cliprange)
    loss = masked_mean(torch.max(pg_losses, pg_losses2), mask)
    with torch.no_grad():
        stats = {
            "clipfrac": masked_mean((pg_losses2 > pg_losses).float(), mask),
            "approxkl": 0.5 * masked_mean(logratio**2, mask),
            "ratio": masked_mean(ratio, mask),
            "ratio_var": masked_var(ratio, mask, unbiased=False),
        }
    return loss, stats


def value_loss(
    new_values: torch.Tensor,
    old_values: torch.Tensor,
    returns: torch.Tensor,
    mask: torch.Tensor,
    cliprange_value: float,
) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    """Clipped value loss (baselines ppo2 / N+): 0.5 * mean(max((V - R)^2, (V_clipped - R)^2)).

    V_clipped = V_old + clip(V - V_old, -eps_v, eps_v). Stats: clipfrac = share of tokens where the
    clipped error was the larger one.
    """
    vpredclipped = old_values + torch.clamp(new_values - old_values, -cliprange_value, cliprange_value)
    vf_losses1 = (new_values - returns) ** 2
    vf_losses2 = (vpredclipped - returns) ** 2
    loss = 0.5 * masked_mean(torch.max(vf_losses1, vf_losses2), mask)
    with torch.no_grad():
        stats = {"clipfrac": masked_mean((vf_losses2 > vf_losses1).float(), mask)}
    return loss, stats


class FixedKLController:
    """Constant KL coefficient (the TRL/N+ default, kl_coef = 0.05)."""

    def __init__(self, kl_coef: float):
        self.value = kl_coef

    def update(self, current_kl: float, n_steps: int) -> None:
        pass

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]


class AdaptiveKLController:
    """Proportional KL controller of Ziegler et al. 2019 (lm-human-preferences).

    After each batch: value *= 1 + clip(KL / target - 1, -0.2, 0.2) * n_steps / horizon, so the
    coefficient drifts towards keeping the per-sequence KL near `target` over ~`horizon` episodes.
    OpenAI used init 0.15, target 6, horizon 10000.
    """

    def __init__(self, init_kl_coef: float, target: float, horizon: int):
        self.value = init_kl_coef
        self.target = target
        self.horizon = horizon

    def update(self, current_kl: float, n_steps: int) -> None:
        proportional_error = min(max(current_kl / self.target - 1, -0.2), 0.2)
        self.value *= 1 + proportional_error * n_steps / self.horizon

    def state_dict(self) -> dict:
        return {"value": self.value}

    def load_state_dict(self, state: dict) -> None:
        self.value = state["value"]
