import math
import os

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer, GenerationConfig

from trainer import metrics as M
from trainer.contract import PPOArgs
from trainer.models import (
    last_token_scores,
    load_policy,
    load_scalar_model,
    load_tokenizer,
    render_prompt_ids,
    scalar_forward,
)
from trainer.ppo import (
    CHECKPOINT_SUBDIR,
    left_pad,
    micro_batch,
    prompt_schedule,
    response_logits,
    rollout,
    sampling_config,
    train_ppo,
)
from trainer.ppo_math import last_true_indices
from trainer.reward import score_in_batches
from trainer.tensor_utils import logprobs_from_logits, response_mask_from_eos

PROMPTS = [[{"role": "user", "content": f"tell me about {t}"}] for t in ("music", "cooking", "a trip", "numbers")]
# one thread: the tiny model's ops are too small to split, and on a busy machine a second thread mostly waits
SMOKE_ARGS = PPOArgs(
    batch_size=4, num_ppo_epochs=2, total_episodes=8, response_length=12, checkpoint_every=0, num_threads=1
)


# ---- sizes and data ------------------------------------------------------------------------------------


def test_left_pad_and_prompt_schedule():
    ids, mask = left_pad([[5, 6, 7], [8]], pad_token_id=0)
    assert ids.tolist() == [[5, 6, 7], [0, 0, 8]] and mask.tolist() == [[1, 1, 1], [0, 0, 1]]
    order = prompt_schedule(num_prompts=4, total_episodes=10, seed=0)
    assert sorted(order[:4].tolist()) == [0, 1, 2, 3] and sorted(order[4:8].tolist()) == [0, 1, 2, 3]
    assert torch.equal(order, prompt_schedule(4, 10, seed=0))  # resumable: a pure function of the seed


def test_logprobs_do_not_depend_on_left_padding(tiny_policy_dir):
    """Correct position_ids make a left-padded row score like the same row without padding (N detail #3)."""
    policy = load_policy(tiny_policy_dir).eval()
    seq = torch.tensor([[11, 12, 13, 14, 15]])
    padded = torch.tensor([[0, 0, 11, 12, 13, 14, 15]])
    with torch.no_grad():
        plain = logprobs_from_logits(response_logits(policy, seq, torch.ones_like(seq), 3, 0.7), seq[:, 3:])
        mask = torch.tensor([[0, 0, 1, 1, 1, 1, 1]])
        pad = logprobs_from_logits(response_logits(policy, padded, mask, 5, 0.7), padded[:, 5:])
    torch.testing.assert_close(plain, pad, atol=1e-5, rtol=1e-5)


def test_rollout_logprobs_match_a_fresh_forward_and_trimming_keeps_them(tiny_policy_dir, tiny_reward_dir):
    """Rollout logprobs come from the generation logits; a full forward must agree (ratio = 1 at the
    first PPO step), also on the column-trimmed micro-batches the update uses."""
    tokenizer = load_tokenizer(tiny_policy_dir)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    policy, ref = load_policy(tiny_policy_dir, pad), load_policy(tiny_policy_dir, pad)
    rm, value = load_scalar_model(tiny_reward_dir, pad), load_scalar_model(tiny_reward_dir, pad)
    args = PPOArgs(batch_size=4, response_length=10)
    gen = sampling_config(args, eos, pad)
    queries, query_mask = left_pad([render_prompt_ids(tokenizer, p) for p in PROMPTS], pad)
    torch.manual_seed(0)
    ro, stats = rollout(policy, ref, value, rm, queries, query_mask, gen, args, 0.05, eos, pad, (0.0, 1.0))
    # policy == reference here, so the KL must be ~0
    assert stats[M.OBJECTIVE_KL].item() == pytest.approx(0.0, abs=1e-4)
    with torch.no_grad():
        for idx in (torch.arange(4), torch.tensor([2]), torch.tensor([1, 3])):
            qr, attn, P, r = micro_batch(ro, idx)
            fresh = logprobs_from_logits(response_logits(policy, qr, attn, P, 0.7), qr[:, P:])
            mask = ro.response_mask[idx, r]
            torch.testing.assert_close(fresh[mask], ro.logprobs[idx, r][mask], atol=1e-4, rtol=1e-4)


