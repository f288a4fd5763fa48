"""Compare two policies on held-out prompts under one reward model: a round's `evaluate` stage.

Both policies are sampled exactly as PPO's rollouts sample (its temperature and response length,
top_k=0, top_p=1) with the same seed, so where the new policy has not moved they draw the same answers
and the score difference measures what training changed, not sampling noise. KL to the reference is
the per-answer sum of k1 = log p - log q over the sampled tokens, as PPO's objective/kl, but on
prompts PPO never trained on.

Beside the score, each side's answers are measured for what training may have traded away (trainer/
side_effects.py): length, EOS rate, distinct-1/2 on the decoded words, and the share of answers that
evaluate.evasion_patterns marks as refusals or evasions; the new policy's under the names in
trainer/contract.py, its parent's with OLD_SUFFIX.

The score gain comes with an interval: a paired bootstrap over prompts (each prompt's answers stay
together, since answers to one prompt are not independent), so the app's activation rule can ask
whether the new policy beats the old one with confidence, not only on average.
"""

import math
from collections.abc import Callable, Sequence

import torch

from trainer.contract import (
    DEFAULT_EVASION_PATTERNS,
    DISTINCT_1,
    DISTINCT_2,
    EOS_RATE,
    EVASION_RATE,
    OLD_SUFFIX,
    RESPONSE_LENGTH,
    SCORE_GAIN,
    SCORE_GAIN_HIGH,
    SCORE_GAIN_LOW,
    PPOArgs,
)
from trainer.models import (
    autocast,
    configure_cpu,
    last_token_scores,
    load_policy,
    load_scalar_model,
    load_tokenizer,
    resolve_device,
    scalar_forward,
    to_device,
)
from trainer.ppo import (
    encode_prompts,
    left_pad,
    prompt_length_limit,
    response_logits,
    sampling_config,
)
from trainer.ppo_math import last_true_indices
from trainer.side_effects import EvasionDetector, distinct_n
from trainer.tensor_utils import logprobs_from_logits, response_mask_from_eos, truncate_after_eos


