"""The oracle win rate: a scripted preference (no noise) judges fresh samples of two policies.

Used by the learning benchmark and its CI-sized test to show that a trained version beats the base
on prompts it never trained on. Each held-out prompt gets one sample from each policy; the preference
scores (prompt, new, base) and a positive score is a win, a negative one a loss, zero a tie.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from trainer.generate import LoadedPolicy, SamplingParams, generate, load_policy


@dataclass(frozen=True)
class OracleResult:
    wins: int
    losses: int
    ties: int

    @property
    def win_rate(self) -> float | None:
        """wins / (wins + losses); the tie rate is reported beside it."""
        decided = self.wins + self.losses
        return self.wins / decided if decided else None

    @property
    def tie_rate(self) -> float:
        total = self.wins + self.losses + self.ties
        return self.ties / total if total else 0.0


def sample_texts(
    policy: LoadedPolicy, prompts: list[str], params: SamplingParams, seed: int, batch_size: int = 64
) -> list[str]:
    texts = []
    for start in range(0, len(prompts), batch_size):
        chunk = [[{"role": "user", "content": p}] for p in prompts[start : start + batch_size]]
        texts += [s[0].text for s in generate(policy, chunk, n_per_prompt=1, params=params, seed=seed + start)]
    return texts


def oracle_win_rate(
    policy_dir: str,
    base_dir: str,
    prompts: list[str],
    preference: Callable[[str, str, str], float],
    params: SamplingParams,
    seed: int = 0,
) -> OracleResult:
    new = sample_texts(load_policy(policy_dir), prompts, params, seed)
    base = sample_texts(load_policy(base_dir), prompts, params, seed)
    scores = [preference(p, n, b) for p, n, b in zip(prompts, new, base, strict=True)]
    return OracleResult(
        wins=sum(s > 0 for s in scores), losses=sum(s < 0 for s in scores), ties=sum(s == 0 for s in scores)
    )
