"""trainer.generate: loading a policy with clear errors, left-padded batched sampling, finish reasons."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from trainer import generate
from trainer.generate import SamplingParams
from trainer.models import ModelLoadError

OWLS = [{"role": "user", "content": "Tell me about owls."}]
LONG = [
    {"role": "system", "content": "Answer kindly, in one short paragraph, and stay on topic."},
    {"role": "user", "content": "How do I make pasta at home for a big family dinner?"},
]


@pytest.fixture(scope="module")
def policy(tiny_policy_dir):
    return generate.load_policy(str(tiny_policy_dir))


@pytest.fixture
def model_copy(tiny_policy_dir, tmp_path) -> Path:
    path = tmp_path / "model"
    shutil.copytree(tiny_policy_dir, path)
    return path


def edit_json(path: Path, **changes) -> None:
    data = json.loads(path.read_text())
    for key, value in changes.items():
        if value is None:
            data.pop(key, None)
        else:
            data[key] = value
    path.write_text(json.dumps(data))


def test_loads_with_left_padding_and_distinct_pad(policy):
    assert policy.tokenizer.padding_side == "left"
    assert policy.tokenizer.pad_token_id != policy.tokenizer.eos_token_id
    assert policy.eos_ids == {policy.tokenizer.eos_token_id}
    assert policy.context_length == 256 and str(policy.device) == "cpu"
    assert not policy.model.training


def test_missing_directory(tmp_path):
    with pytest.raises(FileNotFoundError, match="does not exist"):
        generate.load_policy(str(tmp_path / "nope"))


def test_weights_that_do_not_match_the_config(model_copy):
    edit_json(model_copy / "config.json", n_layer=1)
    with pytest.raises(ModelLoadError, match=r"the weights in .* do not match its config.json \(unexpected"):
        generate.load_policy(str(model_copy))
    edit_json(model_copy / "config.json", n_layer=3)
    with pytest.raises(ModelLoadError, match=r"do not match its config.json \(missing keys: transformer.h.2"):
        generate.load_policy(str(model_copy))
    edit_json(model_copy / "config.json", n_layer=2, vocab_size=600)
    wte = r"other shapes: transformer.wte.weight \[512, 64\] in the weights, \[600, 64\] in the config"
    with pytest.raises(ModelLoadError, match=wte):
        generate.load_policy(str(model_copy))


def test_corrupt_weights(model_copy):
    data = (model_copy / "model.safetensors").read_bytes()
    (model_copy / "model.safetensors").write_bytes(data[:1000])
    with pytest.raises(ModelLoadError, match="could not load a causal LM from"):
        generate.load_policy(str(model_copy))


def test_tokenizer_without_pad_token(model_copy):
    edit_json(model_copy / "tokenizer_config.json", pad_token=None)
    with pytest.raises(ModelLoadError, match="has no pad token. Add a dedicated one"):
        generate.load_policy(str(model_copy))


@pytest.mark.filterwarnings("ignore:tokenizer at .* pads with its EOS token")
def test_tokenizer_that_pads_with_eos(model_copy):
    edit_json(model_copy / "tokenizer_config.json", pad_token="<|endoftext|>")
    with pytest.raises(ModelLoadError, match="pads with its EOS token"):
        generate.load_policy(str(model_copy))


def test_tokenizer_larger_than_the_embedding(model_copy):
    # A consistent model whose vocabulary is smaller than the tokenizer's: token ids would overflow.
    from safetensors.torch import load_file, save_file

    weights = load_file(model_copy / "model.safetensors")
    weights["transformer.wte.weight"] = weights["transformer.wte.weight"][:100].clone()
    save_file(weights, model_copy / "model.safetensors", metadata={"format": "pt"})
    edit_json(model_copy / "config.json", vocab_size=100)
    with pytest.raises(ModelLoadError, match="has 512 tokens but the model's embedding has 100 rows"):
        generate.load_policy(str(model_copy))


def test_samples_have_finish_reasons_and_token_counts(policy):
    params = SamplingParams(temperature=1.0, top_p=0.95, max_new_tokens=12)
    samples = generate.generate(policy, [OWLS, LONG, OWLS], n_per_prompt=2, params=params, seed=3)
    assert [len(row) for row in samples] == [2, 2, 2]
    for sample in (s for row in samples for s in row):
        assert sample.finish_reason in ("eos", "length")
        if sample.finish_reason == "length":
            assert sample.token_count == 12
        else:
            assert 1 <= sample.token_count <= 12
    assert generate.generate(policy, [OWLS, LONG, OWLS], n_per_prompt=2, params=params, seed=3) == samples
    assert generate.generate(policy, [OWLS, LONG, OWLS], n_per_prompt=2, params=params, seed=4) != samples


def test_left_padding_does_not_change_what_a_prompt_gets(policy):
    # Near-zero temperature makes sampling greedy: a short prompt padded beside a long one must get the
    # same reply as alone (wrong padding side or position ids would change it).
    params = SamplingParams(temperature=1e-4, top_p=1.0, max_new_tokens=16)
    [[alone]] = generate.generate(policy, [OWLS], n_per_prompt=1, params=params, seed=0)
    [[padded], [_long]] = generate.generate(policy, [OWLS, LONG], n_per_prompt=1, params=params, seed=1)
    assert generate.prompt_lengths(policy, [OWLS, LONG])[0] < generate.prompt_lengths(policy, [LONG])[0]
    assert padded == alone


def test_reply_stops_at_eos_and_drops_special_tokens(policy):
    eos, pad = policy.tokenizer.eos_token_id, policy.tokenizer.pad_token_id
    hello = policy.tokenizer("hello", add_special_tokens=False)["input_ids"]
    ended = generate._sample(policy, [*hello, eos, pad, pad])
    assert ended == generate.Sample("hello", len(hello) + 1, "eos")
    assert generate._sample(policy, hello) == generate.Sample("hello", len(hello), "length")
    assert generate._sample(policy, [eos, pad]) == generate.Sample("", 1, "eos")


def test_fits_the_context(policy):
    assert generate.fits(policy, 200, 56) and not generate.fits(policy, 200, 57)


def test_save_policy_round_trips(policy, tmp_path):
    generate.save_policy(policy, str(tmp_path / "saved"))
    again = generate.load_policy(str(tmp_path / "saved"))
    assert again.tokenizer.pad_token_id == policy.tokenizer.pad_token_id
    assert again.tokenizer.chat_template == policy.tokenizer.chat_template
