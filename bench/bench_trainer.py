"""Trainer benchmark: prefloop's reward model and PPO against TRL's, side by side, in one run.

    .venv/bin/python bench/bench_trainer.py [--threads 1] [--repeats 3] [--precision fp32|bf16|trl-defaults]

(a) reward model: pairs/s of one training epoch (batch 16, max_len 128) and held-out accuracy,
    trainer.reward.train_reward_model against trl.RewardTrainer (use_cpu=True);
(b) PPO: generated tokens/s of the whole update loop (rollout + scoring + optimisation), 16 episodes x 32
    tokens per update, 16 updates, trainer.ppo.train_ppo against trl.experimental.ppo.PPOTrainer with the
    same hyperparameters, plus prefloop's own time breakdown.

Both frameworks get the same model, data and thread count. The model is the one of the TRL anchors
(GPT-2 style from config: 4 layers, 256 dims, 4 heads; a byte-level BPE tokenizer of 2,048 tokens
trained here, pad != eos; reward and value heads are GPT2ForSequenceClassification with num_labels=1),
built offline. Preference pairs come from the embedded task (trainer/embedded/task.py), judged by its
scripted overall preference, so the reward model has a real signal to learn.

Every measurement runs in its own subprocess (TRL's in its own virtual environment, created on first use
with torch==2.13.0, trl==1.12.0 -- the last release that ships trl.experimental.ppo -- and the
transformers version of this environment). The four jobs are interleaved, alternating which framework
goes first, and the table reports medians. Timings cover the training loop only (model loading, data
preparation and the held-out evaluation are outside the timed region for both).

Precision (`--precision`): fp32 (the default) runs both frameworks in fp32, TRL without gradient
checkpointing, its fastest setting on a CPU without native bf16 (where its bf16 autocast made a
RewardTrainer step 3-4x slower); bf16 runs both under bf16 autocast (prefloop precision="bf16", TRL
bf16=True, again without checkpointing), worth it on CPUs with native bf16 (AVX512-BF16 or AMX; the report
says whether this one has it); trl-defaults compares TRL's own configuration (bf16=True,
gradient_checkpointing=True) with prefloop's (fp32 on CPU).
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
DEFAULT_TRL_VENV = ROOT / "bench" / ".venv-trl"
TRL_VERSION = "1.12.0"  # trl.experimental.ppo is gone from 1.13.0
TORCH_VERSION = "2.13.0"

# the model and workload of the TRL anchors
N_LAYER, N_EMBD, N_HEAD, VOCAB, N_POSITIONS = 4, 256, 4, 2048, 256
RM_BATCH, RM_MAX_LEN = 16, 128
PPO_BATCH, PPO_RESPONSE, PPO_UPDATES = 16, 32, 16
# PPO hyperparameters given to both frameworks (TRL's PPOConfig defaults)
PPO_HPARAMS = {"learning_rate": 3e-6, "kl_coef": 0.05, "num_ppo_epochs": 4, "num_mini_batches": 1,
               "temperature": 0.7, "missing_eos_penalty": 1.0, "cliprange": 0.2, "cliprange_value": 0.2,
               "vf_coef": 0.1, "gamma": 1.0, "lam": 0.95}  # fmt: skip


# ---- the TRL environment -------------------------------------------------------------------------------


def ensure_trl_venv(venv: Path) -> Path:
    """The TRL venv's python, creating the venv first if it does not exist."""
    python = venv / "bin" / "python"
    if python.exists():
        return python
    from importlib.metadata import version

    transformers_version = version("transformers")
    print(f"creating {venv} (torch {TORCH_VERSION}, trl {TRL_VERSION}, transformers {transformers_version})")
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(python), "-m", "pip", "install", "-q"]
    subprocess.run([*pip, f"torch=={TORCH_VERSION}"], check=True)  # first: the CPU build, no CUDA wheels
    subprocess.run([*pip, f"trl=={TRL_VERSION}", f"transformers=={transformers_version}"], check=True)
    return python


# ---- data and models (built once per work directory, in this environment) ------------------------------


