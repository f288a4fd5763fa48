"""Tiny offline models for trainer tests: a byte-level BPE tokenizer trained here and a GPT-2 built
from a config, saved once per session. Nothing touches the Hub.

The builders are plain functions so benchmarks can build bigger models the same way
(e.g. build_gpt2(dir, tokenizer, n_layer=4, n_embd=256)).
"""

import os
import random
import sys

import pytest
import torch

REPO_ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
if REPO_ROOT not in sys.path:  # lets `pytest tests/trainer` run without installing the package
    sys.path.insert(0, REPO_ROOT)

PAD, EOS = "<|pad|>", "<|endoftext|>"
CHAT_TEMPLATE = (
    "{% for message in messages %}<|{{ message['role'] }}|>{{ message['content'] }}\n{% endfor %}"
    "{% if add_generation_prompt %}<|assistant|>{% endif %}"
)

SUBJECTS = ["the cat", "a dog", "my friend", "the robot", "our team", "the teacher", "a bird", "the model"]
VERBS = ["likes", "sees", "builds", "reads", "wants", "finds", "moves", "writes"]
OBJECTS = ["a book", "the ball", "some water", "the code", "a song", "the door", "a letter", "the plan"]
POLITE = ["please", "thank you", "kindly", "with pleasure"]
RUDE = ["whatever", "no way", "go away", "not again"]  # same length range as POLITE
TOPICS = ["the weather", "cooking", "music", "a trip", "the garden", "numbers", "colors", "sports"]


def sentence(rng: random.Random) -> str:
    return f"{rng.choice(SUBJECTS)} {rng.choice(VERBS)} {rng.choice(OBJECTS)}"


def synthetic_corpus(n: int = 600, seed: int = 0) -> list[str]:
    rng = random.Random(seed)
    lines = [f"tell me about {t}" for t in TOPICS] + POLITE + RUDE
    for _ in range(n):
        lines.append(f"{rng.choice(POLITE + RUDE)}, {sentence(rng)}.")
    return lines


def build_tokenizer(out_dir: str, vocab_size: int = 512, corpus: list[str] | None = None):
    """Byte-level BPE trained on synthetic text; pad != eos, left padding, a chat template."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(
        vocab_size=vocab_size,
        special_tokens=[PAD, EOS, "<|user|>", "<|assistant|>", "<|system|>"],
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet(),
        show_progress=False,
    )
    tok.train_from_iterator(corpus or synthetic_corpus(), trainer=trainer)
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, pad_token=PAD, eos_token=EOS, bos_token=EOS, padding_side="left"
    )
    tokenizer.chat_template = CHAT_TEMPLATE
    tokenizer.save_pretrained(out_dir)
    return tokenizer


def build_gpt2(
    out_dir: str,
    tokenizer,
    n_layer: int = 2,
    n_embd: int = 32,
    n_head: int = 2,
    seed: int = 0,
    n_positions: int = 512,
) -> None:
    """Randomly initialised GPT-2 LM saved with its tokenizer (a stand-in for a policy checkpoint)."""
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    config = GPT2Config(
        vocab_size=len(tokenizer), n_positions=n_positions, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        bos_token_id=tokenizer.eos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )  # fmt: skip
    GPT2LMHeadModel(config).save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)


def preference_pairs(n: int, seed: int) -> list[dict]:
    """Clear synthetic preference: the chosen reply opens politely, the rejected one rudely.

    Both sides share the sentence and have the same length range, so the RM must learn which words
    are preferred rather than a length or position shortcut.
    """
    rng = random.Random(seed)
    pairs = []
    for _ in range(n):
        body = sentence(rng)
        pairs.append(
            {
                "prompt": [{"role": "user", "content": f"tell me about {rng.choice(TOPICS)}"}],
                "chosen": f"{rng.choice(POLITE)}, {body}.",
                "rejected": f"{rng.choice(RUDE)}, {body}.",
                "margin": 0.0,
            }
        )
    return pairs


def pytest_configure(config):
    config.addinivalue_line("markers", "slow: takes more than ~20 s (still runs in CI)")


@pytest.fixture(scope="session")
def tiny_policy_dir(tmp_path_factory) -> str:
    """A 2-layer, 32-dim GPT-2 policy directory (model + tokenizer), built once per session."""
    out_dir = str(tmp_path_factory.mktemp("tiny_policy"))
    build_gpt2(out_dir, build_tokenizer(out_dir))
    return out_dir


@pytest.fixture(scope="session")
def tiny_reward_dir(tiny_policy_dir, tmp_path_factory) -> str:
    """A reward model initialised from the tiny policy (random head, normalisation stats 0/1)."""
    from trainer.models import load_scalar_model, load_tokenizer

    out_dir = str(tmp_path_factory.mktemp("tiny_reward"))
    tokenizer = load_tokenizer(tiny_policy_dir)
    torch.manual_seed(0)
    model = load_scalar_model(tiny_policy_dir, tokenizer.pad_token_id)
    model.save_pretrained(out_dir)
    tokenizer.save_pretrained(out_dir)
    return out_dir


@pytest.fixture(scope="session")
def make_pairs():
    """preference_pairs(n, seed) as a fixture, so test modules need not import this conftest by name."""
    return preference_pairs


@pytest.fixture(scope="session")
def make_gpt2():
    """build_gpt2(out_dir, tokenizer, ...) as a fixture, for tests that need a differently shaped policy."""
    return build_gpt2
