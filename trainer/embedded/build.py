"""Build the embedded default policy offline: corpus -> BPE tokenizer -> small GPT-2.

Nothing can be downloaded, so prefloop trains its own starting policy from
the procedural corpus in `task.py`. Everything is seeded, so the same preset
and seed always give the same weights on the same machine.

    from trainer.embedded.build import build_policy
    metrics = build_policy(Path("prefloop-data/policy"), preset="default")

The result is a normal Hugging Face checkpoint directory (safetensors +
tokenizer + chat template + generation config) that loads with
AutoModelForCausalLM / AutoTokenizer.
"""

from __future__ import annotations

import json
import math
import os
import random
import time
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import cast

import torch
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from tqdm.auto import tqdm
from transformers import GenerationConfig, GPT2Config, GPT2LMHeadModel, PreTrainedTokenizerFast

from trainer.embedded import task

PAD, EOS = "<|pad|>", "<|endoftext|>"
SYSTEM, USER, ASSISTANT, END = "<|system|>", "<|user|>", "<|assistant|>", "<|end|>"
SPECIAL_TOKENS = [PAD, EOS, SYSTEM, USER, ASSISTANT, END]

# System/user turns end with <|end|>; the assistant turn ends with eos, so
# generation stops exactly where a reply ends. No whitespace between markers:
# the markers are single special tokens and spaces would only cost tokens.
CHAT_TEMPLATE = (
    "{%- for message in messages -%}"
    "{%- if message['role'] == 'assistant' -%}"
    "<|assistant|>{{ message['content'] }}<|endoftext|>"
    "{%- elif message['role'] in ['system', 'user'] -%}"
    "<|{{ message['role'] }}|>{{ message['content'] }}<|end|>"
    "{%- else -%}"
    "{{ raise_exception('unknown chat role: ' + message['role']) }}"
    "{%- endif -%}"
    "{%- endfor -%}"
    "{%- if add_generation_prompt -%}<|assistant|>{%- endif -%}"
)


@dataclass(frozen=True)
class Preset:
    vocab_size: int
    n_layer: int
    n_embd: int
    n_head: int
    n_positions: int
    steps: int
    batch_size: int
    lr: float
    warmup: int
    tokenizer_examples: int  # corpus slice the BPE merges are learned from
    threads: int  # torch intra-op threads, capped at the machine's CPU count


PRESETS = {
    # 1.5M parameters; about 4 minutes on 2 idle cores (one step: 169 ms with
    # 2 threads; the corpus of nine qualities averages 44 tokens an example,
    # the earlier one of four had 33 and took 123 ms a step). Deep and narrow
    # on purpose: at a fixed CPU budget, more steps of a 6x128 model gave more
    # readable samples (86% vs 76% error-free at temperature 1) than fewer
    # steps of a 4x192 one, and 4x256 was far behind both.
    "default": Preset(
        vocab_size=2048,
        n_layer=6,
        n_embd=128,
        n_head=4,
        n_positions=256,
        steps=1300,
        batch_size=32,
        lr=4e-3,
        warmup=50,
        tokenizer_examples=4000,
        threads=2,
    ),
    # just enough to exercise the whole pipeline in tests, a few seconds. One
    # thread: its ops are too small to split, and on a busy box (parallel
    # tests) a second OpenMP thread waiting for a core made it 7x slower.
    "test": Preset(
        vocab_size=512,
        n_layer=2,
        n_embd=64,
        n_head=2,
        n_positions=256,
        steps=40,
        batch_size=16,
        lr=3e-3,
        warmup=5,
        tokenizer_examples=500,
        threads=1,
    ),
}


# ---------------------------------------------------------------------------
# Tokenizer


def train_tokenizer(texts: list[str], vocab_size: int, max_length: int) -> PreTrainedTokenizerFast:
    """Byte-level BPE (GPT-2 style), so any text, including annotator edits, round-trips."""
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=SPECIAL_TOKENS,
        min_frequency=2,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(texts, trainer=trainer)
    return PreTrainedTokenizerFast(
        tokenizer_object=tok,
        eos_token=EOS,
        pad_token=PAD,  # distinct from eos so padding never masks a real end of reply
        additional_special_tokens=[SYSTEM, USER, ASSISTANT, END],
        padding_side="left",  # decoder-only generation pads on the left
        chat_template=CHAT_TEMPLATE,
        model_max_length=max_length,
    )


