"""Batched sampling from a policy version: the sampler's torch side.

    policy = load_policy("prefloop-data/registry/policy/v0001")
    samples = generate(policy, [[{"role": "user", "content": "Tell me about owls."}]],
                       n_per_prompt=2, params=SamplingParams(1.0, 1.0, 128), seed=0)

Prompts are rendered with the tokenizer's chat template exactly as the reward model and PPO render them
(trainer.models.render_prompt_ids), left-padded (decoder-only models continue from the right edge), and
sampled with top_k disabled so temperature and top_p mean what they say. Each completion stops at its
EOS; the batch runs until every row has stopped or hit max_new_tokens.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import cast

import torch
from transformers import (
    AutoModelForCausalLM,
    GenerationConfig,
    GenerationMixin,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from trainer.models import (
    ModelLoadError,
    disable_dropout,
    load_checked,
    load_tokenizer,
    render_prompt_ids,
    resolve_device,
)


@dataclass(frozen=True)
class SamplingParams:
    temperature: float
    top_p: float
    max_new_tokens: int

    def as_dict(self) -> dict:
        return {**asdict(self), "top_k": 0, "do_sample": True}


@dataclass(frozen=True)
class Sample:
    text: str
    # Tokens the model produced, its EOS included (padding after it is not).
    token_count: int
    # "eos" when the model ended the reply itself, "length" when max_new_tokens cut it off.
    finish_reason: str


@dataclass
class LoadedPolicy:
    path: str
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    eos_ids: frozenset[int]

    @property
    def device(self) -> torch.device:
        return self.model.device

    @property
    def context_length(self) -> int | None:
        return getattr(self.model.config, "max_position_embeddings", None)


def load_policy(path_or_id: str, device: str = "cpu", dtype: torch.dtype | str | None = None) -> LoadedPolicy:
    """A causal LM and its tokenizer from a local directory or a Hub id, checked for what sampling and
    PPO need. Raises ModelLoadError (FileNotFoundError for a missing directory) with a message that says
    what is wrong: weights that do not match the config (trainer.models.load_checked), no pad token,
    pad == EOS, vocabulary overflow.
    """
    device = resolve_device(device)
    if dtype is None:
        dtype = (
            torch.float32
            if device == "cpu"
            else (torch.bfloat16 if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else torch.float16)
        )
    try:
        tokenizer = load_tokenizer(path_or_id, padding_side="left")
    except ValueError as exc:
        raise ModelLoadError(str(exc)) from exc
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        raise ModelLoadError(
            f"tokenizer at {path_or_id!r} pads with its EOS token, so padding could not be told from a reply "
            "that ended. Add a dedicated pad token: tokenizer.add_special_tokens({'pad_token': '<|pad|>'}); "
            "model.resize_token_embeddings(len(tokenizer)); then save both with save_pretrained."
        )
    model, _ = load_checked(AutoModelForCausalLM, path_or_id, "causal LM", dtype=dtype)
    rows = model.get_input_embeddings().num_embeddings
    if len(tokenizer) > rows:
        raise ModelLoadError(
            f"tokenizer at {path_or_id!r} has {len(tokenizer)} tokens but the model's embedding has {rows} "
            "rows; call model.resize_token_embeddings(len(tokenizer)) and save again"
        )
    eos = model.generation_config.eos_token_id
    eos_ids = frozenset(eos if isinstance(eos, list) else [] if eos is None else [eos])
    eos_ids |= {tokenizer.eos_token_id}
    disable_dropout(model)
    model.eval().to(device)
    return LoadedPolicy(path=str(path_or_id), model=model, tokenizer=tokenizer, eos_ids=eos_ids)


def save_policy(policy: LoadedPolicy, out_dir: str) -> None:
    """Write model and tokenizer as a Hugging Face directory (safetensors)."""
    policy.model.save_pretrained(out_dir)
    policy.tokenizer.save_pretrained(out_dir)


def prompt_lengths(policy: LoadedPolicy, prompts: list[list[dict]]) -> list[int]:
    """Token count of each chat-rendered prompt, to leave out prompts the context cannot hold."""
    return [len(render_prompt_ids(policy.tokenizer, messages)) for messages in prompts]


def fits(policy: LoadedPolicy, prompt_length: int, max_new_tokens: int) -> bool:
    limit = policy.context_length
    return limit is None or prompt_length + max_new_tokens <= limit


@torch.inference_mode()
def generate(
    policy: LoadedPolicy, prompts: list[list[dict]], *, n_per_prompt: int, params: SamplingParams, seed: int
) -> list[list[Sample]]:
    """n_per_prompt samples for each prompt (chat messages), in one batch of len(prompts) * n rows."""
    ids = [render_prompt_ids(policy.tokenizer, messages) for messages in prompts for _ in range(n_per_prompt)]
    batch = policy.tokenizer.pad({"input_ids": ids}, padding=True, return_tensors="pt").to(policy.device)
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
    # Every AutoModelForCausalLM class mixes in GenerationMixin; PreTrainedModel, the loader's type, does not.
    generator = cast(GenerationMixin, policy.model)
    output = generator.generate(**batch, generation_config=config)  # (B*n, T_prompt + T_new)
    new_tokens = output[:, batch["input_ids"].shape[1] :].tolist()
    samples = [_sample(policy, row) for row in new_tokens]
    return [samples[i * n_per_prompt : (i + 1) * n_per_prompt] for i in range(len(prompts))]


def _sample(policy: LoadedPolicy, tokens: list[int]) -> Sample:
    end = next((i for i, t in enumerate(tokens) if t in policy.eos_ids), None)
    reply = tokens if end is None else tokens[:end]
    # One sequence decodes to one string; decode's annotation covers batches of sequences too.
    text = cast(str, policy.tokenizer.decode(reply, skip_special_tokens=True))
    if end is None:
        return Sample(text=text, token_count=len(tokens), finish_reason="length")
    return Sample(text=text, token_count=end + 1, finish_reason="eos")
