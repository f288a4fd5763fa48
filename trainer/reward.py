"""Reward model training on pairwise preferences (Bradley-Terry), one file, one visible loop.

Data: pairs {"prompt": [chat messages], "chosen": str, "rejected": str, "margin": float}. Each side is
encoded as  chat_template(prompt, add_generation_prompt=True) + response tokens + EOS,  exactly the
token layout PPO later scores, and the reward is the `score` head read at that final EOS token.

References: TRL `trl/trainer/reward_trainer.py` (loss, margin, centering, metric names); Huang et al. 2024,
"The N+ Implementation Details of RLHF with PPO" (arXiv:2403.17031) and its code,
vwxyzjn/summarize_from_feedback_details `reward.py` (one epoch, score-head init, reward normalisation).
The arguments, with their defaults and help, are RewardArgs in trainer/contract.py.

Run it alone on a snapshot's pairs (the train split trains, the eval split measures held-out accuracy):

    python -m trainer.reward --pairs DATA_DIR/rounds/<id>/snapshot --policy MODEL_DIR --out OUT_DIR [--num-epochs 2 ...]

OUT_DIR then holds the reward model (model + tokenizer, the score mean/std in its config) and
metrics.jsonl; `python -m trainer.reward --help` lists every argument.
"""

import argparse
import collections
import itertools
import json
import logging
import math
import os
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from trainer import defaults
from trainer import metrics as M
from trainer.contract import (
    METRICS_FILE,
    PAIRS_FILE,
    RewardArgs,
    add_arguments,
    json_safe,
    parse_arguments,
    snapshot_file,
    snapshot_rows,
)
from trainer.defaults import RoundSizes, count_parameters
from trainer.models import (
    REWARD_MEAN_KEY,
    REWARD_STD_KEY,
    autocast,
    check_precision,
    configure_cpu,
    last_token_scores,
    load_scalar_model,
    load_tokenizer,
    max_positions,
    render_prompt_ids,
    resolve_device,
    scalar_forward,
    to_device,
)


def bradley_terry_loss(
    r_chosen: torch.Tensor,
    r_rejected: torch.Tensor,
    margin: torch.Tensor | None = None,
    center_rewards_coefficient: float | None = None,
) -> torch.Tensor:
    """-log sigmoid(r_c - r_r - margin), averaged, plus the optional centering term (TRL's loss)."""
    logits = r_chosen - r_rejected
    if margin is not None:
        logits = logits - margin
    loss = -F.logsigmoid(logits).mean()
    if center_rewards_coefficient:
        loss = loss + center_rewards_coefficient * torch.mean((r_chosen + r_rejected) ** 2)
    return loss


# ---- data: encoding, length-grouped batches, right-padded collation ----------------------------------


def encode_pairs(tokenizer, pairs: list[dict], max_length: int) -> tuple[list[tuple], int]:
    """Pairs -> [(chosen_ids, rejected_ids, margin)], dropping pairs with a side over max_length.

    Returns (encoded, num_dropped). Prompts are rendered once each (pairs share prompts) and responses
    tokenized in one batched call of the fast tokenizer.
    """
    prompt_cache: dict[str, list[int]] = {}

    def prompt_ids(messages) -> list[int]:
        key = repr(messages)
        if key not in prompt_cache:
            prompt_cache[key] = render_prompt_ids(tokenizer, messages)
        return prompt_cache[key]

    if not pairs:  # the fast tokenizer cannot batch an empty list
        return [], 0
    eos = tokenizer.eos_token_id
    chosen = tokenizer([p["chosen"] for p in pairs], add_special_tokens=False)["input_ids"]
    rejected = tokenizer([p["rejected"] for p in pairs], add_special_tokens=False)["input_ids"]
    encoded, dropped = [], 0
    for pair, c, r in zip(pairs, chosen, rejected, strict=True):
        prompt = prompt_ids(pair["prompt"])
        c_ids, r_ids = prompt + c + [eos], prompt + r + [eos]
        if max(len(c_ids), len(r_ids)) > max_length:
            dropped += 1
            continue
        encoded.append((c_ids, r_ids, float(pair.get("margin", 0.0))))
    return encoded, dropped


def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random, group: bool) -> list[list[int]]:
    """Shuffled batches of indices; with group=True each batch holds similar lengths (little padding)."""
    order = list(range(len(lengths)))
    rng.shuffle(order)
    if group:
        mega = batch_size * 50
        order = [i for s in range(0, len(order), mega) for i in sorted(order[s : s + mega], key=lambda j: -lengths[j])]
    batches = [order[s : s + batch_size] for s in range(0, len(order), batch_size)]
    rng.shuffle(batches)
    return batches


