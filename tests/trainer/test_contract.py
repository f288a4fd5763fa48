"""trainer/contract.py: the batch-size arithmetic, the stage order, JSON-safe values and the command lines
built from the argument models."""

import argparse
import math

import pytest

from trainer.contract import (
    STAGE_ORDER,
    TRAINER_STAGES,
    PPOArgs,
    RewardArgs,
    Stage,
    TrainerStatus,
    add_arguments,
    batch_size_problem,
    derive_sizes,
    json_safe,
    parse_arguments,
)


def test_derive_sizes_hand_values():
    sizes = derive_sizes(PPOArgs(batch_size=16, num_mini_batches=2, gradient_accumulation_steps=4), num_prompts=40)
    assert (sizes.mini_batch_size, sizes.micro_batch_size) == (8, 2)
    assert (sizes.num_updates, sizes.total_episodes) == (3, 48)  # ceil(40 / 16) whole batches
    sizes = derive_sizes(PPOArgs(batch_size=4, total_episodes=12, num_prompt_epochs=9), num_prompts=40)
    assert (sizes.num_updates, sizes.total_episodes) == (3, 12)  # total_episodes wins over prompt epochs
    assert derive_sizes(PPOArgs(batch_size=16, num_prompt_epochs=0.1), num_prompts=5).num_updates == 1


@pytest.mark.parametrize(
    ("sizes", "field", "message"),
    [
        ({"batch_size": 16, "num_mini_batches": 3}, "num_mini_batches",
         "num_mini_batches (3) must divide batch_size (16)."),
        (
            {"batch_size": 16, "num_mini_batches": 2, "gradient_accumulation_steps": 3},
            "gradient_accumulation_steps",
            "gradient_accumulation_steps (3) must divide the minibatch size batch_size / num_mini_batches (8).",
        ),
        ({"batch_size": 16, "total_episodes": 20}, "total_episodes",
         "total_episodes (20) must be a multiple of batch_size (16)."),
        ({"batch_size": 4, "whiten_rewards": True}, "whiten_rewards",
         "whiten_rewards needs batch_size >= 8 for a meaningful variance."),
    ],
)  # fmt: skip
def test_sizes_that_do_not_tile_are_named_with_their_field(sizes, field, message):
    args = PPOArgs(**sizes)
    assert batch_size_problem(args) == (field, message)
    with pytest.raises(ValueError, match=message.replace("(", r"\(").replace(")", r"\)")):
        derive_sizes(args, num_prompts=40)


def test_ppo_needs_a_prompt():
    with pytest.raises(ValueError, match="at least one prompt"):
        derive_sizes(PPOArgs(), num_prompts=0)


def test_stages_run_app_trainer_app():
    assert STAGE_ORDER == ("snapshot", "reward_model", "ppo", "evaluate", "publish")
    assert TRAINER_STAGES == STAGE_ORDER[1:4] and Stage.ppo == "ppo"


def test_json_safe_writes_non_finite_numbers_as_strings():
    class Scalar:  # a tensor or numpy scalar
        def item(self):
            return math.inf

    value = {"a": [float("nan"), 1.5, (Scalar(), 2)], 3: {"b": -math.inf}}
    assert json_safe(value) == {"a": ["nan", 1.5, ["inf", 2]], "3": {"b": "-inf"}}


def test_a_status_file_without_the_newer_keys_still_reads():
    status = TrainerStatus.model_validate({"state": "failed", "error": "ppo: boom"})
    assert (status.stage, status.completed_stages, status.results, status.error) == ("", [], {}, "ppo: boom")


def _parser(model) -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="stage")
    parser.add_argument("--out", required=True)
    add_arguments(parser, model)
    return parser


def test_every_argument_gets_an_option_with_its_help_and_default(capsys):
    with pytest.raises(SystemExit) as exit_:
        _parser(PPOArgs).parse_args(["--help"])
    assert exit_.value.code == 0
    shown = "".join(capsys.readouterr().out.split())  # without the line breaks argparse wraps the help at
    for name, field in PPOArgs.model_fields.items():
        assert f"--{name.replace('_', '-')}" in shown
        assert "".join(f"{field.description} (default: {field.default}".split()) in shown


def test_given_options_are_converted_and_checked_by_the_model():
    args, rest = parse_arguments(
        _parser(RewardArgs),
        RewardArgs,
        ["--out", "d", "--num-epochs", "2", "--use-margin", "--center-rewards-coefficient", "none"],
    )
    assert args == RewardArgs(num_epochs=2, use_margin=True, center_rewards_coefficient=None)
    assert vars(rest) == {"out": "d"}


def test_a_value_the_model_refuses_is_a_usage_error(capsys):
    with pytest.raises(SystemExit) as exit_:
        parse_arguments(_parser(RewardArgs), RewardArgs, ["--out", "d", "--num-epochs", "0", "--precision", "fp16"])
    assert exit_.value.code == 2
    error = capsys.readouterr().err
    assert "--num-epochs: Input should be greater than or equal to 1" in error
    assert "--precision: Input should be 'auto', 'fp32' or 'bf16'" in error