def preference_pairs(n_examples: int, seed: int) -> list[dict]:
    """Pairs of responses to the same prompt, ordered by the task's scripted overall preference; ties
    are left out. Examples are grouped by prompt text and paired in order of appearance."""
    from trainer.embedded import judge, task

    by_prompt: dict[str, list[str]] = {}
    for example in task.make_corpus(n_examples, seed=seed):
        by_prompt.setdefault(example.prompt, []).append(example.response)
    pairs = []
    for prompt, responses in by_prompt.items():
        for a, b in zip(responses[0::2], responses[1::2], strict=False):
            preference = judge.prefer_overall(prompt, a, b)
            if preference != 0:
                chosen, rejected = (a, b) if preference > 0 else (b, a)
                pairs.append({"prompt": [{"role": "user", "content": prompt}], "chosen": chosen,
                              "rejected": rejected})  # fmt: skip
    return pairs


def prepare(workdir: Path, n_train: int, n_eval: int) -> None:
    """Tokenizer, policy, reward model, pairs and PPO prompts under `workdir` (skipped when present)."""
    if (workdir / "ready").exists():
        return
    import random

    import torch
    from transformers import GenerationConfig, GPT2Config, GPT2ForSequenceClassification, GPT2LMHeadModel

    from trainer.embedded import build, task

    workdir.mkdir(parents=True, exist_ok=True)
    pairs = preference_pairs(n_examples=8 * (n_train + n_eval), seed=0)
    random.Random(0).shuffle(pairs)
    if len(pairs) < n_train + n_eval:
        raise SystemExit(f"only {len(pairs)} pairs; lower --pairs")
    # held-out pairs never share a prompt with the training pairs
    eval_prompts = {json.dumps(p["prompt"]) for p in pairs[:n_eval]}
    held_out = pairs[:n_eval]
    train = [p for p in pairs[n_eval:] if json.dumps(p["prompt"]) not in eval_prompts][:n_train]
    texts = [t for p in pairs[:4000] for t in (p["prompt"][0]["content"], p["chosen"], p["rejected"])]
    tokenizer = build.train_tokenizer(texts, VOCAB, N_POSITIONS)

    torch.manual_seed(0)
    config = GPT2Config(vocab_size=len(tokenizer), n_positions=N_POSITIONS, n_embd=N_EMBD, n_layer=N_LAYER,
                        n_head=N_HEAD, bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
                        pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    policy = GPT2LMHeadModel(config)
    policy.generation_config = GenerationConfig(eos_token_id=tokenizer.eos_token_id,
                                                pad_token_id=tokenizer.pad_token_id)  # fmt: skip
    policy.save_pretrained(workdir / "policy")
    tokenizer.save_pretrained(workdir / "policy")
    config.num_labels = 1
    reward = GPT2ForSequenceClassification(config)  # the PPO reward and value model (untrained: speed only)
    reward.save_pretrained(workdir / "reward")
    tokenizer.save_pretrained(workdir / "reward")

    for name, rows in (("pairs_train", train), ("pairs_eval", held_out)):
        (workdir / f"{name}.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    prompts = task.make_prompts(PPO_BATCH * PPO_UPDATES, seed=0, split="train")
    (workdir / "ppo_prompts.json").write_text(json.dumps(prompts))
    (workdir / "ready").write_text("")


def _read_jsonl(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


# ---- workers: one measurement each, in a fresh process -------------------------------------------------


def worker_prefloop_rm(workdir: Path, out: Path, threads: int, precision: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from trainer import metrics as M
    from trainer.contract import RewardArgs
    from trainer.reward import train_reward_model

    args = RewardArgs(batch_size=RM_BATCH, num_epochs=1, max_length=RM_MAX_LEN, num_threads=threads,
                      device="cpu", precision=prefloop_precision(precision), seed=0)  # fmt: skip
    result = train_reward_model(args, str(workdir / "policy"), _read_jsonl(workdir / "pairs_train.jsonl"),
                                _read_jsonl(workdir / "pairs_eval.jsonl"), str(out))  # fmt: skip
    return {"pairs": result[M.RM_NUM_PAIRS], "seconds": result["train_seconds"],
            "pairs_per_s": result[M.RM_PAIRS_PER_SECOND], "accuracy": result[M.RM_EVAL_ACCURACY]}  # fmt: skip


# --precision: what each framework runs at. fp32 and bf16 give both the same precision (bf16 = autocast, as
# TRL's bf16=True) and TRL no gradient checkpointing (it only saves memory); trl-defaults compares TRL's
# own configuration (bf16 autocast + gradient checkpointing) with prefloop's (fp32 on CPU).
PRECISIONS = {"fp32": ("fp32", {"bf16": False, "gradient_checkpointing": False}),
              "bf16": ("bf16", {"bf16": True, "gradient_checkpointing": False}),
              "trl-defaults": ("auto", {})}  # fmt: skip


def prefloop_precision(precision: str) -> str:
    return PRECISIONS[precision][0]


def trl_precision(precision: str) -> dict:
    """TrainingArguments overrides for TRL."""
    return PRECISIONS[precision][1]


def worker_trl_rm(workdir: Path, out: Path, threads: int, precision: str) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForSequenceClassification, AutoTokenizer
    from trl import RewardConfig, RewardTrainer

    torch.set_num_threads(threads)

    def conversational(rows: list[dict]) -> Dataset:
        def turn(text: str) -> list[dict]:
            return [{"role": "assistant", "content": text}]

        return Dataset.from_list([{"prompt": r["prompt"], "chosen": turn(r["chosen"]),
                                   "rejected": turn(r["rejected"])} for r in rows])  # fmt: skip

    tokenizer = AutoTokenizer.from_pretrained(workdir / "policy")
    torch.manual_seed(0)
    model = AutoModelForSequenceClassification.from_pretrained(workdir / "policy", num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    config = RewardConfig(output_dir=str(out), per_device_train_batch_size=RM_BATCH, num_train_epochs=1,
                          max_length=RM_MAX_LEN, use_cpu=True, report_to=[], save_strategy="no",
                          per_device_eval_batch_size=64, disable_tqdm=True, seed=0,
                          **trl_precision(precision))  # fmt: skip
    trainer = RewardTrainer(model=model, args=config, processing_class=tokenizer,
                            train_dataset=conversational(_read_jsonl(workdir / "pairs_train.jsonl")),
                            eval_dataset=conversational(_read_jsonl(workdir / "pairs_eval.jsonl")))  # fmt: skip
    seconds = trainer.train().metrics["train_runtime"]
    pairs = len(trainer.train_dataset)
    accuracy = trainer.evaluate()["eval_accuracy"]
    return {"pairs": pairs, "seconds": seconds, "pairs_per_s": pairs / seconds, "accuracy": accuracy,
            "bf16": config.bf16, "gradient_checkpointing": config.gradient_checkpointing,
            "torch_threads": torch.get_num_threads()}  # fmt: skip


def worker_prefloop_ppo(workdir: Path, out: Path, threads: int, precision: str) -> dict:
    sys.path.insert(0, str(ROOT))
    from trainer import metrics as M
    from trainer.contract import PPOArgs
    from trainer.ppo import train_ppo

    prompts = [[{"role": "user", "content": p}] for p in json.loads((workdir / "ppo_prompts.json").read_text())]
    args = PPOArgs(total_episodes=PPO_BATCH * PPO_UPDATES, batch_size=PPO_BATCH, response_length=PPO_RESPONSE,
                   checkpoint_every=0, seed=0, num_threads=threads, device="cpu",
                   precision=prefloop_precision(precision), **PPO_HPARAMS)  # fmt: skip
    train_ppo(args, str(workdir / "policy"), str(workdir / "policy"), str(workdir / "reward"), prompts, str(out))
    rows = [row for row in M.read_metrics(str(out / "metrics.jsonl")) if M.TIME_UPDATE in row]
    seconds = sum(row[M.TIME_UPDATE] for row in rows)
    tokens = PPO_BATCH * PPO_UPDATES * PPO_RESPONSE

    def share(key: str) -> float:
        return sum(row[key] for row in rows) / seconds

    return {"seconds": seconds, "tokens_per_s": tokens / seconds, "updates": len(rows),
            "real_tokens": sum(row[M.TOKENS_PER_SECOND] * row[M.TIME_UPDATE] for row in rows),
            "generation": share(M.TIME_GENERATION), "scoring": share(M.TIME_SCORING),
            "optimization": share(M.TIME_OPTIMIZATION)}  # fmt: skip


def worker_trl_ppo(workdir: Path, out: Path, threads: int, precision: str) -> dict:
    import torch
    from datasets import Dataset
    from transformers import AutoModelForCausalLM, AutoModelForSequenceClassification, AutoTokenizer, TrainerCallback
    from trl.experimental.ppo import PPOConfig, PPOTrainer

    torch.set_num_threads(threads)

    class LoopTimer(TrainerCallback):
        """Wall time from the start of the update loop to the end of the last update."""

        def on_train_begin(self, *args, **kwargs):
            self.start, self.updates = time.perf_counter(), 0

        def on_step_end(self, *args, **kwargs):
            self.end, self.updates = time.perf_counter(), self.updates + 1

    tokenizer = AutoTokenizer.from_pretrained(workdir / "policy", padding_side="left")
    prompts = json.loads((workdir / "ppo_prompts.json").read_text())
    texts = [tokenizer.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                           add_generation_prompt=True) for p in prompts]  # fmt: skip
    dataset = Dataset.from_dict({"input_ids": tokenizer(texts, add_special_tokens=False)["input_ids"]})
    policy = AutoModelForCausalLM.from_pretrained(workdir / "policy")
    ref_policy = AutoModelForCausalLM.from_pretrained(workdir / "policy")
    reward_model = AutoModelForSequenceClassification.from_pretrained(workdir / "reward", num_labels=1)
    value_model = AutoModelForSequenceClassification.from_pretrained(workdir / "reward", num_labels=1)
    config = PPOConfig(output_dir=str(out), per_device_train_batch_size=PPO_BATCH, gradient_accumulation_steps=1,
                       total_episodes=PPO_BATCH * PPO_UPDATES, response_length=PPO_RESPONSE, stop_token="eos",
                       local_rollout_forward_batch_size=PPO_BATCH, num_sample_generations=0, use_cpu=True,
                       report_to=[], save_strategy="no", disable_tqdm=True, seed=0, **PPO_HPARAMS,
                       **trl_precision(precision))  # fmt: skip
    timer = LoopTimer()
    trainer = PPOTrainer(args=config, processing_class=tokenizer, model=policy, ref_model=ref_policy,
                         reward_model=reward_model, train_dataset=dataset, value_model=value_model,
                         callbacks=[timer])  # fmt: skip
    trainer.train()
    seconds = timer.end - timer.start
    return {"seconds": seconds, "tokens_per_s": PPO_BATCH * PPO_UPDATES * PPO_RESPONSE / seconds,
            "updates": timer.updates, "bf16": config.bf16, "gradient_checkpointing": config.gradient_checkpointing,
            "torch_threads": torch.get_num_threads()}  # fmt: skip


WORKERS = {"prefloop-rm": worker_prefloop_rm, "trl-rm": worker_trl_rm,
           "prefloop-ppo": worker_prefloop_ppo, "trl-ppo": worker_trl_ppo}  # fmt: skip


# ---- the driver ----------------------------------------------------------------------------------------


def run_job(job: str, python: Path, workdir: Path, threads: int, env_extra: dict[str, str], rep: int,
            precision: str) -> dict:  # fmt: skip
    out = workdir / "runs" / f"{job}-{rep}"
    subprocess.run(["rm", "-rf", str(out)], check=True)
    out.mkdir(parents=True)
    env = {**os.environ, "OMP_NUM_THREADS": str(threads), "MKL_NUM_THREADS": str(threads),
           "TOKENIZERS_PARALLELISM": "false", "HF_HUB_OFFLINE": "1", "HF_DATASETS_OFFLINE": "1",
           "TRL_EXPERIMENTAL_SILENCE": "1", **env_extra}  # fmt: skip
    command = [str(python), __file__, "--worker", job, "--workdir", str(workdir), "--out", str(out),
               "--threads", str(threads), "--precision", precision]  # fmt: skip
    proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    if proc.returncode != 0:
        raise SystemExit(f"{job} failed:\n{proc.stdout[-3000:]}\n{proc.stderr[-6000:]}")
    result = json.loads((out / "result.json").read_text())
    print(f"  {job} #{rep}: " + ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                                          for k, v in result.items()), flush=True)  # fmt: skip
    return result


def median(results: list[dict], key: str) -> float:
    return statistics.median(r[key] for r in results)


def report(results: dict[str, list[dict]], threads: int, env_extra: dict[str, str], precision: str) -> str:
    rm_p, rm_t = results.get("prefloop-rm"), results.get("trl-rm")
    ppo_p, ppo_t = results.get("prefloop-ppo"), results.get("trl-ppo")
    from trainer.models import cpu_has_native_bf16

    lines = [f"threads per process: {threads}; extra environment: {env_extra or 'none'}; precision: {precision} "
             f"(this CPU {'has' if cpu_has_native_bf16() else 'lacks'} native bf16); "
             f"medians of {len(next(iter(results.values())))}", "",
             "| measure | prefloop | TRL | prefloop / TRL |", "|---|---|---|---|"]  # fmt: skip
    if rm_p and rm_t:
        p, t = median(rm_p, "pairs_per_s"), median(rm_t, "pairs_per_s")
        lines.append(f"| RM training, pairs/s ({rm_p[0]['pairs']} pairs, 1 epoch, bs {RM_BATCH}, "
                     f"max_len {RM_MAX_LEN}) | {p:.1f} | {t:.1f} | {p / t:.2f}x |")  # fmt: skip
        p, t = median(rm_p, "accuracy"), median(rm_t, "accuracy")
        lines.append(f"| RM held-out accuracy | {p:.3f} | {t:.3f} | {p - t:+.3f} |")
    if ppo_p and ppo_t:
        p, t = median(ppo_p, "tokens_per_s"), median(ppo_t, "tokens_per_s")
        lines.append(f"| PPO generated tokens/s, whole update ({PPO_BATCH} x {PPO_RESPONSE} tokens, "
                     f"{PPO_UPDATES} updates) | {p:.0f} | {t:.0f} | {p / t:.2f}x |")  # fmt: skip
        p, t = median(ppo_p, "seconds") / PPO_UPDATES, median(ppo_t, "seconds") / PPO_UPDATES
        lines.append(f"| PPO seconds per update | {p:.2f} | {t:.2f} | {t / p:.2f}x faster |")
    if ppo_p:
        shares = {k: median(ppo_p, k) for k in ("generation", "scoring", "optimization")}
        lines += ["", "prefloop PPO breakdown (share of the update): "
                  + ", ".join(f"{k} {v:.0%}" for k, v in shares.items())]  # fmt: skip
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trl-venv", type=Path, default=DEFAULT_TRL_VENV, help="created when missing")
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/prefloop-bench-trainer"))
    parser.add_argument("--threads", type=int, default=1, help="torch threads for every process (both sides)")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--pairs", type=int, default=2000, help="training pairs (held-out: a fifth of it)")
    parser.add_argument("--only", choices=["rm", "ppo"], help="run one of the two benchmarks")
    parser.add_argument(
        "--omp-wait-policy",
        choices=["PASSIVE", "ACTIVE"],
        help="OMP_WAIT_POLICY for every process (default: the OpenMP runtime's own)",
    )
    parser.add_argument("--precision", choices=sorted(PRECISIONS), default="fp32",
                        help="fp32 / bf16: both frameworks at that precision (TRL without gradient checkpointing); "
                             "trl-defaults: TRL's own configuration against prefloop's")  # fmt: skip
    parser.add_argument("--worker", choices=sorted(WORKERS), help=argparse.SUPPRESS)
    parser.add_argument("--out", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.worker:  # one measurement, in this fresh process
        result = WORKERS[args.worker](args.workdir, args.out, args.threads, args.precision)
        (args.out / "result.json").write_text(json.dumps(result))
        return

    sys.path.insert(0, str(ROOT))
    trl_python = ensure_trl_venv(args.trl_venv)
    prepare(args.workdir, args.pairs, args.pairs // 5)
    env_extra = {"OMP_WAIT_POLICY": args.omp_wait_policy} if args.omp_wait_policy else {}
    benches = [args.only] if args.only else ["rm", "ppo"]
    results: dict[str, list[dict]] = {}
    for rep in range(args.repeats):
        for bench in benches:
            frameworks = ["prefloop", "trl"] if rep % 2 == 0 else ["trl", "prefloop"]  # alternate who goes first
            for framework in frameworks:
                job = f"{framework}-{bench}"
                python = Path(sys.executable) if framework == "prefloop" else trl_python
                result = run_job(job, python, args.workdir, args.threads, env_extra, rep, args.precision)
                results.setdefault(job, []).append(result)
    print()
    print("    " + " ".join([Path(sys.executable).name, *sys.argv]))
    print(report(results, args.threads, env_extra, args.precision))
    (args.workdir / "results.json").write_text(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