def collate(sequences: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Right-pad to the longest sequence: (input_ids (N, T), last_index (N,)).

    Right padding means no attention mask is needed (see models.scalar_forward) and the score is read
    at index len - 1, the EOS we appended.
    """
    T = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), T), pad_token_id, dtype=torch.long)
    for i, s in enumerate(sequences):
        input_ids[i, : len(s)] = torch.tensor(s)
    last_index = torch.tensor([len(s) - 1 for s in sequences])
    return input_ids, last_index


def score_sequences(model, sequences: list[list[int]], pad_token_id: int, precision: str) -> torch.Tensor:
    """RM score at the last token of each sequence, on the model's device (one batch, no grad
    bookkeeping by the caller); precision as RewardArgs.precision."""
    input_ids, last_index = collate(sequences, pad_token_id)
    input_ids, last_index = input_ids.to(model.device), last_index.to(model.device)
    with autocast(model.device, precision):
        return last_token_scores(scalar_forward(model, input_ids, None), last_index)


@torch.inference_mode()
def score_in_batches(model, sequences: list[list[int]], pad_token_id: int, batch_size: int,
                     precision: str = "auto") -> torch.Tensor:  # fmt: skip
    """Scores in input order (a CPU tensor), batching by length to avoid padding."""
    order = sorted(range(len(sequences)), key=lambda i: len(sequences[i]))
    scores = torch.empty(len(sequences))
    for s in range(0, len(order), batch_size):
        idx = order[s : s + batch_size]
        scores[idx] = score_sequences(model, [sequences[i] for i in idx], pad_token_id, precision).cpu()
    return scores


def evaluate(model, encoded: list[tuple], pad_token_id: int, batch_size: int, precision: str) -> dict[str, float]:
    """Accuracy (chosen scored higher), BT loss and mean margin r_c - r_r of encoded pairs, under the
    held-out names (M.RM_EVAL_*); the model is left in eval mode."""
    model.eval()
    r_c = score_in_batches(model, [c for c, _, _ in encoded], pad_token_id, batch_size, precision)
    r_r = score_in_batches(model, [r for _, r, _ in encoded], pad_token_id, batch_size, precision)
    return {
        M.RM_EVAL_ACCURACY: (r_c > r_r).float().mean().item(),
        M.RM_EVAL_LOSS: bradley_terry_loss(r_c, r_r).item(),
        M.RM_EVAL_MARGIN: (r_c - r_r).mean().item(),
    }


# ---- early stopping: a validation slice of the training prompts ------------------------------------


def split_validation(pairs: list[dict], fraction: float, seed: int) -> tuple[list[dict], list[dict]]:
    """(train, validation): about `fraction` of the pairs held back, whole prompts at a time (the pairs of
    one prompt share most of their tokens, so a split inside a prompt would validate on what was trained).
    Both keep the pairs' order. With one prompt, or fraction 0, nothing is held back."""

    keys = [json.dumps(pair["prompt"], sort_keys=True) for pair in pairs]
    pairs_of = collections.Counter(keys)
    prompts = sorted(pairs_of)
    if fraction <= 0 or len(prompts) < 2:
        return pairs, []
    random.Random(seed).shuffle(prompts)
    held, count = set(), 0
    for prompt in prompts[:-1]:  # at least one prompt stays to train on
        if count >= fraction * len(pairs):
            break
        held.add(prompt)
        count += pairs_of[prompt]
    train = [pair for pair, key in zip(pairs, keys, strict=True) if key not in held]
    return train, [pair for pair, key in zip(pairs, keys, strict=True) if key in held]


def check_steps(total_steps: int, checks: int) -> set[int]:
    """The optimizer steps after which the validation loss is measured: `checks` evenly spaced, the last
    step always among them."""
    return {max(round(total_steps * i / checks), 1) for i in range(1, checks + 1)} | {total_steps}


@dataclass
class BestCheckpoint:
    """The weights with the lowest validation loss so far, copied to the CPU (one model's worth of host
    memory), and how many checks in a row have not improved on it."""

    loss: float = math.inf
    step: int = 0
    weights: dict[str, torch.Tensor] | None = None
    checks_without_gain: int = 0

    def offer(self, model, loss: float, step: int) -> None:
        if loss < self.loss:
            self.loss, self.step, self.checks_without_gain = loss, step, 0
            self.weights = {k: v.detach().to("cpu", copy=True) for k, v in model.state_dict().items()}
        else:
            self.checks_without_gain += 1


# ---- training ---------------------------------------------------------------------------------------


