"""Small tensor helpers shared by the reward model and PPO code.

Conventions (same as the N+ reference code, vwxyzjn/summarize_from_feedback_details):
  * B = batch, T = time (tokens), V = vocabulary.
  * A *mask* is a bool (or 0/1) tensor broadcastable to the values; True marks a real token.
  * Responses are right-padded: a response mask is True on a prefix of each row.
"""

import torch
import torch.nn.functional as F

# Logprob written at padded positions, so a masking bug shows up as an obviously wrong number
# instead of silently looking like a likely token (N+ reference `INVALID_LOGPROB = 1.0`).
INVALID_LOGPROB = 1.0


def masked_mean(values: torch.Tensor, mask: torch.Tensor, dim: int | None = None) -> torch.Tensor:
    """Mean of `values` over positions where `mask` is True.

    dim=None reduces everything to a scalar. With a `dim`, a row whose mask is all False gives NaN
    (0/0); callers that can meet empty rows must handle that.
    """
    mask = mask.to(values.dtype)
    if dim is None:
        return (values * mask).sum() / mask.sum()
    return (values * mask).sum(dim) / mask.sum(dim)


def masked_var(values: torch.Tensor, mask: torch.Tensor, unbiased: bool = True) -> torch.Tensor:
    """Variance of `values` over the masked positions (scalar).

    unbiased=True applies Bessel's correction n / (n - 1) like torch.var and TRL; it needs at least
    two masked positions, otherwise a ValueError says what to change (N+ reference wording).
    """
    mean = masked_mean(values, mask)
    variance = masked_mean((values - mean) ** 2, mask)
    if unbiased:
        mask_sum = mask.sum()
        if mask_sum == 0:
            raise ValueError(
                "The sum of the mask is zero, which can happen when `mini_batch_size=1`; "
                "try increase the `mini_batch_size` or `gradient_accumulation_steps`"
            )
        if mask_sum == 1:
            raise ValueError(
                "The sum of the mask is one, which can cause a division by zero in the unbiased "
                "variance; try increase the `mini_batch_size` or `gradient_accumulation_steps`"
            )
        variance = variance * (mask_sum / (mask_sum - 1))
    return variance


def masked_whiten(values: torch.Tensor, mask: torch.Tensor, shift_mean: bool = True) -> torch.Tensor:
    """(values - mean) / std over the masked positions; masked-out positions are returned as 0.

    shift_mean=False keeps the original mean (only rescales), which is how rewards are whitened in
    TRL/N+ so that the sign of the reward survives. Uses the unbiased variance (see masked_var).
    """
    mean, var = masked_mean(values, mask), masked_var(values, mask)
    whitened = (values - mean) * torch.rsqrt(var + 1e-8)
    if not shift_mean:
        whitened = whitened + mean
    return torch.where(mask.bool(), whitened, torch.zeros_like(whitened))


def first_true_indices(bools: torch.Tensor, dtype: torch.dtype = torch.long) -> torch.Tensor:
    """Index of the first True along the last dim; rows without any True get the row length.

    (B, T) -> (B,). Example: [[F, T, T], [F, F, F]] -> [1, 3].
    """
    row_len = bools.size(-1)
    zero_or_index = row_len * (~bools).to(dtype) + torch.arange(row_len, dtype=dtype, device=bools.device)
    return torch.min(zero_or_index, dim=-1).values


def truncate_after_eos(responses: torch.Tensor, eos_token_id: int, pad_token_id: int) -> torch.Tensor:
    """Keep each response up to and including its first EOS; every later token becomes pad.

    (B, T) -> (B, T). Rows without EOS are returned unchanged (they are penalised elsewhere).
    """
    eos_idx = first_true_indices(responses == eos_token_id).unsqueeze(-1)  # (B, 1)
    idxs = torch.arange(responses.size(1), device=responses.device).view(1, -1)  # (1, T)
    return torch.masked_fill(responses, idxs > eos_idx, pad_token_id)


def response_mask_from_eos(responses: torch.Tensor, eos_token_id: int) -> torch.Tensor:
    """True on the real tokens of each right-padded response: up to and including the first EOS.

    (B, T) -> (B, T) bool. Computed from EOS position, never from `token == pad`, so it stays correct
    even for tokenizers whose pad token equals EOS. Rows without EOS are all True.
    """
    eos_idx = first_true_indices(responses == eos_token_id).unsqueeze(-1)  # (B, 1)
    idxs = torch.arange(responses.size(1), device=responses.device).view(1, -1)  # (1, T)
    return idxs <= eos_idx


def logprobs_from_logits(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """log softmax(logits)[label] for every position, without materialising the full log-softmax.

    logits (B, T, V), labels (B, T) -> (B, T). Temperature scaling is the caller's job.
    """
    label_logits = torch.gather(logits, -1, labels.unsqueeze(-1)).squeeze(-1)  # (B, T)
    return label_logits - torch.logsumexp(logits, dim=-1)


def entropy_from_logits(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the categorical distribution softmax(logits): (B, T, V) -> (B, T)."""
    probs = F.softmax(logits, dim=-1)
    return torch.logsumexp(logits, dim=-1) - (probs * logits).sum(-1)