def encode_examples(tok: PreTrainedTokenizerFast, examples: list[task.Example]) -> list[tuple[list[int], int]]:
    """Token ids of each chat-rendered example, with the length of its prompt part."""
    prompts = [render(tok, e.prompt) for e in examples]
    fulls = [render(tok, e.prompt, e.response) for e in examples]
    prompt_ids = tok(prompts, add_special_tokens=False)["input_ids"]
    full_ids = tok(fulls, add_special_tokens=False)["input_ids"]
    # special tokens split the text, so the prompt's ids are a prefix of the full ids
    assert all(f[: len(p)] == p for p, f in zip(prompt_ids, full_ids, strict=True))
    return [(f, len(p)) for p, f in zip(prompt_ids, full_ids, strict=True)]


def render(tok: PreTrainedTokenizerFast, prompt: str, response: str | None = None) -> str:
    messages = [{"role": "user", "content": prompt}]
    if response is not None:
        messages.append({"role": "assistant", "content": response})
    text = tok.apply_chat_template(messages, tokenize=False, add_generation_prompt=response is None)
    return cast(str, text)  # a string when tokenize=False; the annotation covers the tokenizing modes too


# ---------------------------------------------------------------------------
# Training


def make_batch(rows: list[tuple[list[int], int]], pad_id: int) -> dict[str, torch.Tensor]:
    """Right-padded batch (positions then start at 0 for every row). Loss is on the
    response and its eos only: the prompts are random draws from a fixed grammar,
    and spending capacity on predicting them would not make the replies better."""
    width = max(len(ids) for ids, _ in rows)
    input_ids = torch.full((len(rows), width), pad_id)
    attention_mask = torch.zeros((len(rows), width), dtype=torch.long)
    labels = torch.full((len(rows), width), -100)
    for i, (ids, n_prompt) in enumerate(rows):
        input_ids[i, : len(ids)] = torch.tensor(ids)
        attention_mask[i, : len(ids)] = 1
        labels[i, n_prompt : len(ids)] = torch.tensor(ids[n_prompt:])
    return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}


def lr_at(step: int, preset: Preset) -> float:
    """Linear warmup, then cosine decay to 10% of the peak."""
    if step < preset.warmup:
        return preset.lr * (step + 1) / preset.warmup
    progress = (step - preset.warmup) / max(1, preset.steps - preset.warmup)
    return preset.lr * (0.1 + 0.45 * (1 + math.cos(math.pi * progress)))


def make_model(tok: PreTrainedTokenizerFast, preset: Preset) -> GPT2LMHeadModel:
    config = GPT2Config(
        vocab_size=len(tok),
        n_positions=preset.n_positions,
        n_embd=preset.n_embd,
        n_layer=preset.n_layer,
        n_head=preset.n_head,
        activation_function="gelu_pytorch_tanh",  # one fused kernel; "gelu_new" is several ops
        # every step sees fresh samples of the corpus, so there is nothing to overfit
        # and dropout would only slow learning down
        resid_pdrop=0.0,
        embd_pdrop=0.0,
        attn_pdrop=0.0,
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
    )
    return GPT2LMHeadModel(config)


def length_batches(data: list[tuple[list[int], int]], batch_size: int, seed: int) -> list[list[int]]:
    """Batches of row indices with similar lengths, in a seeded random order.

    Padding is pure wasted compute on CPU; sorting within windows of 16 batches
    cuts it by about a third while keeping batches mixed in content (the rows
    are independent draws already).
    """
    window = batch_size * 16
    batches = []
    for start in range(0, len(data), window):
        part = sorted(range(start, min(start + window, len(data))), key=lambda i: len(data[i][0]))
        batches += [part[i : i + batch_size] for i in range(0, len(part), batch_size)]
    random.Random(seed).shuffle(batches)
    return batches


