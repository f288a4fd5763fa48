"""Exports as training libraries read them: `datasets.load_dataset("json", ...)` and the columns TRL's
RewardTrainer / DPOTrainer (and KTOTrainer) expect."""

from __future__ import annotations

import pytest
from datasets import Features, List, Value, load_dataset

MESSAGES = List({"content": Value("string"), "role": Value("string")})


def _load(client, headers, tmp_path, **params):
    response = client.get("/api/v1/export", params=params, headers=headers)
    assert response.status_code == 200
    path = tmp_path / "export.jsonl"
    path.write_bytes(response.content)
    return load_dataset("json", data_files=str(path), split="train", cache_dir=str(tmp_path / "cache"))


def _is_conversational_preference(row: dict) -> bool:
    # What trl.data_utils.is_conversational checks, plus the explicit-prompt shape: the prompt is a
    # chat ending with a user turn, chosen/rejected are the assistant's answer alone.
    return row["prompt"][-1]["role"] == "user" and all(
        len(row[k]) == 1 and row[k][0]["role"] == "assistant" for k in ("chosen", "rejected")
    )


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_trl_conversational_loads_with_the_preference_columns(client, world, admin_token, tmp_path):
    dataset = _load(client, admin_token, tmp_path, format="trl")
    assert dataset.num_rows == 6
    assert dataset.column_names[:3] == ["prompt", "chosen", "rejected"]
    assert dataset.features["prompt"] == MESSAGES
    assert dataset.features["chosen"] == MESSAGES and dataset.features["rejected"] == MESSAGES
    assert all(_is_conversational_preference(row) for row in dataset)
    metadata = dataset.features["metadata"]
    assert metadata["chosen_policy_version"] == Value("int64") and metadata["prompt_id"] == Value("int64")
    # Pass-through columns stay out of the trainers' way: only the three above are tokenized.
    pairs = dataset.select_columns(["prompt", "chosen", "rejected"])
    assert pairs.features == Features({"prompt": MESSAGES, "chosen": MESSAGES, "rejected": MESSAGES})


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_trl_standard_loads_as_strings(client, world, admin_token, tmp_path):
    dataset = _load(client, admin_token, tmp_path, format="trl", style="standard", aggregate="majority")
    assert {k: dataset.features[k] for k in ("prompt", "chosen", "rejected")} == {
        "prompt": Value("string"),
        "chosen": Value("string"),
        "rejected": Value("string"),
    }
    assert dataset[0]["chosen"] == "Blue." and dataset[0]["rejected"] == "Green."


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_kto_loads_with_prompt_completion_label(client, world, admin_token, tmp_path):
    dataset = _load(client, admin_token, tmp_path, format="kto")
    assert dataset.features["label"] == Value("bool")
    assert dataset.features["prompt"] == MESSAGES and dataset.features["completion"] == MESSAGES
    assert dataset["label"].count(True) == dataset["label"].count(False) == 6


@pytest.mark.slow
@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_trl_reward_and_dpo_trainers_train_on_the_export(client, world, admin_token, tmp_path):
    """The real thing: TRL's RewardTrainer and DPOTrainer prepare (chat template, tokenize) and take a
    step on the exported file, metadata column included. Tiny models from config; ~20 s, mostly imports."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import (
        GPT2Config,
        GPT2ForSequenceClassification,
        GPT2LMHeadModel,
        PreTrainedTokenizerFast,
    )
    from trl import DPOConfig, DPOTrainer, RewardConfig, RewardTrainer

    dataset = _load(client, admin_token, tmp_path, format="trl")
    word_level = Tokenizer(models.WordLevel({"[UNK]": 0, "[PAD]": 1, "[EOS]": 2}, unk_token="[UNK]"))
    word_level.pre_tokenizer = pre_tokenizers.Whitespace()
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=word_level, unk_token="[UNK]", pad_token="[PAD]", eos_token="[EOS]"
    )
    tokenizer.chat_template = (
        "{% for m in messages %}{{ m['role'] }}: {{ m['content'] }}\n{% endfor %}"
        "{% if add_generation_prompt %}assistant:{% endif %}"
    )
    config = GPT2Config(
        vocab_size=3,
        n_layer=1,
        n_embd=8,
        n_head=2,
        n_positions=128,
        pad_token_id=1,
        eos_token_id=2,
        bos_token_id=2,
        num_labels=1,
    )
    common = {
        "output_dir": str(tmp_path / "out"),
        "use_cpu": True,
        "max_steps": 1,
        "report_to": [],
        "per_device_train_batch_size": 2,
        "save_strategy": "no",
    }
    reward = RewardTrainer(
        model=GPT2ForSequenceClassification(config),
        args=RewardConfig(**common),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    assert reward.train().global_step == 1
    dpo = DPOTrainer(
        model=GPT2LMHeadModel(config),
        ref_model=GPT2LMHeadModel(config),
        args=DPOConfig(**common),
        train_dataset=dataset,
        processing_class=tokenizer,
    )
    assert dpo.train().global_step == 1
