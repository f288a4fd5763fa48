"""The round defaults that depend on the policy's size and the data's size, derived by one stated rule.

A fixed learning rate or epoch count suits one model and one data size: the 1e-5 a 1B-parameter reward
model wants leaves a 1.5M-parameter one at chance, and one epoch over the 150 pairs of a first round is
a dozen optimizer steps. So a round's defaults for these fields are computed here from what the round
will train on; an explicit value (API, console form, command line, a TRAINING_* setting) always wins.

The rule, each part with its reason:

- **Learning rates by parameter count N**, a power law through two anchors per stage, held flat outside
  them (no extrapolation beyond what was measured or published):
  reward model 1e-3 at 1.5M (the embedded policy: 4 epochs x batch 8 reached 0.83-0.87 held-out accuracy
  there, 1e-5 stays at chance) to 1e-5 at 1B (the order TRL's reward examples and Huang et al. 2024,
  arXiv:2403.17031, use for 1B-7B models); PPO 1e-4 at 1.5M (30 updates move the embedded policy ~1-3
  nats of KL, 3e-6 barely moves it) to 3e-6 at 1B (Huang et al.; TRL's PPO default). Larger models
  need smaller steps because each step moves more of the function (as muP-style width scaling and every
  published recipe do); at 7B this gives ~2.5e-6 (RM) and ~1e-6 (PPO).
- **Reward-model batch size by training pairs**: the largest power of two at most pairs / 32, within
  8..32, so a small snapshot still gets ~32+ optimizer steps per epoch and a large one steps less noisily.
- **Reward-model epochs by training pairs**: enough passes for ~250 optimizer steps, at most 2 (the
  third and fourth passes over a first round's ~160 pairs only memorise them: on the embedded policy's
  on-topic pairs, noise-free held-out accuracy 0.804 after 2 epochs against 0.785 after 4 and 0.760 after
  1, means over 3 draws of the data; large data sets get 1, as Ziegler et al. 2019 and Huang et al. 2024 use).
- **PPO passes over the prompts**: enough for ~480 episodes (30 updates of 16), within 1..4, so a round
  moves the policy measurably whatever the prompt set's size (1 pass over 160 prompts moved the embedded
  policy by KL ~0 in three rounds). More is not better with a reward model fit on a few hundred pairs:
  48 updates a round moved the embedded policy further (KL 1.5, 2.3, 2.9 over three on-topic rounds against
  0.7-1.2 with 30) and it won less often against the base (decisive 0.67-0.77 against 0.84), optimising
  the reward model's errors.
- **Held-out share by usable judgments**: ~100 held-out pairs, within 10 %..30 % of prompts. The
  RM-accuracy gate below needs held-out pairs to tell a useful reward model from chance: a first round of
  400 judgments has ~190 usable pairs, and at 20 % its ~38 held-out pairs set the gate at 0.63, which a
  reward model of 0.73 observed accuracy misses about one time in ten; at 30 % (~57 pairs, gate 0.61) about
  one in fifty, for ~20 fewer training pairs. As data grows the share only shrinks, and the hash
  split (app/training/snapshot.py split_of) then moves prompts from held out to training, never back,
  so a policy is never evaluated on prompts an earlier round trained on.
- **Reward-model accuracy gate by held-out pairs n**: accuracy must beat chance with 95 % confidence, a
  one-sided binomial bound 0.5 + 1.645 * sqrt(0.25 / n) (0.76 at 10 pairs, 0.63 at 40, 0.58 at 100,
  0.55 at 300), instead of a flat 0.6 that rejects good reward models on small held-out sets and passes
  weak ones on large.

Standard library only: the app imports this module without torch, and reads the parameter count from
the safetensors headers, without loading the weights.
"""

from __future__ import annotations

import json
import math
import struct
from dataclasses import dataclass
from pathlib import Path

SMALL_MODEL, LARGE_MODEL = 1.5e6, 1e9  # the two anchor sizes of the learning-rate power laws
REWARD_LR = (1e-3, 1e-5)  # at SMALL_MODEL, at LARGE_MODEL
PPO_LR = (1e-4, 3e-6)
REWARD_TARGET_STEPS, REWARD_MAX_EPOCHS = 250, 2
REWARD_BATCH_RANGE, REWARD_STEPS_PER_EPOCH = (8, 32), 32
PPO_TARGET_EPISODES, PPO_MAX_PROMPT_EPOCHS = 480, 4.0
HELDOUT_TARGET_PAIRS, HELDOUT_RANGE = 100, (0.1, 0.3)
ACCURACY_Z = 1.645  # one-sided 95 %


@dataclass(frozen=True)
class Derived:
    """A default computed from the model or the data, and why it has this value (shown to the admin)."""

    value: float | int
    reason: str


@dataclass(frozen=True)
class RoundSizes:
    """What a round would train on: the inputs of the data-dependent rule."""

    num_parameters: int | None  # of the policy PPO starts from; None when it cannot be read
    usable_pairs: int  # usable judgments that prefer one answer (a or b)
    train_pairs: int
    eval_pairs: int
    ppo_prompts: int


def _power_law(num_parameters: int, anchors: tuple[float, float]) -> float:
    small, large = anchors
    size = min(max(num_parameters, SMALL_MODEL), LARGE_MODEL)
    exponent = math.log(large / small) / math.log(LARGE_MODEL / SMALL_MODEL)
    return float(f"{small * (size / SMALL_MODEL) ** exponent:.2g}")  # two significant digits read better


def _size(num_parameters: int) -> str:
    if num_parameters >= 1e9:
        return f"{num_parameters / 1e9:.1f}B"
    return f"{num_parameters / 1e6:.1f}M" if num_parameters >= 1e5 else f"{num_parameters:,}"