def train(
    model: GPT2LMHeadModel, data: list[tuple[list[int], int]], preset: Preset, pad_id: int, seed: int, progress: bool
) -> list[float]:
    """One pass over `data`: every example is seen once, so the loss is a held-out loss too."""
    opt = torch.optim.AdamW(model.parameters(), lr=preset.lr, betas=(0.9, 0.95), weight_decay=0.01, fused=True)
    model.train()
    losses = []
    batches = length_batches(data, preset.batch_size, seed)
    bar = tqdm(batches, desc="embedded policy", disable=not progress)
    for step, rows in enumerate(bar):
        for group in opt.param_groups:
            group["lr"] = lr_at(step, preset)
        loss = model(**make_batch([data[i] for i in rows], pad_id)).loss
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        losses.append(loss.item())
        bar.set_postfix(loss=f"{losses[-1]:.3f}")
    model.eval()
    return losses


@contextmanager
def cpu_threads(n: int):
    """Set torch's intra-op threads for the build without leaving the process-wide setting changed."""
    before = torch.get_num_threads()
    torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(before)


# ---------------------------------------------------------------------------
# Entry points


def build_policy(out_dir: Path, preset: str = "default", seed: int = 0, progress: bool = True) -> dict:
    """Generate the corpus, train tokenizer and model, save a HF checkpoint into `out_dir`.

    Returns metrics: final_loss (mean of the last 10% of steps), seconds, n_params, n_examples, ...
    """
    cfg = PRESETS[preset]
    out_dir = Path(out_dir)
    start, cpu_start = time.perf_counter(), time.process_time()
    # the thread count changes float rounding, so it is fixed per preset, not
    # picked from the current load: same machine + preset + seed = same weights
    with cpu_threads(min(cfg.threads, os.cpu_count() or 1)):
        examples = task.make_corpus(cfg.steps * cfg.batch_size, seed=seed)
        tok = train_tokenizer(
            [t for e in examples[: cfg.tokenizer_examples] for t in (e.prompt, e.response)],
            cfg.vocab_size,
            cfg.n_positions,
        )
        data = encode_examples(tok, examples)
        assert max(len(ids) for ids, _ in data) <= cfg.n_positions, "corpus rows longer than n_positions"
        torch.manual_seed(seed)
        model = make_model(tok, cfg)
        losses = train(model, data, cfg, tok.pad_token_id, seed, progress)
    seconds, cpu_seconds = time.perf_counter() - start, time.process_time() - cpu_start

    model.generation_config = GenerationConfig(
        bos_token_id=tok.eos_token_id,
        eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id,
        max_new_tokens=cfg.n_positions // 2,  # replies are < 100 tokens; the default of 20 total would cut them
    )
    out_dir.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(out_dir)  # safetensors
    tok.save_pretrained(out_dir)

    tail = losses[-max(1, len(losses) // 10) :]
    metrics = {
        "preset": preset,
        "seed": seed,
        "final_loss": sum(tail) / len(tail),
        "seconds": seconds,
        "cpu_seconds": cpu_seconds,  # they differ when other processes share the cores
        "n_params": sum(p.numel() for p in model.parameters()),
        "n_examples": len(examples),
        "n_tokens": sum(len(ids) for ids, _ in data),
        "config": asdict(cfg),
    }
    (out_dir / "build_metrics.json").write_text(json.dumps(metrics, indent=2) + "\n")
    return metrics


def write_demo_prompts(path: Path, n: int = 200, seed: int = 0) -> None:
    """JSONL of training-distribution prompts for the annotation UI: {"prompt": ..., "tags": [family]}."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = (json.dumps({"prompt": p.text, "tags": [p.family]}) for p in task.sample_prompts(n, seed, "train"))
    path.write_text("".join(line + "\n" for line in lines))


def _main() -> None:
    import argparse

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("out_dir", type=Path)
    ap.add_argument("--preset", default="default", choices=sorted(PRESETS))
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    print(json.dumps(build_policy(args.out_dir, args.preset, args.seed), indent=2))


if __name__ == "__main__":
    _main()
