"""Loading helpers for the four RLHF models (policy, reference, reward, value) and their tokenizer.

Every model is a plain Hugging Face model loaded with `from_pretrained` and saved with
`save_pretrained`, so any directory we write opens in transformers, TRL or vLLM as is:
  * policy / reference: AutoModelForCausalLM.
  * reward / value: AutoModelForSequenceClassification with num_labels=1, whose `score` head is applied
    to every position (value model) or read at the last real token (reward model).
Reward normalisation (mean/std of RM scores on policy samples) travels in the RM's config.json under
REWARD_MEAN_KEY / REWARD_STD_KEY, like OpenRLHF's `normalize_reward` stats and N+'s `config.bias`.
"""

import contextlib
import os
import warnings

import torch
from torch.nn.attention import SDPBackend, sdpa_kernel
from transformers import (
    AutoConfig,
    AutoModelForCausalLM,
    AutoModelForSequenceClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)
from transformers.activations import GELUTanh, NewGELUActivation

from trainer.contract import PRECISIONS

REWARD_MEAN_KEY = "prefloop_reward_mean"
REWARD_STD_KEY = "prefloop_reward_std"

# Used only when a tokenizer ships without a chat template: plain "role: text" turns. It is saved
# with every model we write, so sampler, RM and PPO keep rendering prompts identically.
FALLBACK_CHAT_TEMPLATE = (
    "{% for message in messages %}{{ message['role'] }}: {{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}assistant: {% endif %}"
)


class ModelLoadError(RuntimeError):
    """A model or tokenizer directory exists but could not be loaded (corrupt or incomplete)."""


def configure_cpu(num_threads: int | None = None) -> int:
    """Set up this process's CPU math for training; returns the thread count used.

    Denormal floats are flushed to zero: softmax and GELU outputs of strongly negative inputs underflow
    into denormals, which x86 CPUs compute in slow microcode (TensorFlow flushes them by default too;
    a PPO update on the benchmark model ran ~5 % faster). It is set before the thread count because
    torch's worker threads copy the floating-point mode of the thread that starts them. Threads: every
    core this process may run on (cgroup/affinity aware) unless num_threads says otherwise.
    """
    torch.set_flush_denormal(True)
    n = num_threads or len(os.sched_getaffinity(0))
    torch.set_num_threads(n)
    return n


def resolve_device(device: str) -> str:
    """ "auto" -> "cuda" when a GPU is visible, else "cpu"; anything else ("cpu", "cuda:1") as given."""
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    return device


