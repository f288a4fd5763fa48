"""PPO for RLHF: rollout (6 numbered steps) and clipped-PPO optimisation, in one visible loop.

Four models, as in TRL's experimental PPOTrainer and the N+ reference code
(vwxyzjn/summarize_from_feedback_details `ppo.py`):
  policy      trained; starts from `policy_dir`
  reference   frozen; the KL anchor (`ref_policy_dir`, normally the base policy)
  reward      frozen; scores are normalised with the mean/std stored by trainer/reward.py
  value       trained; initialised from the reward model (TRL / N+), shares the policy's optimizer
The pure math (KL, rewards, GAE, losses) lives in trainer/ppo_math.py; this file is orchestration.
The arguments, with their defaults, limits and help, are PPOArgs in trainer/contract.py. Numbered "N details"
are those of Huang et al. 2024, "The N+ Implementation Details of RLHF with PPO" (arXiv:2403.17031).

Run it alone on a snapshot's prompts (the train split is sampled) with a trained reward model:

    python -m trainer.ppo --prompts DATA_DIR/rounds/<id>/snapshot --policy MODEL_DIR --reward-model RM_DIR \
        --out OUT_DIR [--ref-policy MODEL_DIR] [--total-episodes 64 ...]

OUT_DIR then holds the policy (model + tokenizer + generation_config) and metrics.jsonl; a run stopped
with Ctrl-C resumes from OUT_DIR/checkpoint/. `python -m trainer.ppo --help` lists every argument.
"""

import argparse
import dataclasses
import json
import logging
import math
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from transformers import GenerationConfig

from trainer import defaults
from trainer import metrics as M
from trainer.contract import (
    METRICS_FILE,
    PROMPTS_FILE,
    PPOArgs,
    PPOSizes,
    add_arguments,
    batch_size_problem,
    derive_sizes,
    json_safe,
    parse_arguments,
    snapshot_file,
    snapshot_rows,
)
from trainer.defaults import RoundSizes, count_parameters
from trainer.models import (
    autocast,
    check_precision,
    configure_cpu,
    last_token_scores,
    load_policy,
    load_scalar_model,
    load_tokenizer,
    max_positions,
    position_ids_from_mask,
    render_prompt_ids,
    resolve_device,
    reward_norm_stats,
    scalar_forward,
    to_device,
)
from trainer.ppo_math import (
    AdaptiveKLController,
    FixedKLController,
    compute_gae,
    compute_rewards,
    last_true_indices,
    policy_loss,
    value_loss,
)
from trainer.tensor_utils import (
    INVALID_LOGPROB,
    entropy_from_logits,
    logprobs_from_logits,
    masked_mean,
    masked_whiten,
    response_mask_from_eos,
    truncate_after_eos,
)

CHECKPOINT_SUBDIR = "checkpoint"  # inside out_dir; removed once the final policy is saved


# ---- small helpers -----------------------------------------------------------------------------------


