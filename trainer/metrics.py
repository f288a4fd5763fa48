"""Metric names (one list, TRL-compatible where TRL has the metric) and a JSONL metric writer.

Keeping the names here lets the web app, the tests and the trainers agree on spelling, and keeps our
curves comparable with TRL's (`trl/trainer/ppo_trainer.py`, `trl/trainer/reward_trainer.py`) and with the
W&B reports of Huang et al. 2024, "The N+ Implementation Details of RLHF with PPO" (arXiv:2403.17031).
"""

import json
import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from tqdm.auto import tqdm

from trainer.contract import json_safe

# ---- reward model round ---------------------------------------------------------------------------
RM_TRAIN_LOSS = "rm/train/loss"
RM_TRAIN_ACCURACY = "rm/train/accuracy"
RM_TRAIN_MARGIN = "rm/train/margin"  # mean (r_chosen - r_rejected)
RM_TRAIN_MEAN_REWARD = "rm/train/mean_reward"
RM_TRAIN_GRAD_NORM = "rm/train/grad_norm"
RM_TRAIN_LR = "rm/train/lr"
RM_EVAL_LOSS = "rm/eval/loss"
RM_EVAL_ACCURACY = "rm/eval/accuracy"
RM_EVAL_MARGIN = "rm/eval/margin"
RM_VALID_LOSS = "rm/valid/loss"  # on the validation slice of the training prompts (early stopping)
RM_VALID_ACCURACY = "rm/valid/accuracy"
RM_BEST_STEP = "rm/early_stop/best_step"  # the step whose weights are kept
RM_STOPPED = "rm/early_stop/stopped"  # 1.0 when training ended before its last step
RM_NORM_MEAN = "rm/norm/mean"
RM_NORM_STD = "rm/norm/std"
RM_NUM_PAIRS = "rm/data/num_pairs"
RM_NUM_VALID_PAIRS = "rm/data/num_validation_pairs"  # of the training pairs, held back for early stopping
RM_NUM_DROPPED = "rm/data/num_dropped_too_long"
RM_PAIRS_PER_SECOND = "rm/pairs_per_second"

# ---- PPO round (exact TRL PPOTrainer keys) ----------------------------------------------------------
OBJECTIVE_KL = "objective/kl"  # per-sequence summed KL to the reference, batch mean
OBJECTIVE_ENTROPY = "objective/entropy"  # per-sequence summed sampled-token NLL, batch mean
OBJECTIVE_NON_SCORE_REWARD = "objective/non_score_reward"  # per-sequence sum of -kl_coef * KL
OBJECTIVE_RLHF_REWARD = "objective/rlhf_reward"  # scores + non_score_reward: should go up
OBJECTIVE_SCORES = "objective/scores"  # normalised RM score after the missing-EOS penalty
OBJECTIVE_KL_COEF = "objective/kl_coef"
POLICY_APPROXKL_AVG = "policy/approxkl_avg"
POLICY_CLIPFRAC_AVG = "policy/clipfrac_avg"
POLICY_ENTROPY_AVG = "policy/entropy_avg"  # true categorical entropy during optimisation
LOSS_POLICY_AVG = "loss/policy_avg"
LOSS_VALUE_AVG = "loss/value_avg"
VAL_CLIPFRAC_AVG = "val/clipfrac_avg"
VAL_RATIO = "val/ratio"  # should hover around 1.0
VAL_RATIO_VAR = "val/ratio_var"
VAL_NUM_EOS_TOKENS = "val/num_eos_tokens"
LR = "lr"
EPISODE = "episode"
EPS = "eps"  # episodes per second
ROLLOUT_RESPONSE_LENGTH_MEAN = "rollout/response_length_mean"
ROLLOUT_EOS_RATE = "rollout/eos_rate"
TIME_GENERATION = "time/generation"
TIME_SCORING = "time/scoring"
TIME_OPTIMIZATION = "time/optimization"
TIME_UPDATE = "time/update"
TOKENS_PER_SECOND = "tokens_per_second"  # generated response tokens / whole update wall time

PPO_UPDATE_METRICS = (
    OBJECTIVE_KL, OBJECTIVE_ENTROPY, OBJECTIVE_NON_SCORE_REWARD, OBJECTIVE_RLHF_REWARD, OBJECTIVE_SCORES,
    OBJECTIVE_KL_COEF, POLICY_APPROXKL_AVG, POLICY_CLIPFRAC_AVG, POLICY_ENTROPY_AVG, LOSS_POLICY_AVG,
    LOSS_VALUE_AVG, VAL_CLIPFRAC_AVG, VAL_RATIO, VAL_RATIO_VAR, VAL_NUM_EOS_TOKENS, LR, EPISODE, EPS,
    ROLLOUT_RESPONSE_LENGTH_MEAN, ROLLOUT_EOS_RATE, TIME_GENERATION, TIME_SCORING, TIME_OPTIMIZATION,
    TIME_UPDATE, TOKENS_PER_SECOND,
)  # fmt: skip


class MetricWriter:
    """Append one JSON object per line: {"step": int, "time": unix seconds, <metric>: float, ...}.

    Each line is flushed as it is written so a reader (the web app tailing the file) sees progress
    live. `truncate_after_step` drops lines with a larger step first: when a killed run resumes from
    a checkpoint at step k, the lines it wrote after k are discarded and rewritten, not duplicated.
    """

    def __init__(self, path: str, truncate_after_step: int | None = None):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        if truncate_after_step is not None and os.path.exists(path):
            kept = [row for row in read_metrics(path) if row.get("step", 0) <= truncate_after_step]
            with open(path, "w") as f:
                f.writelines(json.dumps(row) + "\n" for row in kept)
        self._file = open(path, "a")

    def write(self, step: int, metrics: dict) -> None:
        row = {"step": step, "time": time.time(), **json_safe(metrics)}
        self._file.write(json.dumps(row) + "\n")
        self._file.flush()

    def close(self) -> None:
        self._file.close()

    def __enter__(self) -> "MetricWriter":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


def read_metrics(path: str) -> list[dict]:
    """All rows of a metrics.jsonl file; a torn last line (the writer was killed mid-write) is skipped."""
    rows = []
    with open(path) as f:
        for line in f:
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:
                continue
    return rows


@contextmanager
def progress_bar(stage: str, shown: tuple[str, ...]) -> Iterator[Callable[[int, int, dict], None]]:
    """An `on_progress(step, total, values)` callback drawing a progress bar (on stderr) with the `shown`
    metrics, for a stage run from the command line."""
    with tqdm(desc=stage, unit="step") as bar:

        def report(step: int, total: int, values: dict) -> None:
            bar.total = total
            bar.set_postfix({k.rsplit("/", 1)[-1]: values[k] for k in shown if k in values}, refresh=False)
            bar.update(step - bar.n)

        yield report