def train_step(model, optimizer, batch: list[tuple], pad_token_id: int, args: RewardArgs) -> dict[str, float]:
    """One Bradley-Terry optimizer step on encoded pairs [(chosen_ids, rejected_ids, margin)]."""
    chosen, rejected, margins = zip(*batch, strict=True)
    # chosen and rejected go through ONE forward: (2B, T), the first B rows are the chosen sides
    scores = score_sequences(model, [*chosen, *rejected], pad_token_id, args.precision)  # (2B,)
    r_chosen, r_rejected = scores[: len(batch)], scores[len(batch) :]
    margin = torch.tensor(margins, device=scores.device) if args.use_margin else None
    loss = bradley_terry_loss(r_chosen, r_rejected, margin, args.center_rewards_coefficient)
    loss.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(model.parameters(), args.max_grad_norm)
    optimizer.step()
    optimizer.zero_grad(set_to_none=True)
    return {
        M.RM_TRAIN_LOSS: loss.item(),
        M.RM_TRAIN_ACCURACY: (r_chosen > r_rejected).float().mean().item(),
        M.RM_TRAIN_MARGIN: (r_chosen - r_rejected).mean().item(),
        M.RM_TRAIN_MEAN_REWARD: scores.mean().item(),
        M.RM_TRAIN_GRAD_NORM: grad_norm.item(),
    }


def normalisation_stats(
    model, sequences: list[list[int]], pad_token_id: int, batch_size: int, precision: str
) -> tuple[float, float]:
    """Mean and std of the RM scores of `sequences` (policy samples), so PPO can use (r - mean) / std."""
    if len(sequences) < 2:
        raise ValueError("reward normalisation needs at least 2 scored texts within max_length")
    model.eval()
    scores = score_in_batches(model, sequences, pad_token_id, batch_size, precision)
    return scores.mean().item(), max(scores.std().item(), 1e-3)  # floor: a flat RM must not get a huge gain


def _average(rows: list[dict[str, float]]) -> dict[str, float]:
    return {k: sum(row[k] for row in rows) / len(rows) for k in rows[0]}