def test_reward_scores_agree_between_rm_training_and_ppo_layouts(tiny_reward_dir):
    """N+ padding-consistency check: the RM is trained on right-padded, unmasked rows and scores PPO
    rollouts as left-padded prompts + right-padded responses with a mask; both must agree."""
    tokenizer = load_tokenizer(tiny_reward_dir)
    eos, pad = tokenizer.eos_token_id, tokenizer.pad_token_id
    model = load_scalar_model(tiny_reward_dir, pad).eval()
    prompts = [
        render_prompt_ids(tokenizer, "tell me about music and a trip"),
        render_prompt_ids(tokenizer, "hi"),
    ]
    replies = [tokenizer(t, add_special_tokens=False)["input_ids"] + [eos] for t in ("please, a dog.", "no way")]
    rm_view = score_in_batches(model, [p + r for p, r in zip(prompts, replies, strict=True)], pad, batch_size=2)

    queries, query_mask = left_pad(prompts, pad)  # (2, P)
    T = max(len(r) for r in replies)
    responses = torch.tensor([r + [pad] * (T - len(r)) for r in replies])  # (2, T) right-padded
    response_mask = response_mask_from_eos(responses, eos)
    attention_mask = torch.cat([query_mask, response_mask.long()], 1)
    with torch.no_grad():
        values = scalar_forward(model, torch.cat([queries, responses], 1), attention_mask)
    ppo_view = last_token_scores(values, queries.size(1) + last_true_indices(response_mask))
    torch.testing.assert_close(ppo_view, rm_view, atol=1e-5, rtol=1e-5)


# ---- end-to-end smoke, resume ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_run(tiny_policy_dir, tiny_reward_dir, tmp_path_factory):
    out_dir = str(tmp_path_factory.mktemp("ppo_smoke"))
    progress = []
    result = train_ppo(SMOKE_ARGS, tiny_policy_dir, tiny_policy_dir, tiny_reward_dir, PROMPTS, out_dir,
                       on_progress=lambda u, n, m: progress.append((u, n, m)))  # fmt: skip
    return out_dir, result, progress


def test_ppo_smoke_updates_every_policy_weight_and_logs_all_metrics(smoke_run, tiny_policy_dir):
    out_dir, result, progress = smoke_run
    assert (result["num_updates"], result["updates_done"], result["stopped"]) == (2, 2, False)
    assert [p[:2] for p in progress] == [(1, 2), (2, 2)]
    for _, _, metrics in progress:
        missing = set(M.PPO_UPDATE_METRICS) - set(metrics)
        assert not missing, missing
        assert all(math.isfinite(v) for v in metrics.values())
    assert result["gates"]["nan_or_inf"] is False
    assert result["gates"]["final_kl"] == progress[-1][2][M.OBJECTIVE_KL]

    before = load_policy(tiny_policy_dir).state_dict()
    after = AutoModelForCausalLM.from_pretrained(out_dir).state_dict()
    for name, param in after.items():
        assert not torch.equal(param, before[name]), f"{name} did not change"


def test_ppo_under_bf16_autocast_trains_with_finite_metrics_and_a_ratio_near_one(
    smoke_run, tiny_policy_dir, tiny_reward_dir, tmp_path
):
    args = SMOKE_ARGS.model_copy(update={"precision": "bf16"})
    result = train_ppo(args, tiny_policy_dir, tiny_policy_dir, tiny_reward_dir, PROMPTS, str(tmp_path))
    assert (result["updates_done"], result["gates"]["nan_or_inf"]) == (2, False)
    rows = [r for r in M.read_metrics(os.path.join(tmp_path, "metrics.jsonl")) if M.VAL_RATIO in r]
    assert all(math.isfinite(v) for row in rows for v in row.values())
    # bf16 rounding moves the new/old logprob ratio off 1 only a little
    assert all(abs(row[M.VAL_RATIO] - 1) < 0.05 for row in rows)
    # the forward passes really ran in bf16: the same seed gives other numbers than the fp32 smoke run
    fp32_rows = M.read_metrics(os.path.join(smoke_run[0], "metrics.jsonl"))
    assert rows[0][M.OBJECTIVE_SCORES] != fp32_rows[0][M.OBJECTIVE_SCORES]


