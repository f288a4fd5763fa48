"""Reward model training on pairwise preferences (Bradley-Terry), one file, one visible loop.

Data: pairs {"prompt": [chat messages], "chosen": str, "rejected": str, "margin": float}. Each side is
encoded as  chat_template(prompt, add_generation_prompt=True) + response tokens + EOS,  exactly the
token layout PPO later scores, and the reward is the `score` head read at that final EOS token.

References: TRL RewardTrainer (loss, margin, centering, metric names), N+ `reward.py` (one epoch,
head init, reward normalisation on policy samples), rlhf-trainers.md sections 1.1, 5.2 and 8.
"""

import math
import random
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass

import torch
import torch.nn.functional as F

from trainer import metrics as M
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
)


@dataclass
class RewardArgs:
    num_epochs: int = 1
    """passes over the training pairs; 1 as in Ziegler et al. and N+, to avoid overfitting scarce labels"""
    learning_rate: float = 3e-4
    """peak AdamW lr, linearly decayed to 0. N+'s 3e-6 and TRL's 1e-4 target large pretrained LMs; small
    models need more. Measured (1 epoch, bs 16, 1000 scripted-annotator pairs on samples of a 4-layer/
    256-dim embedded policy): held-out accuracy 0.77 / 0.79 / 0.84 / 0.84 at 3e-5 / 1e-4 / 3e-4 / 1e-3,
    lowest held-out loss at 3e-4. On a random 2-layer/32-dim GPT-2, 1e-5 stays at chance, 3e-4 gets ~0.9"""
    batch_size: int = 16
    """pairs per optimizer step (each step runs 2 * batch_size sequences in one forward)"""
    max_length: int = 256
    """max tokens of prompt + response + EOS (capped at the model's position embeddings); longer pairs are
    dropped, as TRL's docstring says, and counted in rm/data/num_dropped_too_long"""
    use_margin: bool = False
    """subtract each pair's `margin` (e.g. from annotator strength) inside the loss, as in Llama 2"""
    center_rewards_coefficient: float | None = 0.01
    """weight of mean((r_chosen + r_rejected)^2), keeps rewards centred near 0 (Eisenstein et al. 2023);
    None disables"""
    adam_eps: float = 1e-5
    """AdamW epsilon; 1e-5 as in the N+ reference (PyTorch's 1e-8 gives larger early steps)"""
    weight_decay: float = 0.0
    """AdamW weight decay (HF default 0)"""
    max_grad_norm: float = 1.0
    """gradient clipping threshold (HF default)"""
    group_by_length: bool = True
    """batch pairs of similar length together (shuffled mega-batches of 50 batches, sorted inside, as
    HF's LengthGroupedSampler) so dynamic padding wastes almost nothing"""
    eval_batch_size: int = 64
    """pairs per forward in evaluation and normalisation scoring"""
    max_norm_samples: int = 1024
    """when norm_texts is not given, at most this many pair responses are scored for the mean/std"""
    log_every: int = 10
    """optimizer steps between metrics lines / on_progress calls"""
    seed: int = 0
    """seeds the score-head init and the batch order"""
    num_threads: int | None = None
    """torch CPU threads; None = every core this process may use"""
    device: str = "auto"
    """where the model trains: "auto" (cuda when a GPU is visible, else cpu), "cpu", "cuda" or "cuda:1"."""
    precision: str = "auto"
    """forward passes: "auto" (bf16 autocast on CUDA, fp32 on CPU), "bf16" (also on CPU: faster where the
    CPU has native bf16) or "fp32"; weights and optimizer stay fp32 (trainer.models.autocast)"""


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