def check_precision(precision: str, device: torch.device | None = None) -> None:
    """Refuse an unknown precision; warn when bf16 is asked of a CPU that can only emulate it."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}; got {precision!r}")
    if precision == "bf16" and device is not None and device.type == "cpu" and not cpu_has_native_bf16():
        warnings.warn(
            "precision bf16 on a CPU without native bf16 (AVX512-BF16 or AMX): it is emulated and runs "
            "3-4x slower than fp32; use precision fp32 or auto on this machine",
            stacklevel=2,
        )


def cpu_has_native_bf16() -> bool:
    """True when this CPU multiplies bf16 in hardware (AVX512-BF16 or AMX); elsewhere bf16 is emulated."""
    return torch.cpu._is_avx512_bf16_supported() or torch.cpu._is_amx_tile_supported()


@contextlib.contextmanager
def autocast(device: torch.device, precision: str):
    """Mixed precision for forward passes (wrap forward passes only): under bf16 autocast, matmuls run in
    bf16 while weights, gradients and optimizer state stay fp32 (TRL's bf16=True).

    precision "auto": bf16 on CUDA, fp32 on CPU (every result exactly fp32, the same on any CPU);
    "bf16": bf16 on any device, worth it on CPUs with native bf16 (`cpu_has_native_bf16`: a PPO update
    of the benchmark model ran ~1.3x faster), 3-4x slower where it is emulated; "fp32": never.
    """
    enabled = precision == "bf16" or (precision == "auto" and device.type == "cuda")
    # In bf16 on CPU, the flash-attention kernel's backward took 7x its forward (a fifth of a reward-model
    # step); the math kernel's plain matmuls do not: RM steps and PPO updates ran ~10 % faster with it.
    # The kernel is chosen in the forward pass, so the backward outside this context follows it.
    cpu_bf16 = enabled and device.type == "cpu"
    attention = sdpa_kernel([SDPBackend.MATH]) if cpu_bf16 else contextlib.nullcontext()
    with torch.autocast(device.type, dtype=torch.bfloat16, enabled=enabled), attention:
        yield


def _check_local_dir(path: str, what: str) -> None:
    """Turn the usual 'not a model directory' cases into errors that name the path."""
    looks_local = os.path.isabs(path) or path.startswith((".", "~")) or os.path.exists(path)
    if not looks_local:
        return  # a Hub id such as "org/name": from_pretrained resolves it
    if not os.path.isdir(path):
        raise FileNotFoundError(f"{what} directory {path!r} does not exist")
    if not os.path.isfile(os.path.join(path, "config.json")) and what != "tokenizer":
        raise ModelLoadError(f"{what} directory {path!r} has no config.json; is it a save_pretrained dir?")


def load_tokenizer(path: str, padding_side: str = "left") -> PreTrainedTokenizerBase:
    """Tokenizer with a dedicated pad token, left padding (for generation) and a chat template.

    Raises ValueError when the tokenizer has no pad token: padding with EOS masks the EOS during
    training and the policy never learns to stop (N implementation details, #2).
    """
    _check_local_dir(path, "tokenizer")
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, padding_side=padding_side)
    except Exception as e:  # re-raised with the path: nothing is swallowed
        raise ModelLoadError(f"could not load a tokenizer from {path!r}: {e}") from e
    if tokenizer.pad_token_id is None:
        raise ValueError(
            f"tokenizer at {path!r} has no pad token. Add a dedicated one (not EOS) and save both: "
            "tokenizer.add_special_tokens({'pad_token': '[PAD]'}); "
            "model.resize_token_embeddings(len(tokenizer)); "
            "model.config.pad_token_id = tokenizer.pad_token_id; "
            "tokenizer.save_pretrained(dir); model.save_pretrained(dir)"
        )
    if tokenizer.eos_token_id is None:
        raise ValueError(f"tokenizer at {path!r} has no EOS token; PPO needs one to end responses")
    if tokenizer.pad_token_id == tokenizer.eos_token_id:
        warnings.warn(
            f"tokenizer at {path!r} pads with its EOS token; prefloop masks by EOS position so training "
            "still works, but other tools may mask the EOS. Prefer a dedicated pad token.",
            stacklevel=2,
        )
    if tokenizer.chat_template is None:
        warnings.warn(f"tokenizer at {path!r} has no chat template; using plain 'role: text' turns", stacklevel=2)
        tokenizer.chat_template = FALLBACK_CHAT_TEMPLATE
    return tokenizer


def to_device(model: PreTrainedModel, device: torch.device) -> PreTrainedModel:
    """`model.to(device)`. transformers wraps PreTrainedModel.to with functools.wraps, whose typeshed type
    (`_Wrapped`) does not bind `self`: a checker reads the device as the model argument."""
    return model.to(device)  # type: ignore[arg-type]


def disable_dropout(model: torch.nn.Module) -> None:
    """Set every dropout probability to 0: dropout makes the PPO ratio != 1 on identical weights
    and the RM scores noisy (N implementation details, #11; TRL `disable_dropout_in_model`)."""
    for module in model.modules():
        if isinstance(module, torch.nn.Dropout):
            module.p = 0.0


def use_fused_gelu(model: torch.nn.Module) -> None:
    """Swap GPT-2's Python tanh-GELU ("gelu_new", ~5 elementwise kernels each way) for PyTorch's fused
    kernel of the same formula (transformers' GELUTanh: "equivalent to NewGELU ... but much faster").

    Measured -20 to -28% CPU time per RM training step on a 4-layer/256-dim GPT-2. Only the in-memory
    module changes: config.json still says gelu_new, so saved models are untouched.
    """
    for module in model.modules():
        for name, child in module.named_children():
            if isinstance(child, NewGELUActivation):
                setattr(module, name, GELUTanh())


def load_checked(auto_class, path: str, what: str, may_lack: str | None = None, **kwargs):
    """`auto_class.from_pretrained(path)` that refuses weights which do not match the config.

    Without the check, a tensor missing from the file (a truncated copy, a renamed layer) is silently
    randomly initialised and training starts from noise. Every key must be present with its configured
    shape and no stored key may go unused, except: keys starting with `may_lack` may be missing (a new
    head); when one is, keys outside the base model (the LM head of a policy loaded as a reward model)
    may be left unused. Returns (model, sorted missing keys that were allowed).
    """
    try:
        # mismatched shapes are collected (not raised) so the error below can name all of them
        model, info = auto_class.from_pretrained(path, output_loading_info=True, ignore_mismatched_sizes=True, **kwargs)
    except Exception as e:  # re-raised with the path: nothing is swallowed
        raise ModelLoadError(f"could not load a {what} from {path!r}: {e}") from e
    allowed_missing = sorted(k for k in info["missing_keys"] if may_lack and k.startswith(may_lack))
    base_prefix = f"{model.base_model_prefix}."
    problems = {
        "missing keys": sorted(set(info["missing_keys"]) - set(allowed_missing)),
        "unexpected keys": sorted(
            k for k in info["unexpected_keys"] if not (allowed_missing and not k.startswith(base_prefix))
        ),
        "other shapes": [f"{key} {list(saved)} in the weights, {list(expected)} in the config"
                         for key, saved, expected in sorted(info["mismatched_keys"])],
    }  # fmt: skip
    if any(problems.values()):
        details = "; ".join(
            f"{kind}: {', '.join(items[:3])}" + (" ..." if len(items) > 3 else "")
            for kind, items in problems.items()
            if items
        )
        raise ModelLoadError(f"the weights in {path!r} do not match its config.json ({details})")
    return model, allowed_missing


def load_policy(path: str, pad_token_id: int | None = None, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """Causal LM from a local save_pretrained dir (or a Hub id), dropout disabled, fused GELU.
    Raises ModelLoadError when the weights do not match the config (see load_checked)."""
    _check_local_dir(path, "policy")
    model, _ = load_checked(AutoModelForCausalLM, path, "causal LM", dtype=dtype)
    if pad_token_id is not None:
        model.config.pad_token_id = pad_token_id
        model.generation_config.pad_token_id = pad_token_id
    disable_dropout(model)
    use_fused_gelu(model)
    return model


def load_scalar_model(path: str, pad_token_id: int, dtype: torch.dtype = torch.float32) -> PreTrainedModel:
    """Reward or value model: AutoModelForSequenceClassification(num_labels=1), dropout off, fused GELU.

    From a policy dir (reward model init) the `score` head is new; it is initialised N(0, 1/sqrt(H+1))
    with the N+ reference (detail #7) instead of HF's default std 0.02. From a reward model dir (value
    init, as in TRL and N+) every weight is loaded, head included. Any other missing, unused or
    mis-shaped weight raises ModelLoadError (see load_checked).
    """
    _check_local_dir(path, "reward/value model")
    what = "sequence-classification model"
    try:
        saved_as = AutoConfig.from_pretrained(path).architectures or []
    except Exception as e:  # re-raised with the path
        raise ModelLoadError(f"could not load a {what} from {path!r}: {e}") from e
    # only a policy dir may lack the head; a reward model dir without one is a broken copy
    from_policy = not any(name.endswith("ForSequenceClassification") for name in saved_as)
    model, new_keys = load_checked(
        AutoModelForSequenceClassification,
        path,
        what,
        may_lack="score." if from_policy else None,
        num_labels=1,
        dtype=dtype,
    )
    head = _score_head(model)
    if new_keys:
        hidden_size = model.config.hidden_size
        torch.nn.init.normal_(head.weight, std=1 / (hidden_size + 1) ** 0.5)
        if head.bias is not None:
            torch.nn.init.zeros_(head.bias)
    model.config.pad_token_id = pad_token_id  # HF's own pooling refuses batches without it
    disable_dropout(model)
    use_fused_gelu(model)
    return model


def _score_head(model: PreTrainedModel) -> torch.nn.Linear:
    head = getattr(model, "score", None)
    if not isinstance(head, torch.nn.Linear):
        raise ValueError(f"{type(model).__name__} has no linear `score` head; use a decoder-only model")
    return head


def max_positions(model: PreTrainedModel) -> int:
    """Longest sequence the model's position embeddings cover (effectively unbounded for RoPE models)."""
    return getattr(model.config, "max_position_embeddings", None) or 1_000_000


def position_ids_from_mask(attention_mask: torch.Tensor) -> torch.Tensor:
    """Positions that ignore left padding: 0 at each row's first real token (N detail #3). (B, T)."""
    return (attention_mask.long().cumsum(-1) - 1).clamp(min=0)


def scalar_forward(
    model: PreTrainedModel, input_ids: torch.Tensor, attention_mask: torch.Tensor | None
) -> torch.Tensor:
    """Score head applied at every position of a reward/value model: (B, T) -> (B, T).

    attention_mask=None is allowed for right-padded batches: with causal attention no real token can
    see the padding after it, and skipping the mask lets SDPA use its fast causal kernel.
    """
    position_ids = None if attention_mask is None else position_ids_from_mask(attention_mask)
    hidden = model.base_model(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).last_hidden_state  # (B, T, H)
    return _score_head(model)(hidden).squeeze(-1).float()  # (B, T); fp32 even under bf16 autocast


def last_token_scores(values: torch.Tensor, last_indices: torch.Tensor) -> torch.Tensor:
    """values[b, last_indices[b]]: the RM score read at each row's last real token. (B, T) -> (B,)."""
    return values[torch.arange(values.size(0), device=values.device), last_indices]


def reward_norm_stats(model: PreTrainedModel) -> tuple[float, float]:
    """(mean, std) stored by train_reward_model; (0, 1) for a reward model saved without them."""
    return getattr(model.config, REWARD_MEAN_KEY, 0.0), getattr(model.config, REWARD_STD_KEY, 1.0)


def render_prompt_ids(tokenizer: PreTrainedTokenizerBase, messages: list[dict] | str) -> list[int]:
    """Token ids of a prompt rendered with the chat template, ending with the assistant header.

    A bare string is treated as one user message. Responses are appended as token ids by the caller
    (response tokens + EOS), so the reward model is trained on exactly the token layout PPO scores.
    """
    if isinstance(messages, str):
        messages = [{"role": "user", "content": messages}]
    text = tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True)
    return tokenizer(text, add_special_tokens=False)["input_ids"]