@torch.inference_mode()
def compare_policies(
    *, old_dir: str, new_dir: str, ref_dir: str, reward_model_dir: str, prompts: list, args: PPOArgs,
    samples_per_prompt: int, batch_size: int, seed: int, on_progress: Callable[[int, int], None] | None = None,
    device: str = "auto", confidence: float = 0.95, evasion_patterns: Sequence[str] = DEFAULT_EVASION_PATTERNS,
) -> dict:  # fmt: skip
    """eval/* metrics: mean raw RM score of each policy, the gain with its `confidence` interval, KL to the
    reference, and each policy's side effects (answer length, EOS rate, distinct-1/2, the share of answers
    `evasion_patterns` marks).

    prompts: chat message lists; each is sampled samples_per_prompt times by each policy.
    device: "auto" (cuda when a GPU is visible, else cpu), "cpu", "cuda", ...; precision as args.precision.
    on_progress(done, total): called with the generation batches done of both policies, from (0, total) on.
    """
    configure_cpu()
    torch_device = torch.device(resolve_device(device))
    tokenizer = load_tokenizer(old_dir)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    detector = EvasionDetector(evasion_patterns)
    reward_model = to_device(load_scalar_model(reward_model_dir, pad), torch_device).eval()
    reference = to_device(load_policy(ref_dir, pad), torch_device).eval()
    # the same prompt truncation as PPO's rollouts, position limit included
    prompt_ids = encode_prompts(tokenizer, prompts, prompt_length_limit(args, reference))
    queries = [ids for ids in prompt_ids for _ in range(samples_per_prompt)]
    batches_per_policy = -(-len(queries) // batch_size)
    done = 0

    def batch_done() -> None:
        nonlocal done
        done += 1
        if on_progress is not None:
            on_progress(done, 2 * batches_per_policy)

    if on_progress is not None:
        on_progress(0, 2 * batches_per_policy)
    sides, texts = {}, {}
    for name, path in (("old", old_dir), ("new", new_dir)):
        policy = to_device(load_policy(path, pad), torch_device).eval()
        # sample exactly as PPO's rollouts do: nothing saved in the policy's own generation_config (say a
        # repetition_penalty or top_k) may change the distribution being compared
        policy.generation_config = sampling_config(args, eos, pad)
        torch.manual_seed(seed)
        with autocast(torch_device, args.precision):
            sides[name], texts[name] = sample_and_score(
                policy, reference, reward_model, queries, args, batch_size, tokenizer, on_batch=batch_done
            )
    old, new = sides["old"], sides["new"]
    # queries hold each prompt's samples side by side: one row per prompt
    per_prompt_gain = (new["scores"] - old["scores"]).double().cpu().view(len(prompts), samples_per_prompt).mean(1)
    gain_low, gain_high = paired_bootstrap_interval(per_prompt_gain, confidence=confidence, seed=seed)
    return {
        "eval/num_prompts": len(prompts),
        "eval/num_samples": len(queries),
        "eval/score_old": old["scores"].mean().item(),
        "eval/score_new": new["scores"].mean().item(),
        SCORE_GAIN: (new["scores"] - old["scores"]).mean().item(),
        SCORE_GAIN_LOW: gain_low,
        SCORE_GAIN_HIGH: gain_high,
        "eval/confidence": confidence,
        "eval/kl": new["kl"].mean().item(),
        "eval/kl_old": old["kl"].mean().item(),
        **side_effects(new, texts["new"], detector),
        **{key + OLD_SUFFIX: value for key, value in side_effects(old, texts["old"], detector).items()},
    }


def side_effects(side: dict[str, torch.Tensor], texts: list[str], detector: EvasionDetector) -> dict:
    """One policy's side-effect figures (trainer/contract.py SIDE_EFFECTS) from its samples and their text."""
    return {
        RESPONSE_LENGTH: side["length"].float().mean().item(),
        EOS_RATE: side["eos"].float().mean().item(),
        DISTINCT_1: distinct_n(texts, 1),
        DISTINCT_2: distinct_n(texts, 2),
        EVASION_RATE: detector.share(texts),
    }


def paired_bootstrap_interval(
    differences: torch.Tensor, *, confidence: float, seed: int, resamples: int = 10_000
) -> tuple[float, float]:
    """Percentile bootstrap interval of the mean of `differences` (one per prompt: new minus old score).

    Prompts are resampled with replacement; `resamples` means, in chunks so memory stays bounded for
    thousands of prompts. Fewer than 2 prompts bound nothing: (-inf, inf)."""
    n = differences.numel()
    if n < 2:
        return -math.inf, math.inf
    generator = torch.Generator().manual_seed(seed)
    chunk = max(1, 1_000_000 // n)
    means = torch.cat(
        [
            differences[torch.randint(n, (min(chunk, resamples - start), n), generator=generator)].mean(1)
            for start in range(0, resamples, chunk)
        ]
    )
    tail = (1 - confidence) / 2
    low, high = torch.quantile(means, torch.tensor([tail, 1 - tail], dtype=means.dtype)).tolist()
    return low, high


def sample_and_score(policy, reference, reward_model, queries: list[list[int]], args: PPOArgs, batch_size: int,
                     tokenizer, on_batch: Callable[[], None] | None = None,
                     ) -> tuple[dict[str, torch.Tensor], list[str]]:  # fmt: skip
    """Per sample: raw RM score, summed k1 KL to the reference, whether it ended with EOS, its length; and
    the answers' text (up to EOS, special tokens dropped). on_batch is called after each generation batch."""
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    generation_config = sampling_config(args, eos, pad)
    out: dict[str, list[torch.Tensor]] = {"scores": [], "kl": [], "eos": [], "length": []}
    texts: list[str] = []
    for start in range(0, len(queries), batch_size):
        ids, mask = left_pad(queries[start : start + batch_size], pad)  # (B, P)
        ids, mask = ids.to(policy.device), mask.to(policy.device)
        P = ids.size(1)
        generated = policy.generate(input_ids=ids, attention_mask=mask, generation_config=generation_config)
        responses = truncate_after_eos(generated[:, P:], eos, pad)  # (B, T)
        response_mask = response_mask_from_eos(responses, eos)  # (B, T) bool, up to and including EOS
        query_responses = torch.cat([ids, responses], 1)  # (B, P + T)
        attention_mask = torch.cat([mask, response_mask.long()], 1)  # (B, P + T)
        logits = response_logits(policy, query_responses, attention_mask, P, args.temperature)  # (B, T, V)
        ref_logits = response_logits(reference, query_responses, attention_mask, P, args.temperature)
        kl = logprobs_from_logits(logits, responses) - logprobs_from_logits(ref_logits, responses)  # (B, T)
        values = scalar_forward(reward_model, query_responses, attention_mask)  # (B, P + T)
        out["scores"].append(last_token_scores(values, P + last_true_indices(response_mask)))  # (B,)
        out["kl"].append(torch.where(response_mask, kl, 0.0).sum(1))
        out["eos"].append((responses == eos).any(1))
        out["length"].append(response_mask.sum(1))
        kept = [row[:n] for row, n in zip(responses.tolist(), response_mask.sum(1).tolist(), strict=True)]
        texts += tokenizer.batch_decode(kept, skip_special_tokens=True)
        if on_batch is not None:
            on_batch()
    return {k: torch.cat(v) for k, v in out.items()}, texts
