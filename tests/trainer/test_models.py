"""Model loading refuses weight files that do not match their config.json, in every loader.

A tensor missing from a checkpoint would otherwise be randomly initialised without a word, and a
round would train (and publish) a model that silently starts from noise.
"""

import shutil
import warnings

import pytest
import torch
from safetensors.torch import load_file, save_file

from trainer import generate, models
from trainer.models import (
    ModelLoadError,
    autocast,
    check_precision,
    configure_cpu,
    load_policy,
    load_scalar_model,
    load_tokenizer,
    resolve_device,
)

DELETED = "transformer.h.1.mlp.c_fc.weight"


def _copy(src: str, dst) -> str:
    shutil.copytree(src, dst)
    return str(dst)


def _edit_weights(model_dir: str, edit) -> None:
    """Rewrite model.safetensors after `edit(tensors)` changed the dict in place."""
    path = f"{model_dir}/model.safetensors"
    tensors = load_file(path)
    edit(tensors)
    save_file(tensors, path, metadata={"format": "pt"})


def _policy_loaders():
    return {
        "models.load_policy": lambda path: load_policy(path),
        "generate.load_policy": lambda path: generate.load_policy(path),
        "models.load_scalar_model": lambda path: load_scalar_model(path, pad_token_id=0),
    }


@pytest.mark.parametrize("loader", sorted(_policy_loaders()))
def test_a_policy_with_a_deleted_tensor_is_refused_by_every_loader(tiny_policy_dir, tmp_path, loader):
    broken = _copy(tiny_policy_dir, tmp_path / "policy")
    _edit_weights(broken, lambda t: t.pop(DELETED))
    with pytest.raises(ModelLoadError, match=rf"do not match its config.json \(missing keys: {DELETED}\)"):
        _policy_loaders()[loader](broken)


@pytest.mark.parametrize("loader", sorted(_policy_loaders()))
def test_a_policy_with_a_mis_shaped_tensor_is_refused_by_every_loader(tiny_policy_dir, tmp_path, loader):
    broken = _copy(tiny_policy_dir, tmp_path / "policy")
    _edit_weights(broken, lambda t: t.update({DELETED: torch.zeros(3, 3)}))
    shapes = rf"other shapes: {DELETED} \[3, 3\] in the weights, \[32, 128\] in the config"
    with pytest.raises(ModelLoadError, match=shapes):
        _policy_loaders()[loader](broken)


@pytest.mark.parametrize("loader", sorted(_policy_loaders()))
def test_a_policy_with_an_unused_tensor_is_refused_by_every_loader(tiny_policy_dir, tmp_path, loader):
    broken = _copy(tiny_policy_dir, tmp_path / "policy")
    _edit_weights(broken, lambda t: t.update({"transformer.h.9.attn.c_attn.weight": torch.zeros(2, 2)}))
    with pytest.raises(ModelLoadError, match=r"unexpected keys: transformer.h.9.attn.c_attn.weight"):
        _policy_loaders()[loader](broken)


def test_a_reward_model_with_a_deleted_tensor_is_refused(tiny_reward_dir, tmp_path):
    broken = _copy(tiny_reward_dir, tmp_path / "reward")
    _edit_weights(broken, lambda t: t.pop(DELETED))
    with pytest.raises(ModelLoadError, match=rf"missing keys: {DELETED}"):
        load_scalar_model(broken, pad_token_id=0)


def test_a_reward_model_without_its_head_is_refused(tiny_reward_dir, tmp_path):
    """Only a policy dir may lack the score head (it is new there); a reward model dir lacking it would
    silently get a random head and PPO would optimise noise."""
    broken = _copy(tiny_reward_dir, tmp_path / "reward")
    _edit_weights(broken, lambda t: t.pop("score.weight"))
    with pytest.raises(ModelLoadError, match=r"missing keys: score.weight"):
        load_scalar_model(broken, pad_token_id=0)


def test_a_reward_model_with_a_mis_shaped_head_is_refused(tiny_reward_dir, tmp_path):
    broken = _copy(tiny_reward_dir, tmp_path / "reward")
    _edit_weights(broken, lambda t: t.update({"score.weight": torch.zeros(2, 32)}))
    with pytest.raises(ModelLoadError, match=r"other shapes: score.weight \[2, 32\] in the weights, \[1, 32\]"):
        load_scalar_model(broken, pad_token_id=0)


def test_a_complete_reward_model_loads_every_weight(tiny_reward_dir):
    from safetensors.torch import load_file as load

    saved = load(f"{tiny_reward_dir}/model.safetensors")
    model = load_scalar_model(tiny_reward_dir, pad_token_id=load_tokenizer(tiny_reward_dir).pad_token_id)
    state = model.state_dict()
    assert all(torch.equal(state[key], value) for key, value in saved.items())


def test_a_policy_with_its_own_lm_head_still_initialises_a_reward_model(tiny_policy_dir, tmp_path):
    """An untied LM head (Pythia-style) has no use in a classifier: it may go unused, the score head is new."""
    untied = _copy(tiny_policy_dir, tmp_path / "policy")
    _edit_weights(untied, lambda t: t.update({"lm_head.weight": t["transformer.wte.weight"].clone()}))
    model = load_scalar_model(untied, pad_token_id=0)
    assert model.score.weight.shape == (1, 32)


# ---- device placement ----------------------------------------------------------------------------------


def test_auto_device_picks_cuda_only_when_a_gpu_is_visible(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu"
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    assert resolve_device("auto") == "cuda"
    assert resolve_device("cuda:1") == "cuda:1" and resolve_device("cpu") == "cpu"


@pytest.mark.parametrize(("precision", "dtype"), [("auto", torch.float32), ("fp32", torch.float32),
                                                ("bf16", torch.bfloat16)])  # fmt: skip
def test_autocast_on_cpu_is_fp32_unless_bf16_is_asked_for(precision, dtype):
    with autocast(torch.device("cpu"), precision):
        assert torch.is_autocast_enabled("cpu") == (dtype == torch.bfloat16)
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == dtype
        # bf16 on CPU uses the math attention kernel (the flash kernel's bf16 backward is slow there)
        assert torch.backends.cuda.flash_sdp_enabled() == (dtype == torch.float32)
    assert torch.backends.cuda.flash_sdp_enabled() and not torch.is_autocast_enabled("cpu")


def test_an_unknown_precision_is_refused_and_emulated_bf16_is_warned_about(monkeypatch):
    with pytest.raises(ValueError, match="precision must be one of auto, fp32, bf16; got 'fp16'"):
        check_precision("fp16")
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: False)
    with pytest.warns(UserWarning, match="emulated"):
        check_precision("bf16", torch.device("cpu"))
    monkeypatch.setattr(models, "cpu_has_native_bf16", lambda: True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_precision("bf16", torch.device("cpu"))
        check_precision("fp32", torch.device("cpu"))


def test_configure_cpu_flushes_denormals_and_sets_threads():
    before = torch.get_num_threads()
    torch.set_flush_denormal(False)  # torch's default (an earlier training test may have turned it on)
    tiny = torch.tensor([1e-30])
    assert (tiny * 1e-10).item() != 0.0  # 1e-40 is a denormal float32, kept
    try:
        assert configure_cpu(1) == 1 and torch.get_num_threads() == 1
        assert (tiny * 1e-10).item() == 0.0
    finally:
        torch.set_flush_denormal(False)
        torch.set_num_threads(before)
