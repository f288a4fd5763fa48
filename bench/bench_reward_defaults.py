"""Reward-model held-out accuracy by training setting, on a first round's worth of simulated pairs.

The round defaults (trainer/defaults.py) choose the reward model's epochs, batch and learning rate; this
measures the choice where it matters most, a first round of ~400 judgments. From the embedded policy (a
bootstrapped data directory), for each of --seeds draws of data:
  1. pairs: two samples of the base policy per prompt (the sampler's temperature 1.0, 64 tokens) on 80 %
     of the demo prompts, judged by a scripted preference with 10 % random answers, ties dropped, as the
     benchmark's annotators do (--judgments of them);
  2. each setting trains a reward model on those pairs (trainer/reward.py, as a round does);
  3. accuracy on noise-free pairs from the other 20 % of prompts (--eval-judgments of them, ties dropped):
     what the reward model knows, without the label noise a round's held-out accuracy carries.

    .venv/bin/python bench/bench_reward_defaults.py --base-dir DATA_DIR --preference on_topic --seeds 3
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from trainer.contract import RewardArgs  # noqa: E402
from trainer.embedded.judge import PREFERENCES  # noqa: E402
from trainer.embedded.task import demo_prompts  # noqa: E402
from trainer.generate import SamplingParams, generate, load_policy  # noqa: E402
from trainer.reward import train_reward_model  # noqa: E402

NO_EARLY_STOP = {"validation_fraction": 0.0}
SETTINGS = {  # name -> RewardArgs fields; the rule derives lr 1e-3, batch 8 and 2 epochs for such a round
    "1 epoch": {"learning_rate": 1e-3, "batch_size": 8, "num_epochs": 1, **NO_EARLY_STOP},
    "2 epochs": {"learning_rate": 1e-3, "batch_size": 8, "num_epochs": 2, **NO_EARLY_STOP},
    "4 epochs": {"learning_rate": 1e-3, "batch_size": 8, "num_epochs": 4, **NO_EARLY_STOP},
    "2 epochs + early stopping": {"learning_rate": 1e-3, "batch_size": 8, "num_epochs": 2},
    "4 epochs + early stopping": {"learning_rate": 1e-3, "batch_size": 8, "num_epochs": 4},
}


def judged_pairs(policy, prompts: list[str], preference, n: int, seed: int, noise: float) -> list[dict]:
    """n judgments of two fresh samples each; the strict ones as reward-model pairs."""
    rng = random.Random(seed)
    asked = [rng.choice(prompts) for _ in range(n)]
    params = SamplingParams(temperature=1.0, top_p=1.0, max_new_tokens=64)
    pairs = []
    for start in range(0, n, 64):
        chunk = asked[start : start + 64]
        messages = [[{"role": "user", "content": p}] for p in chunk]
        samples = generate(policy, messages, n_per_prompt=2, params=params, seed=seed * 1000 + start)
        for prompt, (a, b) in zip(chunk, samples, strict=True):
            score = preference(prompt, a.text, b.text)
            if rng.random() < noise:
                score = rng.choice((-1.0, 1.0))
            if abs(score) < 0.05:  # the scripted annotators' tie margin
                continue
            chosen, rejected = (a.text, b.text) if score > 0 else (b.text, a.text)
            pairs.append({"prompt": [{"role": "user", "content": prompt}], "chosen": chosen, "rejected": rejected})
    return pairs


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--base-dir", type=Path, required=True, help="a bootstrapped data directory")
    parser.add_argument("--preference", default="on_topic", choices=sorted(PREFERENCES))
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--judgments", type=int, default=320, help="training judgments (80 %% of a 400 round)")
    parser.add_argument("--eval-judgments", type=int, default=3000)
    parser.add_argument("--settings", default=",".join(SETTINGS), help="comma-separated names of SETTINGS to run")
    args = parser.parse_args()
    chosen = args.settings.split(",")
    if unknown := set(chosen) - set(SETTINGS):
        parser.error(f"unknown settings {sorted(unknown)}: choose from {list(SETTINGS)}")

    policy_dir = str(args.base_dir / "registry" / "policy" / "v0001")
    policy, preference = load_policy(policy_dir), PREFERENCES[args.preference]
    prompts = demo_prompts(200)
    random.Random(0).shuffle(prompts)
    train_prompts, eval_prompts = prompts[:160], prompts[160:]
    evals = judged_pairs(policy, eval_prompts, preference, args.eval_judgments, seed=999, noise=0.0)
    print(f"{len(evals)} noise-free held-out pairs", flush=True)
    accuracy: dict[str, list[float]] = {name: [] for name in chosen}
    for seed in range(args.seeds):
        train = judged_pairs(policy, train_prompts, preference, args.judgments, seed=seed, noise=0.1)
        for name in chosen:
            fields = SETTINGS[name]
            with tempfile.TemporaryDirectory() as out:
                started = time.perf_counter()
                result = train_reward_model(RewardArgs(seed=seed, **fields), policy_dir, train, evals, out)
            accuracy[name].append(result["rm/eval/accuracy"])
            print(f"seed {seed}: {len(train)} pairs, {name}: {accuracy[name][-1]:.3f} "
                  f"({time.perf_counter() - started:.0f} s)", flush=True)  # fmt: skip
    print("\n| setting | noise-free held-out accuracy, mean | per seed |\n|---|---|---|")
    for name, values in accuracy.items():
        print(f"| {name} | {statistics.fmean(values):.3f} | {', '.join(f'{v:.3f}' for v in values)} |")
    print(json.dumps(accuracy))


if __name__ == "__main__":
    main()