def evaluate(model, encoded: list[tuple], pad_token_id: int, batch_size: int, precision: str) -> dict:
    """Held-out accuracy (chosen scored higher), BT loss and mean margin r_c - r_r."""
    model.eval()
    r_c = score_in_batches(model, [c for c, _, _ in encoded], pad_token_id, batch_size, precision)
    r_r = score_in_batches(model, [r for _, r, _ in encoded], pad_token_id, batch_size, precision)
    return {
        M.RM_EVAL_ACCURACY: (r_c > r_r).float().mean().item(),
        M.RM_EVAL_LOSS: bradley_terry_loss(r_c, r_r).item(),
        M.RM_EVAL_MARGIN: (r_c - r_r).mean().item(),
    }


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
    norm_texts: list[tuple] | None = None,
    on_progress: Callable[[int, int, dict], None] | None = None,
) -> dict:
    """Train an RM initialised from `base_policy_dir`, save it (model + tokenizer) to `out_dir`.

    norm_texts: [(prompt_messages, response_text)] sampled from the policy PPO will start from; the RM
    score mean/std over them is stored in the saved config so PPO sees scores ~ N(0, 1) (N detail #8).
    When None, the responses in the pairs are used (they are policy samples too).
    Returns the final metrics (rm/train/* averaged over the last epoch, rm/eval/*, rm/norm/*, rm/data/*).
    """
    num_threads = configure_cpu(args.num_threads)
    torch.manual_seed(args.seed)  # before loading: the score head is randomly initialised
    rng = random.Random(args.seed)
    tokenizer = load_tokenizer(base_policy_dir)
    pad = tokenizer.pad_token_id
    device = torch.device(resolve_device(args.device))
    check_precision(args.precision, device)
    model = load_scalar_model(base_policy_dir, pad).to(device)

    max_length = min(args.max_length, max_positions(model))
    train, dropped_train = encode_pairs(tokenizer, pairs_train, max_length)
    evals, dropped_eval = encode_pairs(tokenizer, pairs_eval, max_length)
    if not train:
        raise ValueError(f"no training pairs left: {dropped_train} of {len(pairs_train)} exceed max_length")
    lengths = [max(len(c), len(r)) for c, r, _ in train]
    total_steps = math.ceil(len(train) / args.batch_size) * args.num_epochs

    optimizer = torch.optim.AdamW(  # fused: one kernel for all tensors instead of ~10 ops per tensor
        model.parameters(),
        lr=args.learning_rate,
        eps=args.adam_eps,
        weight_decay=args.weight_decay,
        fused=True,
    )
    writer = M.MetricWriter(f"{out_dir}/metrics.jsonl")
    writer.write(0, {"args": asdict(args), "num_threads": num_threads})
    step, start, window = 0, time.perf_counter(), []
    model.train()
    for _epoch in range(args.num_epochs):
        epoch_rows = []
        for batch in length_grouped_batches(lengths, args.batch_size, rng, args.group_by_length):
            lr = args.learning_rate * (1 - step / total_steps)  # linear decay to 0 (N detail #5)
            for group in optimizer.param_groups:
                group["lr"] = lr
            stats = train_step(model, optimizer, [train[i] for i in batch], pad, args)
            step += 1
            window.append(stats)
            epoch_rows.append(stats)
            if step % args.log_every == 0 or step == total_steps:
                logged = _average(window) | {M.RM_TRAIN_LR: lr}
                logged[M.RM_PAIRS_PER_SECOND] = step * args.batch_size / (time.perf_counter() - start)
                writer.write(step, logged)
                if on_progress is not None:
                    on_progress(step, total_steps, logged)
                window = []
    train_seconds = time.perf_counter() - start

    # ---- held-out evaluation and reward normalisation (on data the model was not trained on) --------
    result = _average(epoch_rows)
    if evals:
        result |= evaluate(model, evals, pad, args.eval_batch_size, args.precision)
    else:
        result |= {M.RM_EVAL_ACCURACY: None, M.RM_EVAL_LOSS: None, M.RM_EVAL_MARGIN: None}
    if norm_texts:
        eos = tokenizer.eos_token_id
        norm_sequences = [
            render_prompt_ids(tokenizer, p) + tokenizer(r, add_special_tokens=False)["input_ids"] + [eos]
            for p, r in norm_texts
        ]
    else:
        norm_sequences = [seq for c, r, _ in train + evals for seq in (c, r)][: args.max_norm_samples]
    norm_sequences = [seq for seq in norm_sequences if len(seq) <= max_length]
    mean, std = normalisation_stats(model, norm_sequences, pad, args.eval_batch_size, args.precision)
    setattr(model.config, REWARD_MEAN_KEY, mean)
    setattr(model.config, REWARD_STD_KEY, std)

    result |= {
        M.RM_NORM_MEAN: mean,
        M.RM_NORM_STD: std,
        M.RM_NUM_PAIRS: len(train),
        M.RM_NUM_DROPPED: dropped_train + dropped_eval,
        M.RM_PAIRS_PER_SECOND: len(train) * args.num_epochs / train_seconds,
        "train_seconds": train_seconds,
        "num_steps": step,
    }
    writer.write(step, result)
    writer.close()
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return result
