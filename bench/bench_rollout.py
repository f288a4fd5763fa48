"""How often the human-gated rollout's rule decides, and decides right, by simulation.

The rule (app/rollout/rule.py) runs after every rollout judgment; each look is another chance for noise to
cross a bound, so the interval's confidence level sets the chance of a wrong verdict. Each simulated
rollout draws judgments of a candidate whose true chance of being preferred to its parent is p (a
decided win with probability p, else a loss) and applies the rule, with the app's own Bradley-Terry fit,
after each one, until it decides or reaches the cap of judgments. Reported per confidence level and p:
the share of rollouts activated, rejected and inconclusive, and the median number of judgments used.

    python bench/bench_rollout.py --confidence 0.95,0.99,0.995 --p 0.5,0.6,0.65,0.4 --cap 300 --rollouts 300

p = 0.5 is indifferent annotators (a coin flip): every verdict there is wrong.
"""

from __future__ import annotations

import argparse
import statistics
import time

import numpy as np

from app.rollout import rule

CANDIDATE, PARENT = 1, 0


def simulate(p: float, *, confidence: float, cap: int, rollouts: int, seed: int) -> dict:
    """Shares of each ending over `rollouts` simulated rollouts, and the median judgments used."""
    rng = np.random.default_rng(seed)
    endings = dict.fromkeys(("activated", "rejected", "inconclusive"), 0)
    used = []
    for _ in range(rollouts):
        battles: list = []
        for won in rng.random(cap) < p:
            battles.append((CANDIDATE, PARENT, 1.0 if won else 0.0))
            found = rule.evidence(battles, candidate=CANDIDATE, parent=PARENT, confidence=confidence)
            decided = rule.verdict(found, confidence=confidence, max_battles=cap, past_deadline=False)
            if decided is not None:
                endings[decided[0].value] += 1
                break
        used.append(len(battles))
    return {k: v / rollouts for k, v in endings.items()} | {"median_judgments": statistics.median(used)}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--confidence", default="0.95,0.99,0.995")
    parser.add_argument("--p", default="0.5,0.6,0.65,0.4", help="the candidate's true chance of being preferred")
    parser.add_argument("--cap", type=int, default=300, help="judgments after which a rollout is inconclusive")
    parser.add_argument("--rollouts", type=int, default=300)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args()
    print("| confidence | p | activated | rejected | inconclusive | median judgments |")
    print("|---|---|---|---|---|---|")
    started = time.perf_counter()
    for confidence in (float(c) for c in args.confidence.split(",")):
        for p in (float(x) for x in args.p.split(",")):
            row = simulate(p, confidence=confidence, cap=args.cap, rollouts=args.rollouts, seed=args.seed)
            print(
                f"| {confidence:g} | {p:g} | {row['activated']:.3f} | {row['rejected']:.3f} | "
                f"{row['inconclusive']:.3f} | {row['median_judgments']:g} |",
                flush=True,
            )
    print(f"\n{time.perf_counter() - started:.0f} s")


if __name__ == "__main__":
    main()
