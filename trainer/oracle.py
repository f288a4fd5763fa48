"""The oracle win rate: a scripted preference (no noise) judges fresh samples of two policies.

Used by the learning benchmark and its CI-sized test to show that a trained version beats the base
on prompts it never trained on. Each held-out prompt gets one sample from each policy; the preference
scores (prompt, new, base) and a positive score is a win, a negative one a loss, zero a tie.

The two policies draw with different seeds. With one seed ("paired"), wherever training left the policy
unchanged both sides produce the same text and tie, so the decisive win rate only counts the prompts
where the policy changed; the benchmark reports it beside, to compare with figures measured that way.
Beside the verdicts, each side's samples are described by the embedded task's qualities
(trainer/embedded/judge.py features), its evasion share and its length in words, so a win bought with
evasive or shorter answers shows.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from trainer.embedded.judge import features, is_evasive
from trainer.generate import LoadedPolicy, SamplingParams, generate, load_policy

BASE_SEED_OFFSET = 1_000_003  # the base's draws: a seed stream no policy's draws share


@dataclass(frozen=True)
class OracleResult:
    wins: int
    losses: int
    ties: int
    new: dict[str, float] = field(default_factory=dict)  # describe() of the new policy's samples
    base: dict[str, float] = field(default_factory=dict)

    @property
    def win_rate(self) -> float | None:
        """wins / (wins + losses); the tie rate is reported beside it."""
        decided = self.wins + self.losses
        return self.wins / decided if decided else None

    @property
    def win_rate_ties_half(self) -> float:
        """(wins + ties / 2) / all pairs: a tie counts as half a win."""
        total = self.wins + self.losses + self.ties
        return (self.wins + self.ties / 2) / total if total else 0.5

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
) -> tuple[OracleResult, OracleResult]:
    """(independent, paired): the new policy's samples judged against the base's drawn with their own
    seed, and against the base's drawn with the new policy's seed (ties wherever it did not change)."""
    new = sample_texts(load_policy(policy_dir), prompts, params, seed)
    base_policy = load_policy(base_dir)
    independent, paired = (
        _judge(prompts, new, sample_texts(base_policy, prompts, params, base_seed), preference)
        for base_seed in (seed + BASE_SEED_OFFSET, seed)
    )
    return independent, paired


def _judge(prompts: list[str], new: list[str], base: list[str], preference) -> OracleResult:
    scores = [preference(p, n, b) for p, n, b in zip(prompts, new, base, strict=True)]
    return OracleResult(
        wins=sum(s > 0 for s in scores),
        losses=sum(s < 0 for s in scores),
        ties=sum(s == 0 for s in scores),
        new=describe(prompts, new),
        base=describe(prompts, base),
    )


def describe(prompts: list[str], texts: list[str]) -> dict[str, float]:
    """Means over the samples: the task's qualities (0-1), the evasive share and the length in words."""
    rows = [features(p, t) | {"evasive": float(is_evasive(t)), "words": float(len(t.split()))}
            for p, t in zip(prompts, texts, strict=True)]  # fmt: skip
    return {key: sum(row[key] for row in rows) / len(rows) for key in rows[0]} if rows else {}