def train_reward_model(
    args: RewardArgs,
    base_policy_dir: str,
    pairs_train: list[dict],
    pairs_eval: list[dict],
    out_dir: str,
    on_progress: Callable[[int, int, dict], None] | None = None,
) -> dict[str, float | None]:
    """Train an RM initialised from `base_policy_dir`, save it (model + tokenizer) to `out_dir`.

    The RM score mean/std over the pairs' responses (samples of the policies PPO starts from) is stored in
    the saved config, so PPO sees scores ~ N(0, 1) (N detail #8).
    Returns the final metrics (rm/train/* averaged over the last epoch, rm/eval/*, rm/norm/*, rm/data/*).
    """
    num_threads = configure_cpu(args.num_threads)
    torch.manual_seed(args.seed)  # before loading: the score head is randomly initialised
    rng = random.Random(args.seed)
    tokenizer = load_tokenizer(base_policy_dir)
    pad = tokenizer.pad_token_id
    device = torch.device(resolve_device(args.device))
    check_precision(args.precision, device)
    model = to_device(load_scalar_model(base_policy_dir, pad), device)

    max_length = min(args.max_length, max_positions(model))
    pairs_train, pairs_valid = split_validation(pairs_train, args.validation_fraction, args.seed)
    train, dropped_train = encode_pairs(tokenizer, pairs_train, max_length)
    valid, dropped_valid = encode_pairs(tokenizer, pairs_valid, max_length)
    evals, dropped_eval = encode_pairs(tokenizer, pairs_eval, max_length)
    if not train:
        raise ValueError(f"no training pairs left: {dropped_train} of {len(pairs_train)} exceed max_length")
    if len(valid) < args.min_validation_pairs:  # too few to tell a better checkpoint from noise: train on them
        train, valid = train + valid, []
    lengths = [max(len(c), len(r)) for c, r, _ in train]
    steps_per_epoch = math.ceil(len(train) / args.batch_size)
    total_steps = steps_per_epoch * args.num_epochs
    checks = check_steps(total_steps, args.num_epochs * args.evals_per_epoch) if valid else set()

    optimizer = torch.optim.AdamW(  # fused: one kernel for all tensors instead of ~10 ops per tensor
        model.parameters(),
        lr=args.learning_rate,
        eps=args.adam_eps,
        weight_decay=args.weight_decay,
        fused=True,
    )
    writer = M.MetricWriter(os.path.join(out_dir, METRICS_FILE))
    writer.write(0, {"args": args.model_dump(), "num_threads": num_threads})
    step, start, window, rows = 0, time.perf_counter(), [], []
    best = BestCheckpoint()
    batches = itertools.chain.from_iterable(  # every epoch reshuffled; early stopping may end it in any
        length_grouped_batches(lengths, args.batch_size, rng, args.group_by_length) for _ in range(args.num_epochs)
    )
    model.train()
    for batch in batches:
        lr = args.learning_rate * (1 - step / total_steps)  # linear decay to 0 (N detail #5)
        for group in optimizer.param_groups:
            group["lr"] = lr
        stats = train_step(model, optimizer, [train[i] for i in batch], pad, args)
        step += 1
        window.append(stats)
        rows.append(stats)
        checked = {}
        if step in checks:  # early stopping: keep the weights with the lowest validation loss
            validation = evaluate(model, valid, pad, args.eval_batch_size, args.precision)
            model.train()
            best.offer(model, validation[M.RM_EVAL_LOSS], step)
            checked = {M.RM_VALID_LOSS: validation[M.RM_EVAL_LOSS], M.RM_VALID_ACCURACY: validation[M.RM_EVAL_ACCURACY]}
        stopping = best.checks_without_gain >= args.patience
        if step % args.log_every == 0 or step == total_steps or checked:  # one point per step (the charts key on it)
            logged = _average(window) | {M.RM_TRAIN_LR: lr} | checked
            logged[M.RM_PAIRS_PER_SECOND] = step * args.batch_size / (time.perf_counter() - start)
            writer.write(step, logged)
            if on_progress is not None:
                on_progress(step, total_steps, logged)
            window = []
        if stopping:
            break
    train_seconds = time.perf_counter() - start

    # ---- the kept weights, held-out evaluation and reward normalisation ------------------------------
    # Without held-out pairs (all longer than max_length) the eval metrics are None; the accuracy gate fails.
    result: dict[str, float | None] = dict(_average(rows[-steps_per_epoch:]))  # the last epoch's steps
    if best.weights is not None:
        model.load_state_dict(best.weights)
        result |= {M.RM_VALID_LOSS: best.loss, M.RM_BEST_STEP: best.step, M.RM_STOPPED: float(step < total_steps)}
    if evals:
        result |= evaluate(model, evals, pad, args.eval_batch_size, args.precision)
    else:
        result |= {M.RM_EVAL_ACCURACY: None, M.RM_EVAL_LOSS: None, M.RM_EVAL_MARGIN: None}
    norm_sequences = [seq for c, r, _ in train + valid + evals for seq in (c, r)][: args.max_norm_samples]
    mean, std = normalisation_stats(model, norm_sequences, pad, args.eval_batch_size, args.precision)
    setattr(model.config, REWARD_MEAN_KEY, mean)
    setattr(model.config, REWARD_STD_KEY, std)

    result |= {
        M.RM_NORM_MEAN: mean,
        M.RM_NORM_STD: std,
        M.RM_NUM_PAIRS: len(train),
        M.RM_NUM_VALID_PAIRS: len(valid),
        M.RM_NUM_DROPPED: dropped_train + dropped_valid + dropped_eval,
        M.RM_PAIRS_PER_SECOND: step * args.batch_size / train_seconds,
        "train_seconds": train_seconds,
        "num_steps": step,
    }
    writer.write(step, result)
    writer.close()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return result


# ---- the command line ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.reward", description="Train a reward model on preference pairs (Bradley-Terry)."
    )
    parser.add_argument(
        "--pairs",
        type=Path,
        required=True,
        help=f"{PAIRS_FILE} as a round's snapshot writes it, or the snapshot directory holding it",
    )
    parser.add_argument(
        "--policy",
        type=Path,
        required=True,
        help="model directory the reward model starts from (a round uses its lineage's base policy)",
    )
    parser.add_argument("--out", type=Path, required=True, help="directory for the reward model and metrics.jsonl")
    add_arguments(parser, RewardArgs)
    args, paths = parse_arguments(parser, RewardArgs, argv)
    if not snapshot_file(paths.pairs, PAIRS_FILE).is_file():
        parser.error(f"--pairs: {paths.pairs} is neither a pairs file nor a directory holding {PAIRS_FILE}")
    if not paths.policy.is_dir():
        parser.error(f"--policy: {paths.policy} is not a model directory")
    train, held_out = snapshot_rows(paths.pairs, PAIRS_FILE)
    if not train:
        parser.error(f"--pairs: {paths.pairs} holds no training pairs")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sizes = RoundSizes(count_parameters(paths.policy), len(train) + len(held_out), len(train), len(held_out), 0)
    args = defaults.for_stage(args, "reward", sizes, log=logging.getLogger(__name__).info)
    with M.progress_bar("reward_model", (M.RM_TRAIN_LOSS, M.RM_TRAIN_ACCURACY)) as report:
        result = train_reward_model(args, str(paths.policy), train, held_out, str(paths.out), on_progress=report)
    print(json.dumps(json_safe(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