def left_pad(sequences: list[list[int]], pad_token_id: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Left-pad prompts for generation: (input_ids (B, P), attention_mask (B, P))."""
    P = max(len(s) for s in sequences)
    input_ids = torch.full((len(sequences), P), pad_token_id, dtype=torch.long)
    attention_mask = torch.zeros((len(sequences), P), dtype=torch.long)
    for i, s in enumerate(sequences):
        input_ids[i, P - len(s) :] = torch.tensor(s)
        attention_mask[i, P - len(s) :] = 1
    return input_ids, attention_mask


def prompt_schedule(num_prompts: int, total_episodes: int, seed: int) -> torch.Tensor:
    """Prompt index of every episode: shuffled passes over the prompts, a pure function of the seed,
    so a resumed run picks exactly the prompts the killed run would have (no dataloader state)."""
    g = torch.Generator().manual_seed(seed)
    passes = -(-total_episodes // num_prompts)
    return torch.cat([torch.randperm(num_prompts, generator=g) for _ in range(passes)])[:total_episodes]


def response_logits(policy, query_responses: torch.Tensor, attention_mask: torch.Tensor, context_length: int,
                    temperature: float) -> torch.Tensor:  # fmt: skip
    """Temperature-scaled logits predicting each response token: (B, P + T) -> (B, T, V).

    Position P-1+t predicts response token t; `logits_to_keep` makes the LM head run only there. The
    last token predicts nothing we use, so it is left out of the input (one position less of work).
    """
    T = query_responses.size(1) - context_length
    logits = policy(
        input_ids=query_responses[:, :-1],
        attention_mask=attention_mask[:, :-1],
        position_ids=position_ids_from_mask(attention_mask[:, :-1]),  # left padding does not shift positions
        logits_to_keep=T,
        use_cache=False,
    ).logits  # (B, T, V)
    return logits.float() / temperature  # fp32 even under bf16 autocast: logprob ratios need the precision


def response_values(value_model, query_responses, attention_mask, context_length: int) -> torch.Tensor:
    """Value of the state before each response token: (B, P + T) -> (B, T). As in response_logits, the
    last token is no state before a response token and is left out of the input."""
    return scalar_forward(value_model, query_responses[:, :-1], attention_mask[:, :-1])[:, context_length - 1 :]


@dataclass
class Rollout:
    """One batch of experience; all (B, T) tensors are response-aligned and right-padded."""

    query_responses: torch.Tensor  # (B, P + T) left-padded prompt + truncated response
    attention_mask: torch.Tensor  # (B, P + T)
    context_length: int  # P
    response_mask: torch.Tensor  # (B, T) bool, True up to and including the first EOS
    logprobs: torch.Tensor  # (B, T) at temperature T, INVALID_LOGPROB on padding
    values: torch.Tensor  # (B, T)
    advantages: torch.Tensor  # (B, T) whitened
    returns: torch.Tensor  # (B, T)


# ---- rollout -----------------------------------------------------------------------------------------


@torch.inference_mode()
def rollout(policy, ref_policy, value_model, reward_model, queries, query_mask, generation_config,
            args: PPOArgs, kl_coef: float, eos: int, pad: int, reward_norm: tuple[float, float]):  # fmt: skip
    """Collect one batch of experience. Returns (Rollout, stats dict)."""
    t0 = time.perf_counter()
    P = queries.size(1)
    # 1. generate: left-padded prompts, plain sampling at temperature T (top_k=0, top_p=1), stop at EOS
    out = policy.generate(
        input_ids=queries,
        attention_mask=query_mask,
        generation_config=generation_config,
        return_dict_in_generate=True,
        output_logits=True,  # raw logits of every step: the rollout logprobs come from them (N detail #20)
    )
    responses = out.sequences[:, P:]  # (B, T); T <= response_length, generate stops when all rows hit EOS
    gen_logits = torch.stack(out.logits, dim=1).float()  # (B, T, V), before temperature
    t1 = time.perf_counter()

    # 2. truncate after the first EOS (everything later becomes pad) and build the masks
    responses = truncate_after_eos(responses, eos, pad)
    response_mask = response_mask_from_eos(responses, eos)  # (B, T) bool, includes the EOS
    contains_eos = (responses == eos).any(-1)  # (B,)
    query_responses = torch.cat([queries, responses], dim=1)  # (B, P + T)
    attention_mask = torch.cat([query_mask, response_mask.long()], dim=1)  # (B, P + T)

    # 3. logprobs of the sampled tokens under the policy and the reference, both at temperature T
    #    (N detail #9), and the values of the states before each response token
    logprobs = logprobs_from_logits(gen_logits / args.temperature, responses)  # (B, T)
    ref_logits = response_logits(ref_policy, query_responses, attention_mask, P, args.temperature)
    ref_logprobs = logprobs_from_logits(ref_logits, responses)  # (B, T)
    logprobs = torch.where(response_mask, logprobs, INVALID_LOGPROB)
    ref_logprobs = torch.where(response_mask, ref_logprobs, INVALID_LOGPROB)
    values = response_values(value_model, query_responses, attention_mask, P)  # (B, T)

    # 4. score query + truncated response with the RM at the last real token, normalise with the stats
    #    stored at RM training, and penalise responses that never emitted EOS (N detail #12)
    last_index = P + last_true_indices(response_mask)  # (B,) position of the last response token
    raw_scores = last_token_scores(scalar_forward(reward_model, query_responses, attention_mask), last_index)
    reward_mean, reward_std = reward_norm
    scores = (raw_scores - reward_mean) / reward_std  # (B,)
    if args.missing_eos_penalty:
        scores = torch.where(contains_eos, scores, scores - args.missing_eos_penalty)

    # 5. per-token rewards: -kl_coef * KL on every token, plus the score on the last real token
    rewards, kl = compute_rewards(scores, logprobs, ref_logprobs, response_mask, kl_coef, args.kl_estimator)
    if args.whiten_rewards:
        rewards = masked_whiten(rewards, response_mask, shift_mean=False)

    # 6. GAE over the response tokens, then whiten the advantages (always, TRL / N+)
    advantages, returns = compute_gae(rewards, values, response_mask, args.gamma, args.lam)
    advantages = masked_whiten(advantages, response_mask)
    t2 = time.perf_counter()

    non_score_reward = (-kl_coef * kl).sum(1).mean()
    stats = {
        M.OBJECTIVE_KL: kl.sum(1).mean(),
        M.OBJECTIVE_ENTROPY: torch.where(response_mask, -logprobs, 0.0).sum(1).mean(),
        M.OBJECTIVE_NON_SCORE_REWARD: non_score_reward,
        M.OBJECTIVE_RLHF_REWARD: scores.mean() + non_score_reward,
        M.OBJECTIVE_SCORES: scores.mean(),
        M.OBJECTIVE_KL_COEF: kl_coef,
        M.VAL_NUM_EOS_TOKENS: (responses == eos).sum(),
        M.ROLLOUT_RESPONSE_LENGTH_MEAN: response_mask.sum(1).float().mean(),
        M.ROLLOUT_EOS_RATE: contains_eos.float().mean(),
        M.TIME_GENERATION: t1 - t0,
        M.TIME_SCORING: t2 - t1,
        "num_response_tokens": response_mask.sum(),
    }
    # inference-mode tensors cannot be saved for backward; plain copies can (cheap at this size)
    experience = Rollout(query_responses.clone(), attention_mask.clone(), P, response_mask.clone(),
                         logprobs.clone(), values.clone(), advantages.clone(), returns.clone())  # fmt: skip
    return experience, stats


# ---- optimisation ------------------------------------------------------------------------------------


def micro_batch(ro: Rollout, idx: torch.Tensor):
    """Rows `idx` of the rollout, trimmed to the columns any of them uses (less padding to forward).

    Returns (query_responses, attention_mask, context_length, response-aligned column slice).
    """
    attn = ro.attention_mask[idx]  # (b, P + T)
    first_col = int(first_used_column(attn[:, : ro.context_length]))
    resp_len = int(ro.response_mask[idx].sum(1).max())
    cols = slice(first_col, ro.context_length + resp_len)
    return ro.query_responses[idx, cols], attn[:, cols], ro.context_length - first_col, slice(0, resp_len)


def first_used_column(query_mask: torch.Tensor) -> torch.Tensor:
    """First prompt column holding a real token in any row (left padding before it is all pad)."""
    return query_mask.any(0).long().argmax()


def ppo_epochs(policy, value_model, optimizer, params, ro: Rollout, args: PPOArgs,
               sizes: PPOSizes) -> tuple[dict, bool]:  # fmt: skip
    """num_ppo_epochs x minibatches x micro-batches of clipped PPO. Returns (mean stats, all_finite)."""
    B = ro.response_mask.size(0)
    stats: dict[str, list[torch.Tensor]] = {}
    for _ppo_epoch in range(args.num_ppo_epochs):
        b_inds = torch.randperm(B)  # fresh permutation every epoch (N detail #14)
        for mb_start in range(0, B, sizes.mini_batch_size):
            mb_inds = b_inds[mb_start : mb_start + sizes.mini_batch_size]
            for micro_start in range(0, sizes.mini_batch_size, sizes.micro_batch_size):
                idx = mb_inds[micro_start : micro_start + sizes.micro_batch_size]
                query_responses, attention_mask, P, r = micro_batch(ro, idx)
                mask = ro.response_mask[idx, r]  # (b, t)
                # one pass through each trained model: new logprobs (temperature-scaled) and values
                with autocast(query_responses.device, args.precision):
                    logits = response_logits(policy, query_responses, attention_mask, P, args.temperature)
                    new_values = response_values(value_model, query_responses, attention_mask, P)  # (b, t)
                new_logprobs = logprobs_from_logits(logits, query_responses[:, P:])  # (b, t)

                pg_loss, pg_stats = policy_loss(
                    new_logprobs, ro.logprobs[idx, r], ro.advantages[idx, r], mask, args.cliprange
                )
                vf_loss, vf_stats = value_loss(
                    new_values, ro.values[idx, r], ro.returns[idx, r], mask, args.cliprange_value
                )
                loss = pg_loss + args.vf_coef * vf_loss
                with torch.set_grad_enabled(args.ent_coef > 0):
                    entropy = masked_mean(entropy_from_logits(logits), mask)
                if args.ent_coef > 0:
                    loss = loss - args.ent_coef * entropy
                if not torch.isfinite(loss):
                    optimizer.zero_grad(set_to_none=True)
                    return _mean_stats(stats), False
                (loss / args.gradient_accumulation_steps).backward()

                for key, value in (
                    (M.LOSS_POLICY_AVG, pg_loss), (M.LOSS_VALUE_AVG, vf_loss),
                    (M.POLICY_APPROXKL_AVG, pg_stats["approxkl"]),
                    (M.POLICY_CLIPFRAC_AVG, pg_stats["clipfrac"]),
                    (M.POLICY_ENTROPY_AVG, entropy), (M.VAL_CLIPFRAC_AVG, vf_stats["clipfrac"]),
                    (M.VAL_RATIO, pg_stats["ratio"]), (M.VAL_RATIO_VAR, pg_stats["ratio_var"]),
                ):  # fmt: skip
                    stats.setdefault(key, []).append(value.detach())
            torch.nn.utils.clip_grad_norm_(params, args.max_grad_norm)
            optimizer.step()
            optimizer.zero_grad(set_to_none=True)
    return _mean_stats(stats), True


def _mean_stats(stats: dict[str, list[torch.Tensor]]) -> dict[str, float]:
    return {k: torch.stack(v).mean().item() for k, v in stats.items()}


# ---- checkpoints (resume a killed or cancelled run at the same update) ---------------------------------

# args that may differ between the killed run and its resumption; anything else must match
_RESUME_MAY_CHANGE = {"checkpoint_every", "num_threads", "device"}


def _run_args(args: PPOArgs, sizes: PPOSizes) -> dict:
    """What a checkpoint records of its run: the arguments and the sizes derived from them."""
    return args.model_dump() | dataclasses.asdict(sizes)


def save_checkpoint(path: str, update: int, policy, value_model, optimizer, kl_ctl, args: PPOArgs,
                    sizes: PPOSizes) -> None:  # fmt: skip
    """Write everything needed to continue after `update` completed updates, atomically: the state goes
    to a temp file that is fsynced and renamed over the old one, so a kill mid-write keeps the previous
    checkpoint intact."""
    state = {
        "update": update,
        "policy": policy.state_dict(),
        "value_model": value_model.state_dict(),
        "optimizer": optimizer.state_dict(),
        "kl_ctl": kl_ctl.state_dict(),
        "torch_rng_state": torch.get_rng_state(),
        "cuda_rng_state": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else [],  # sampling
        "args": _run_args(args, sizes),
    }
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.tmp"
    with open(tmp, "wb") as f:
        torch.save(state, f)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)


def load_checkpoint(path: str, policy, value_model, optimizer, kl_ctl, args: PPOArgs, sizes: PPOSizes) -> int:
    """Restore a checkpoint written by save_checkpoint; returns the number of completed updates."""
    state = torch.load(path, weights_only=True, map_location="cpu")  # load_state_dict copies to the device
    saved, current = state["args"], _run_args(args, sizes)
    changed = {k for k in current if k not in _RESUME_MAY_CHANGE and saved.get(k) != current[k]}
    if changed:
        raise ValueError(
            f"checkpoint {path} was written with different args ({sorted(changed)}); "
            "resume with the same args or delete the checkpoint directory to start over"
        )
    policy.load_state_dict(state["policy"])
    value_model.load_state_dict(state["value_model"])
    optimizer.load_state_dict(state["optimizer"])
    kl_ctl.load_state_dict(state["kl_ctl"])
    torch.set_rng_state(state["torch_rng_state"])
    if state.get("cuda_rng_state") and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda_rng_state"])
    return state["update"]


# ---- the training loop -------------------------------------------------------------------------------


def load_models(policy_dir: str, ref_policy_dir: str, reward_model_dir: str, device: torch.device):
    """Tokenizer and the four models, on `device` in fp32. Policy and value train; reference and reward
    are frozen (eval, no grad). The value model starts as a copy of the reward model (TRL / N+).
    Dropout is off in all."""
    tokenizer = load_tokenizer(policy_dir)
    pad = tokenizer.pad_token_id
    policy = to_device(load_policy(policy_dir, pad), device).train()
    ref_policy = to_device(load_policy(ref_policy_dir, pad), device).eval().requires_grad_(False)
    reward_model = to_device(load_scalar_model(reward_model_dir, pad), device).eval().requires_grad_(False)
    value_model = to_device(load_scalar_model(reward_model_dir, pad), device).train()
    vocab_sizes = {m.config.vocab_size for m in (policy, ref_policy, reward_model)}
    if len(vocab_sizes) != 1:
        raise ValueError(f"policy, reference and reward model must share one tokenizer; vocab sizes {vocab_sizes}")
    return tokenizer, policy, ref_policy, reward_model, value_model


def sampling_config(args: PPOArgs, eos: int, pad: int) -> GenerationConfig:
    """Rollout sampling: temperature T, plain categorical (top_k=0, top_p=1) so the logprobs we train
    on are those of the distribution we sampled from (N detail #4), stop at EOS."""
    return GenerationConfig(
        max_new_tokens=args.response_length,
        do_sample=True,
        temperature=args.temperature,
        top_k=0,
        top_p=1.0,
        eos_token_id=eos,
        pad_token_id=pad,
        use_cache=True,
    )


def prompt_length_limit(args: PPOArgs, policy) -> int:
    """Longest prompt kept: max_prompt_length, lowered so that prompt + response_length fit the
    policy's position embeddings (embedded policies have n_positions=256); longer positions would index
    past the embedding table mid-generation."""
    limit = min(args.max_prompt_length, max_positions(policy) - args.response_length)
    if limit < 1:
        raise ValueError(f"response_length {args.response_length} leaves no room for a prompt in "
                         f"{max_positions(policy)} positions; lower response_length")  # fmt: skip
    return limit


def encode_prompts(tokenizer, prompts: list, max_length: int) -> list[list[int]]:
    """Chat-rendered prompt ids, keeping the LAST max_length tokens (the end holds the assistant header)."""
    return [render_prompt_ids(tokenizer, p)[-max_length:] for p in prompts]


def train_ppo(
    args: PPOArgs,
    policy_dir: str,
    ref_policy_dir: str,
    reward_model_dir: str,
    prompts: list,
    out_dir: str,
    on_progress: Callable[[int, int, dict], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
) -> dict:
    """Run PPO and save the final policy (model + tokenizer + generation_config) to `out_dir`.

    prompts: chat message lists ([{"role": "user", "content": ...}]) or plain strings.
    A checkpoint in out_dir/checkpoint/ is resumed automatically. `should_stop()` is polled before
    every update; when it returns True a checkpoint is written and the function returns with
    stopped=True (no final policy). Returns {"num_updates", "updates_done", "stopped", "resumed_from",
    "metrics" (last update), "gates" (final_kl, nan_or_inf, eos_rate, rlhf_reward_first/last)}.
    """
    sizes = derive_sizes(args, len(prompts))
    configure_cpu(args.num_threads)
    torch.manual_seed(args.seed)
    device = torch.device(resolve_device(args.device))
    check_precision(args.precision, device)

    tokenizer, policy, ref_policy, reward_model, value_model = load_models(
        policy_dir, ref_policy_dir, reward_model_dir, device
    )
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    reward_norm = reward_norm_stats(reward_model)
    params = [*policy.parameters(), *value_model.parameters()]
    # one optimizer over policy + value (TRL's PolicyAndValueWrapper); fused = one kernel for all tensors
    optimizer = torch.optim.AdamW(params, lr=args.learning_rate, eps=args.adam_eps, fused=True)
    kl_ctl = (AdaptiveKLController(args.kl_coef, args.kl_target, args.kl_horizon) if args.adaptive_kl
              else FixedKLController(args.kl_coef))  # fmt: skip
    generation_config = sampling_config(args, eos, pad)
    # generate() fills every unset field from policy.generation_config; replacing it means nothing saved
    # with the policy (say a repetition_penalty) can make the sampling distribution differ from the
    # logprobs we train on. It is also what gets saved with the final policy.
    policy.generation_config = generation_config
    prompt_ids = encode_prompts(tokenizer, prompts, prompt_length_limit(args, policy))
    episode_prompts = prompt_schedule(len(prompt_ids), sizes.total_episodes, args.seed)

    checkpoint_path = os.path.join(out_dir, CHECKPOINT_SUBDIR, "state.pt")
    start_update = 0
    if os.path.exists(checkpoint_path):
        start_update = load_checkpoint(checkpoint_path, policy, value_model, optimizer, kl_ctl, args, sizes)
    writer = M.MetricWriter(os.path.join(out_dir, METRICS_FILE), truncate_after_step=start_update)

    nan_or_inf, stopped = False, False
    update = start_update
    while update < sizes.num_updates:
        if should_stop is not None and should_stop():
            save_checkpoint(checkpoint_path, update, policy, value_model, optimizer, kl_ctl, args, sizes)
            stopped = True
            break
        t_start = time.perf_counter()
        lr = args.learning_rate * (1.0 - update / sizes.num_updates)  # linear decay to 0 (N detail #5)
        for group in optimizer.param_groups:
            group["lr"] = lr
        batch = episode_prompts[update * args.batch_size : (update + 1) * args.batch_size]
        queries, query_mask = left_pad([prompt_ids[i] for i in batch], pad)
        queries, query_mask = queries.to(device), query_mask.to(device)

        with autocast(device, args.precision):
            experience, stats = rollout(policy, ref_policy, value_model, reward_model, queries, query_mask,
                                        generation_config, args, kl_ctl.value, eos, pad, reward_norm)  # fmt: skip
        t_opt = time.perf_counter()
        opt_stats, finite = ppo_epochs(policy, value_model, optimizer, params, experience, args, sizes)
        t_end = time.perf_counter()

        update += 1
        stats = {k: float(v) for k, v in stats.items()} | opt_stats
        num_tokens = stats.pop("num_response_tokens")
        kl_ctl.update(stats[M.OBJECTIVE_KL], args.batch_size)
        stats |= {
            M.LR: lr,
            M.EPISODE: update * args.batch_size,
            M.TIME_OPTIMIZATION: t_end - t_opt,
            M.TIME_UPDATE: t_end - t_start,
            M.EPS: args.batch_size / (t_end - t_start),
            M.TOKENS_PER_SECOND: num_tokens / (t_end - t_start),
        }
        nan_or_inf |= not finite or not all(math.isfinite(v) for v in stats.values())
        writer.write(update, stats)
        if on_progress is not None:
            on_progress(update, sizes.num_updates, stats)
        if nan_or_inf:
            break  # the weights are still finite (the bad step was not applied); the caller rejects the run
        if args.checkpoint_every and update % args.checkpoint_every == 0 and update < sizes.num_updates:
            save_checkpoint(checkpoint_path, update, policy, value_model, optimizer, kl_ctl, args, sizes)
    writer.close()

    if not stopped:
        policy.save_pretrained(out_dir)
        tokenizer.save_pretrained(out_dir)
        if os.path.exists(checkpoint_path):
            os.remove(checkpoint_path)
            os.rmdir(os.path.dirname(checkpoint_path))
    # gates read the whole metrics file, so a resumed run is judged on all of its updates
    rows = [row for row in M.read_metrics(writer.path) if M.OBJECTIVE_KL in row]
    nan_or_inf |= any(isinstance(v, str) for row in rows for v in row.values())  # "nan"/"inf" strings
    last = rows[-1] if rows else {}
    gates = {
        "final_kl": last.get(M.OBJECTIVE_KL),
        "nan_or_inf": nan_or_inf,
        "eos_rate": last.get(M.ROLLOUT_EOS_RATE),
        "rlhf_reward_first": rows[0][M.OBJECTIVE_RLHF_REWARD] if rows else None,
        "rlhf_reward_last": last.get(M.OBJECTIVE_RLHF_REWARD),
    }
    return {
        "num_updates": sizes.num_updates,
        "updates_done": update,
        "stopped": stopped,
        "resumed_from": start_update,
        "metrics": last,
        "gates": gates,
    }


# ---- the command line -------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m trainer.ppo", description="Run PPO from a policy against a trained reward model."
    )
    parser.add_argument("--prompts", type=Path, required=True,
                        help=f"{PROMPTS_FILE} as a round's snapshot writes it (its train split is sampled), "
                             "or the snapshot directory holding it")  # fmt: skip
    parser.add_argument("--policy", type=Path, required=True, help="model directory of the policy to train")
    parser.add_argument("--ref-policy", type=Path, help="PPO's frozen KL reference (default: --policy)")
    parser.add_argument("--reward-model", type=Path, required=True,
                        help="reward model directory, as `python -m trainer.reward` writes it")  # fmt: skip
    parser.add_argument(
        "--out",
        type=Path,
        required=True,
        help="directory for the policy, metrics.jsonl and the checkpoint a rerun resumes from",
    )
    add_arguments(parser, PPOArgs)
    args, paths = parse_arguments(parser, PPOArgs, argv)
    if problem := batch_size_problem(args):
        field, message = problem
        parser.error(f"--{field.replace('_', '-')}: {message}")
    paths.ref_policy = paths.ref_policy or paths.policy
    for flag in ("policy", "ref_policy", "reward_model"):
        if not getattr(paths, flag).is_dir():
            parser.error(f"--{flag.replace('_', '-')}: {getattr(paths, flag)} is not a model directory")
    if not snapshot_file(paths.prompts, PROMPTS_FILE).is_file():
        parser.error(f"--prompts: {paths.prompts} is neither a prompts file nor a directory holding {PROMPTS_FILE}")
    prompts = [row["prompt"] for row in snapshot_rows(paths.prompts, PROMPTS_FILE)[0]]
    if not prompts:
        parser.error(f"--prompts: {paths.prompts} holds no training prompts")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sizes = RoundSizes(count_parameters(paths.policy), 0, 0, 0, len(prompts))
    args = defaults.for_stage(args, "ppo", sizes, log=logging.getLogger(__name__).info)
    with M.progress_bar("ppo", (M.OBJECTIVE_RLHF_REWARD, M.OBJECTIVE_KL)) as report:
        result = train_ppo(args, str(paths.policy), str(paths.ref_policy), str(paths.reward_model), prompts,
                           str(paths.out), on_progress=report)  # fmt: skip
    print(json.dumps(json_safe(result)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
