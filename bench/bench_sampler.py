"""Sampler benchmarks, in one run:

1. bootstrap: `prefloop bootstrap` from an empty data directory until the embedded policy is active,
   then `prefloop sampler --once` until the first pair is stored (both as their own processes);
2. refill: the pool refilled from empty to the low-water mark with the default settings
   (comparisons per minute, generated tokens per second);
3. overhead: the sampler's generated tokens/s against plain `model.generate` on the same model, the same
   batch (the same prompts, rendered and left-padded identically), the same seed and sampling settings,
   so both produce the same tokens (checked). Two ways: (a) in one cycle, the time inside
   model.generate against the whole cycle (the rest is the sampler's overhead, measured under the same
   load); (b) separate paired runs, alternating, by wall time and by process CPU time. Medians.

    .venv/bin/python bench/bench_sampler.py --workdir /tmp/prefloop-bench [--preset default] [--repeats 10]

The workdir is reused: with --skip-bootstrap an existing data directory is measured again.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, select, update  # noqa: E402

from app.comparisons.models import Comparison, ComparisonStatus, Completion  # noqa: E402
from app.core.config import Settings  # noqa: E402
from app.core.db import Database  # noqa: E402
from app.sampler import service  # noqa: E402
from app.sampler.worker import SamplerWorker  # noqa: E402


def prefloop(data_dir: Path, *args: str, **env: str) -> float:
    started = time.perf_counter()
    environment = {
        **os.environ,
        "PREFLOOP_DATA_DIR": str(data_dir),
        "PREFLOOP_DATABASE_URL": "",
        "PYTHONPATH": str(ROOT),
        **env,
    }
    subprocess.run(
        [sys.executable, "-c", "from app.cli import main; main()", *args], cwd=ROOT, env=environment, check=True
    )
    return time.perf_counter() - started


def bench_bootstrap(data_dir: Path, preset: str) -> dict:
    bootstrap_s = prefloop(data_dir, "bootstrap", "--preset", preset)
    first_pair_s = prefloop(
        data_dir, "sampler", "--once", PREFLOOP_SAMPLER_LOW_WATER="1", PREFLOOP_SAMPLER_BATCH_PROMPTS="1"
    )
    return {
        "bootstrap_s": bootstrap_s,
        "first_pair_s": first_pair_s,
        "bootstrap_to_first_pair_s": bootstrap_s + first_pair_s,
    }


def drain(db: Database) -> None:
    """Annotators 'finish' every ready pair, so the next cycle starts from an empty pool."""
    with db.session() as session:
        session.execute(
            update(Comparison)
            .where(Comparison.status == ComparisonStatus.ready)
            .values(status=ComparisonStatus.completed)
        )


def stored_tokens(db: Database, after_id: int) -> int:
    with db.session() as session:
        return session.scalar(select(func.sum(Completion.token_count)).where(Completion.id > after_id)) or 0


def max_completion_id(db: Database) -> int:
    with db.session() as session:
        return session.scalar(select(func.max(Completion.id))) or 0


def timed_cycle(worker: SamplerWorker, db: Database) -> tuple[int, int, float, float]:
    """One refill from an empty pool: (comparisons, generated tokens, wall seconds, CPU seconds)."""
    drain(db)
    before = max_completion_id(db)
    wall, cpu = time.perf_counter(), time.process_time()
    created = worker.run_once()
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    return created, stored_tokens(db, before), wall, cpu


def bench_refill(settings: Settings, db: Database) -> dict:
    worker = SamplerWorker(settings, db)
    worker.sync_version()  # load the model outside the timing, as a running sampler has it loaded
    timed_cycle(worker, db)  # warm-up
    created, tokens, seconds, cpu = timed_cycle(worker, db)
    return {
        "low_water": settings.SAMPLER_LOW_WATER,
        "batch_prompts": settings.SAMPLER_BATCH_PROMPTS,
        "max_new_tokens": settings.SAMPLER_MAX_NEW_TOKENS,
        "comparisons": created,
        "seconds": seconds,
        "cpu_seconds": cpu,
        "comparisons_per_min": created / seconds * 60,
        "tokens_per_s": tokens / seconds,
    }


def plain_generate(policy, prompts: list[list[dict]], params, seed: int) -> tuple[int, float, float]:
    """What the sampler generates, done by hand: same rows, padding, config and seed;
    (tokens, wall seconds, CPU seconds)."""
    import torch
    from transformers import GenerationConfig

    from trainer.models import render_prompt_ids

    wall, cpu = time.perf_counter(), time.process_time()
    ids = [render_prompt_ids(policy.tokenizer, m) for m in prompts for _ in range(2)]
    batch = policy.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt")
    config = GenerationConfig(
        do_sample=True,
        temperature=params.temperature,
        top_p=params.top_p,
        top_k=0,
        max_new_tokens=params.max_new_tokens,
        eos_token_id=sorted(policy.eos_ids),
        pad_token_id=policy.tokenizer.pad_token_id,
    )
    torch.manual_seed(seed)
    with torch.inference_mode():
        output = policy.model.generate(**batch, generation_config=config)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    new = output[:, batch["input_ids"].shape[1] :]
    tokens = int((new != policy.tokenizer.pad_token_id).sum())  # pad != eos, so this counts the eos too
    return tokens, wall, cpu


def bench_overhead(settings: Settings, db: Database, repeats: int) -> dict:
    """Paired runs on identical work; the ratio is sampler tokens/s over plain tokens/s per pair (the
    same tokens, so plain time over sampler time), median over the pairs, by wall and by CPU time."""
    from trainer.generate import SamplingParams

    batch = settings.SAMPLER_BATCH_PROMPTS
    one_batch = settings.model_copy(update={"SAMPLER_LOW_WATER": batch, "SAMPLER_CROSS_VERSION_FRACTION": 0.0})
    worker = SamplerWorker(one_batch, db)
    worker.sync_version()
    policy = worker._loaded[worker.serving.id]
    # Time model.generate inside the sampler's own cycle too: the rest of the cycle is its overhead,
    # measured in the same run and so under the same load.
    in_generate = []
    real_generate = policy.model.generate

    def timed_generate(*args, **kwargs):
        started = time.perf_counter()
        try:
            return real_generate(*args, **kwargs)
        finally:
            in_generate.append(time.perf_counter() - started)

    policy.model.generate = timed_generate
    params = SamplingParams(settings.SAMPLER_TEMPERATURE, settings.SAMPLER_TOP_P, settings.SAMPLER_MAX_NEW_TOKENS)
    runs = []
    timed_cycle(worker, db)  # warm-up
    for repeat in range(repeats):
        drain(db)
        with db.session() as session:  # the prompts and seed the sampler is about to use
            prompts = [p.messages for p in service.prompts_by_need(db=session, limit=batch)]
            seed = service.next_seed(db=session, base_seed=settings.SAMPLER_SEED)
        if repeat % 2:  # alternate which goes first, so neither always meets a warm or cold machine
            in_generate.clear()
            created, tokens, wall, cpu = timed_cycle(worker, db)
            generate_wall = sum(in_generate)
            plain_tokens, plain_wall, plain_cpu = plain_generate(policy, prompts, params, seed)
        else:
            plain_tokens, plain_wall, plain_cpu = plain_generate(policy, prompts, params, seed)
            in_generate.clear()
            created, tokens, wall, cpu = timed_cycle(worker, db)
            generate_wall = sum(in_generate)
        assert created == batch and tokens == plain_tokens, (created, tokens, plain_tokens)
        runs.append(
            {
                "tokens": tokens,
                "sampler_wall": wall,
                "plain_wall": plain_wall,
                "sampler_cpu": cpu,
                "plain_cpu": plain_cpu,
                "generate_wall_in_cycle": generate_wall,
            }
        )
    median = statistics.median
    return {
        "rows": 2 * batch,
        "max_new_tokens": params.max_new_tokens,
        "pairs": repeats,
        "ratio_in_cycle": median(r["generate_wall_in_cycle"] / r["sampler_wall"] for r in runs),
        "overhead_s_in_cycle": median(r["sampler_wall"] - r["generate_wall_in_cycle"] for r in runs),
        "ratio_wall": median(r["plain_wall"] / r["sampler_wall"] for r in runs),
        "ratio_cpu": median(r["plain_cpu"] / r["sampler_cpu"] for r in runs),
        "sampler_tokens_per_s": median(r["tokens"] / r["sampler_wall"] for r in runs),
        "plain_tokens_per_s": median(r["tokens"] / r["plain_wall"] for r in runs),
        "sampler_tokens_per_cpu_s": median(r["tokens"] / r["sampler_cpu"] for r in runs),
        "plain_tokens_per_cpu_s": median(r["tokens"] / r["plain_cpu"] for r in runs),
        "runs": runs,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--preset", default="default")
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--skip-bootstrap", action="store_true")
    args = parser.parse_args()

    data_dir = args.workdir / "data"
    results: dict = {"load_average_before": os.getloadavg(), "cpus": len(os.sched_getaffinity(0))}
    if not args.skip_bootstrap:
        results["bootstrap"] = bench_bootstrap(data_dir, args.preset)
    settings = Settings(DATA_DIR=data_dir, _env_file=None)
    db = Database(settings.database_url)
    results["refill"] = bench_refill(settings, db)
    results["overhead"] = bench_overhead(settings, db, args.repeats)
    results["load_average_after"] = os.getloadavg()
    db.dispose()
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