def learning_rates(num_parameters: int) -> dict[str, Derived]:
    """reward.learning_rate and ppo.learning_rate for a policy of `num_parameters`."""
    why = "by the policy's size ({size} parameters): {low:g} at 1.5M down to {high:g} at 1B, a power law"
    return {
        f"{section}.learning_rate": Derived(
            _power_law(num_parameters, anchors),
            why.format(size=_size(num_parameters), low=anchors[0], high=anchors[1]),
        )
        for section, anchors in (("reward", REWARD_LR), ("ppo", PPO_LR))
    }


def heldout_fraction(usable_pairs: int) -> Derived:
    low, high = HELDOUT_RANGE
    value = round(min(max(HELDOUT_TARGET_PAIRS / max(usable_pairs, 1), low), high), 2)
    return Derived(
        value,
        f"~{HELDOUT_TARGET_PAIRS} held-out pairs from {usable_pairs} usable judgments, within {low:.0%}-{high:.0%}",
    )


def reward_batch_size(train_pairs: int) -> Derived:
    low, high = REWARD_BATCH_RANGE
    target = max(train_pairs // REWARD_STEPS_PER_EPOCH, 1)
    value = min(max(2 ** int(math.log2(target)), low), high)
    return Derived(
        value, f"{train_pairs} training pairs: at least ~{REWARD_STEPS_PER_EPOCH} steps an epoch, {low}-{high}"
    )


def reward_epochs(train_pairs: int, batch_size: int) -> Derived:
    steps_per_epoch = max(math.ceil(train_pairs / batch_size), 1)
    value = min(max(math.ceil(REWARD_TARGET_STEPS / steps_per_epoch), 1), REWARD_MAX_EPOCHS)
    return Derived(
        value,
        f"~{REWARD_TARGET_STEPS} optimizer steps from {train_pairs} training pairs in batches of {batch_size}, "
        f"at most {REWARD_MAX_EPOCHS}",
    )


def ppo_prompt_epochs(ppo_prompts: int) -> Derived:
    value = round(min(max(PPO_TARGET_EPISODES / max(ppo_prompts, 1), 1.0), PPO_MAX_PROMPT_EPOCHS), 2)
    return Derived(
        value,
        f"~{PPO_TARGET_EPISODES} episodes from {ppo_prompts} training prompts, 1-{PPO_MAX_PROMPT_EPOCHS:g} passes",
    )


def min_rm_accuracy(eval_pairs: int) -> Derived:
    value = round(0.5 + ACCURACY_Z * math.sqrt(0.25 / max(eval_pairs, 1)), 3)
    return Derived(
        min(value, 1.0),
        f"better than chance with 95% confidence on {eval_pairs} held-out pairs (0.5 + 1.645·√(0.25/n))",
    )


def derive(sizes: RoundSizes, *, min_heldout_pairs: int, reward_batch: int | None = None) -> dict[str, Derived]:
    """Every size-dependent default ("section.field" -> Derived) but the held-out share, which decides
    the split the other sizes are counted on (heldout_fraction). `reward_batch`: an explicit
    reward.batch_size, which the epoch count then follows. The gate is stated for at least
    `min_heldout_pairs` held-out pairs, the fewest a round accepts."""
    derived = learning_rates(sizes.num_parameters) if sizes.num_parameters else {}
    batch = reward_batch_size(sizes.train_pairs)
    if reward_batch is None:
        derived["reward.batch_size"] = batch
    derived["reward.num_epochs"] = reward_epochs(sizes.train_pairs, reward_batch or int(batch.value))
    derived["ppo.num_prompt_epochs"] = ppo_prompt_epochs(sizes.ppo_prompts)
    derived["gates.min_rm_accuracy"] = min_rm_accuracy(max(sizes.eval_pairs, min_heldout_pairs))
    return derived


def for_stage(args, section: str, sizes: RoundSizes, log=None):
    """`args` (a stage's RewardArgs or PPOArgs) with the derived defaults of `section` ("reward" or "ppo")
    for every field its command line left unset, so a stage run alone trains as it would in a round.
    `log(message)` is told each derived value and why."""
    given = args.model_fields_set
    reward_batch = args.batch_size if section == "reward" and "batch_size" in given else None
    update = {}
    for key, value in derive(sizes, min_heldout_pairs=1, reward_batch=reward_batch).items():
        stage, field = key.split(".", 1)
        if stage == section and field not in given:
            update[field] = value.value
            if log is not None:
                log(f"{key} = {value.value:g} (derived: {value.reason})")
    return args.model_copy(update=update)


# ---- the policy's size ---------------------------------------------------------------------------------------

SAFETENSORS_INDEX = "model.safetensors.index.json"


def count_parameters(model_dir: Path) -> int | None:
    """Parameters in a model directory's safetensors files (sharded or not), from their headers alone;
    None when it has none (e.g. only pytorch_model.bin) or one cannot be read."""
    index = model_dir / SAFETENSORS_INDEX
    try:
        if index.is_file():
            files = sorted(
                {model_dir / f for f in json.loads(index.read_text(encoding="utf-8"))["weight_map"].values()}
            )
        else:
            files = sorted(model_dir.glob("*.safetensors"))
        if not files:
            return None
        return sum(_tensor_elements(file) for file in files)
    except (OSError, ValueError, KeyError, TypeError, struct.error):
        return None


def _tensor_elements(file: Path) -> int:
    with file.open("rb") as handle:
        (header_len,) = struct.unpack("<Q", handle.read(8))
        header = json.loads(handle.read(header_len))
    return sum(math.prod(t["shape"]) for name, t in header.items() if name != "__metadata__")