def test_ppo_output_dir_is_a_complete_hf_policy(smoke_run):
    out_dir, _, _ = smoke_run
    tokenizer = AutoTokenizer.from_pretrained(out_dir)
    generation_config = GenerationConfig.from_pretrained(out_dir)
    assert tokenizer.pad_token_id != tokenizer.eos_token_id
    assert generation_config.do_sample and generation_config.temperature == 0.7 and generation_config.top_k == 0
    assert generation_config.eos_token_id == tokenizer.eos_token_id
    assert not os.path.exists(os.path.join(out_dir, CHECKPOINT_SUBDIR))  # cleaned up after the final save
    rows = M.read_metrics(os.path.join(out_dir, "metrics.jsonl"))
    assert [r["step"] for r in rows] == [1, 2]


def test_stopped_run_resumes_at_the_same_update_and_matches_an_uninterrupted_run(
    smoke_run, tiny_policy_dir, tiny_reward_dir, tmp_path
):
    out_dir = str(tmp_path)
    done = []
    first = train_ppo(
        SMOKE_ARGS, tiny_policy_dir, tiny_policy_dir, tiny_reward_dir, PROMPTS, out_dir,
        on_progress=lambda u, n, m: done.append(u), should_stop=lambda: len(done) >= 1,
    )  # fmt: skip
    assert (first["stopped"], first["updates_done"]) == (True, 1)
    checkpoint = torch.load(os.path.join(out_dir, CHECKPOINT_SUBDIR, "state.pt"), weights_only=True)
    assert checkpoint["update"] == 1
    rm_weights = load_scalar_model(tiny_reward_dir, 0).state_dict()
    for name, param in checkpoint["value_model"].items():  # the critic (init from the RM) trains too
        assert not torch.equal(param, rm_weights[name]), f"value {name} did not change"

    second = train_ppo(SMOKE_ARGS, tiny_policy_dir, tiny_policy_dir, tiny_reward_dir, PROMPTS, out_dir)
    assert (second["stopped"], second["resumed_from"], second["updates_done"]) == (False, 1, 2)
    assert [r["step"] for r in M.read_metrics(os.path.join(out_dir, "metrics.jsonl"))] == [1, 2]

    # same prompts, same RNG stream, same optimizer state: the resumed run ends where the other one did
    uninterrupted = AutoModelForCausalLM.from_pretrained(smoke_run[0]).state_dict()
    resumed = AutoModelForCausalLM.from_pretrained(out_dir).state_dict()
    for name, param in resumed.items():
        torch.testing.assert_close(param, uninterrupted[name], atol=1e-6, rtol=1e-5)


def test_resume_refuses_a_checkpoint_written_with_other_args(tiny_policy_dir, tiny_reward_dir, tmp_path):
    stop_now = train_ppo(
        SMOKE_ARGS,
        tiny_policy_dir,
        tiny_policy_dir,
        tiny_reward_dir,
        PROMPTS,
        str(tmp_path),
        should_stop=lambda: True,
    )
    assert (stop_now["stopped"], stop_now["updates_done"]) == (True, 0)
    other = SMOKE_ARGS.model_copy(update={"cliprange": 0.3})
    with pytest.raises(ValueError, match="different args.*cliprange"):
        train_ppo(other, tiny_policy_dir, tiny_policy_dir, tiny_reward_dir, PROMPTS, str(tmp_path))
