"""One training round from a snapshot directory: reward model -> PPO -> held-out evaluation -> verdict.

    python -m trainer.round --workdir DATA_DIR/rounds/<id> [--parent-pid PID]

Input, written by the app (app/training/snapshot.py):
    snapshot/pairs.jsonl, snapshot/prompts.jsonl, snapshot/config.json, snapshot/manifest.json
Output (app/training/workdir.py reads it; this process never touches the database):
    status.json     TrainerStatus, replaced atomically (write + rename) at every logged step
    metrics.jsonl   {"stage", "step", "values"} per logged point, for the live charts
    outputs/reward_model/, outputs/policy/   the models to publish (only final, complete directories)
    work/           stage markers (<stage>.json, holding the stage's results) and the PPO checkpoint
trainer/contract.py defines these names and formats, the configuration's sections and the stage names.
Each stage also runs alone: `python -m trainer.reward`, `python -m trainer.ppo`.

Stages: `reward_model` (Bradley-Terry on the train pairs, accuracy on the held-out pairs), `ppo` (from
the version the round starts from, reference = config ref_policy_dir, value model from the new reward
model), `evaluate` (old vs new policy sampled on held-out prompts and scored by the new reward model,
KL of the new policy to the reference). A stage with a marker (and its output) is skipped, so a rerun
after a crash resumes after the last completed stage, and PPO resumes from its checkpoint.

Gates: held-out reward-model accuracy >= gates.min_rm_accuracy (checked before PPO, which is not run
for a reward model that failed), no NaN/inf in PPO, held-out KL <= gates.max_kl, held-out EOS rate
>= gates.min_eos_rate and, when set, held-out score gain >= gates.min_score_gain and the side-effect
gates against the parent (trainer/side_effects.py): the rise of the evasion share <= gates.max_evasion_increase,
the relative change of answer length <= gates.max_length_change, the ratio of distinct-2 >=
gates.min_distinct_2_ratio. A gate failure is a verdict, not an error: state "rejected", exit code 0.

Exit codes: 0 a verdict (succeeded or rejected), 1 failed (the reason in status.json "error"),
143 stopped by SIGTERM (state interrupted; PPO checkpoints first), 75 another process runs this DIR.
"""

import argparse
import ctypes
import dataclasses
import fcntl
import json
import logging
import math
import os
import shutil
import signal
import sys
import traceback
from pathlib import Path
from typing import Any

from pydantic import ValidationError

# OpenMP threads waiting for work sleep instead of spinning. A round shares its cores with the web server
# and the sampler, and spinning waiters made 2-thread training steps ~3x slower than 1 thread on a busy
# 2-core machine, while passive ones matched it (docs/benchmarks.md, "Trainer"). OpenMP reads this once,
# when torch loads, so it is set before the imports below; an explicit setting is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from trainer import metrics as M  # noqa: E402
from trainer.contract import (  # noqa: E402
    CONFIG_FILE,
    DISTINCT_2,
    EOS_RATE,
    EVASION_RATE,
    METRICS_FILE,
    OUTPUTS_DIR,
    PAIRS_FILE,
    POLICY_OUTPUT,
    PROMPTS_FILE,
    RESPONSE_LENGTH,
    REWARD_MODEL_OUTPUT,
    SCORE_GAIN,
    SNAPSHOT_DIR,
    STAGE_OUTPUT,
    STATUS_FILE,
    TRAINER_STAGES,
    WORK_DIR,
    GateConfig,
    SnapshotConfig,
    Stage,
    TrainerStatus,
    derive_sizes,
    describe_validation_error,
    json_safe,
    snapshot_rows,
)
from trainer.evaluate import compare_policies  # noqa: E402
from trainer.models import ModelLoadError  # noqa: E402
from trainer.ppo import train_ppo  # noqa: E402
from trainer.reward import train_reward_model  # noqa: E402
from trainer.side_effects import change, parent_and_new, relative_change  # noqa: E402

log = logging.getLogger("trainer.round")

EXIT_VERDICT, EXIT_FAILED, EXIT_BUSY, EXIT_INTERRUPTED = 0, 1, 75, 143


class RoundFailed(Exception):
    """A failure with a message meant for the admin (bad data, bad config, a model that will not load)."""


class Interrupted(BaseException):
    """SIGTERM arrived: the round stops here and resumes from its last completed stage or checkpoint.

    A BaseException (like KeyboardInterrupt), so library code that wraps `except Exception` (model
    loading does) cannot turn it into a failure."""


class StopFlag:
    """Set by SIGTERM. While PPO runs it is polled between updates (PPO checkpoints, then returns);
    in any other stage there is nothing to save, so the handler interrupts at once."""

    def __init__(self) -> None:
        self.requested = False
        self.graceful = False

    def on_sigterm(self, _signum, _frame) -> None:
        self.requested = True
        if not self.graceful:
            raise Interrupted()


# ---- files ---------------------------------------------------------------------------------------------


def _write_json_atomic(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(json_safe(data), indent=1), encoding="utf-8")
    os.replace(tmp, path)


class Status:
    """status.json (TrainerStatus), rewritten whole on every change."""

    def __init__(self, path: Path, completed: list[str], results: dict) -> None:
        self.path = path
        self.data = TrainerStatus(completed_stages=completed, results=results)

    def update(self, **fields) -> None:
        self.data = self.data.model_copy(update=fields)
        _write_json_atomic(self.path, self.data.model_dump())


class Round:
    """Paths and results of the round in `workdir`, and its progress reporting."""

    def __init__(self, workdir: Path) -> None:
        self.work = workdir / WORK_DIR
        self.outputs = workdir / OUTPUTS_DIR
        self.work.mkdir(exist_ok=True)
        self.outputs.mkdir(exist_ok=True)
        self.results: dict[str, Any] = {}  # per completed stage its final metrics, and the gate verdicts
        for stage in TRAINER_STAGES:  # done = its marker, its output and every earlier stage's
            output = STAGE_OUTPUT[stage]
            missing = output is not None and not (self.outputs / output / CONFIG_FILE).exists()
            if missing or not self.marker(stage).exists():
                break
            self.results[stage] = json.loads(self.marker(stage).read_text())
        completed: list[str] = [s for s in TRAINER_STAGES if s in self.results]
        self.status = Status(workdir / STATUS_FILE, completed, self.results)
        self._metrics = (workdir / METRICS_FILE).open("a", encoding="utf-8")

    def marker(self, stage: str) -> Path:
        return self.work / f"{stage}.json"

    def complete(self, stage: str, result: dict) -> None:
        """Record a finished stage: its marker is what a resumed run skips it by."""
        self.results[stage] = json_safe(result)
        _write_json_atomic(self.marker(stage), self.results[stage])
        self.status.update(completed_stages=[s for s in TRAINER_STAGES if s in self.results], results=self.results)

    def on_progress(self, stage: str):
        def report(step: int, total: int, values: dict) -> None:
            values = json_safe(values)
            self._metrics.write(json.dumps({"stage": stage, "step": step, "values": values}) + "\n")
            self._metrics.flush()
            self.status.update(stage=stage, step=step, total_steps=total, latest_metrics=values)
            shown = " ".join(f"{k}={v:.4g}" for k, v in values.items() if isinstance(v, float))
            log.info("%s %d/%d %s", stage, step, total, shown)

        return report


@dataclasses.dataclass
class Snapshot:
    config: SnapshotConfig
    pairs_train: list[dict]
    pairs_eval: list[dict]
    ppo_prompts: list[list[dict]]
    eval_prompts: list[list[dict]]


def load_snapshot(workdir: Path) -> Snapshot:
    """Read and check the snapshot, including PPO's batch sizes, before any model is loaded."""
    snap = workdir / SNAPSHOT_DIR
    if not (snap / CONFIG_FILE).is_file():
        raise RoundFailed(f"{snap} holds no snapshot ({CONFIG_FILE} is missing)")
    try:
        config = SnapshotConfig.model_validate_json((snap / CONFIG_FILE).read_text(encoding="utf-8"))
    except ValidationError as exc:
        raise RoundFailed(f"invalid {CONFIG_FILE}: {describe_validation_error(exc)}") from exc
    train, held_out = snapshot_rows(snap, PAIRS_FILE)
    if not train:
        raise RoundFailed("the snapshot has no usable training pairs")
    if not held_out:
        raise RoundFailed("the snapshot has no held-out pairs, so the reward model's accuracy cannot be measured")
    ppo_prompts, eval_prompts = ([row["prompt"] for row in rows] for rows in snapshot_rows(snap, PROMPTS_FILE))
    if not ppo_prompts:
        raise RoundFailed("the snapshot has no training-split prompts for PPO rollouts")
    try:
        derive_sizes(config.ppo, len(ppo_prompts))
    except ValueError as exc:
        raise RoundFailed(f"inconsistent PPO batch sizes: {exc}") from exc
    return Snapshot(config, train, held_out, ppo_prompts, eval_prompts)


# ---- stages --------------------------------------------------------------------------------------------


def _replace_dir(src: Path, dst: Path) -> None:
    shutil.rmtree(dst, ignore_errors=True)
    src.rename(dst)


def stage_reward_model(rnd: Round, snap: Snapshot) -> dict:
    """Train the reward model from the lineage's base policy; only a finished one reaches outputs/."""
    tmp = rnd.work / REWARD_MODEL_OUTPUT
    shutil.rmtree(tmp, ignore_errors=True)
    result = train_reward_model(
        snap.config.reward,
        snap.config.base_policy_dir,
        snap.pairs_train,
        snap.pairs_eval,
        str(tmp),
        on_progress=rnd.on_progress(Stage.reward_model),
    )
    _replace_dir(tmp, rnd.outputs / REWARD_MODEL_OUTPUT)
    return result


def stage_ppo(rnd: Round, snap: Snapshot, stop: StopFlag) -> dict:
    """PPO in work/ppo (its checkpoint survives a kill there); the final policy moves to outputs/."""
    stop.graceful = True
    try:
        result = train_ppo(
            snap.config.ppo,
            snap.config.policy_dir,
            snap.config.ref_policy_dir,
            str(rnd.outputs / REWARD_MODEL_OUTPUT),
            snap.ppo_prompts,
            str(rnd.work / Stage.ppo),
            on_progress=rnd.on_progress(Stage.ppo),
            should_stop=lambda: stop.requested,
        )
    finally:
        stop.graceful = False
    if result["stopped"]:
        raise Interrupted()
    _replace_dir(rnd.work / Stage.ppo, rnd.outputs / POLICY_OUTPUT)
    return result


def stage_evaluate(rnd: Round, snap: Snapshot) -> dict:
    """The policy the round started from against the new one, on held-out prompts (trainer/evaluate.py)."""
    config = snap.config
    return compare_policies(
        old_dir=config.policy_dir, new_dir=str(rnd.outputs / POLICY_OUTPUT),
        ref_dir=config.ref_policy_dir, reward_model_dir=str(rnd.outputs / REWARD_MODEL_OUTPUT),
        prompts=snap.eval_prompts[: config.evaluate.max_prompts], args=config.ppo,
        samples_per_prompt=config.evaluate.samples_per_prompt, batch_size=config.evaluate.batch_size,
        seed=config.evaluate.seed, on_progress=lambda done, total: rnd.status.update(step=done, total_steps=total),
        device=config.ppo.device, confidence=config.evaluate.confidence,
        evasion_patterns=config.evaluate.evasion_patterns,
    )  # fmt: skip


# ---- gates ---------------------------------------------------------------------------------------------


def gate_verdicts(results: dict, gates: GateConfig) -> dict[str, dict]:
    """Every gate whose inputs exist: {"value", "limit", "op", "what", "setting", "passed", "reason"}
    (setting: the GateConfig field it checks, as gates.<field>, or the cause it names). A missing or
    non-finite value fails its gate."""
    checks = []  # (name, value, op, limit, what it measures, the setting or cause to name)
    if Stage.reward_model in results:
        checks.append(
            (
                "rm_accuracy",
                results[Stage.reward_model].get(M.RM_EVAL_ACCURACY),
                ">=",
                gates.min_rm_accuracy,
                "reward model held-out accuracy",
                "gates.min_rm_accuracy",
            )
        )
    if Stage.ppo in results:
        checks.append(
            (
                "finite",
                0.0 if results[Stage.ppo]["gates"]["nan_or_inf"] else 1.0,
                ">=",
                1.0,
                "PPO losses and metrics finite (1 = yes)",
                "NaN/inf during PPO",
            )
        )
    if Stage.evaluate in results:
        checks.append(
            (
                "kl",
                results[Stage.evaluate].get("eval/kl"),
                "<=",
                gates.max_kl,
                "KL of the new policy to the reference on held-out prompts (nats)",
                "gates.max_kl",
            )
        )
        checks.append(
            (
                "eos_rate",
                results[Stage.evaluate].get(EOS_RATE),
                ">=",
                gates.min_eos_rate,
                "share of held-out answers that end with EOS",
                "gates.min_eos_rate",
            )
        )
        if gates.min_score_gain is not None:
            checks.append(("score_gain", results[Stage.evaluate].get(SCORE_GAIN), ">=",
                           gates.min_score_gain, "held-out reward-model score gain over the old policy",
                           "gates.min_score_gain"))  # fmt: skip
        checks += _side_effect_checks(results[Stage.evaluate], gates)
    verdicts = {}
    for name, value, op, limit, what, setting in checks:
        finite = isinstance(value, int | float) and math.isfinite(value)
        passed = finite and (value >= limit if op == ">=" else value <= limit)
        shown = f"{value:.4g}" if finite else str(value)
        reason = "" if passed else f"{what} is {shown}, the gate is {op} {limit:g} ({setting})"
        # Self-describing, so the console lists each gate without knowing it (app/training/round_view.py).
        verdicts[name] = {"value": value, "limit": limit, "op": op, "what": what, "setting": setting,
                          "passed": passed, "reason": reason}  # fmt: skip
    return verdicts


def _side_effect_checks(evaluation: dict, gates: GateConfig) -> list[tuple]:
    """The optional gates on side effects (those set), each comparing the new policy with its parent; `what`
    carries both values, so a refusal says what moved from where to where."""

    def both(key: str, fmt: str) -> str:
        parent, new = parent_and_new(evaluation, key)
        shown = [format(v, fmt) if v is not None else "not measured" for v in (parent, new)]
        return f"parent {shown[0]}, new {shown[1]}"

    checks: list[tuple] = []
    if gates.max_evasion_increase is not None:
        checks.append(("evasion_increase", change(evaluation, EVASION_RATE), "<=", gates.max_evasion_increase,
                       f"rise of the share of held-out answers marked as evasions ({both(EVASION_RATE, '.1%')})",
                       "gates.max_evasion_increase"))  # fmt: skip
    if gates.max_length_change is not None:
        length_change = relative_change(evaluation, RESPONSE_LENGTH)
        checks.append(("length_change", None if length_change is None else abs(length_change), "<=",
                       gates.max_length_change, "relative change of the mean held-out answer length "
                       f"({both(RESPONSE_LENGTH, '.1f')} tokens)", "gates.max_length_change"))  # fmt: skip
    if gates.min_distinct_2_ratio is not None:
        parent, new = parent_and_new(evaluation, DISTINCT_2)
        ratio = new / parent if parent and new is not None else None
        checks.append(("distinct_2_ratio", ratio, ">=", gates.min_distinct_2_ratio,
                       f"distinct-2 of held-out answers relative to the parent's ({both(DISTINCT_2, '.3f')})",
                       "gates.min_distinct_2_ratio"))  # fmt: skip
    return checks


def _rejected(rnd: Round, gates: GateConfig) -> bool:
    """Write the gate verdicts; True (and state rejected) when any failed."""
    verdicts = gate_verdicts(rnd.results, gates)
    reasons = [v["reason"] for v in verdicts.values() if not v["passed"]]
    rnd.results["gates"] = verdicts
    state = "rejected" if reasons else "running"
    rnd.status.update(results=rnd.results, rejected_reasons=reasons, state=state)
    return bool(reasons)


# ---- the round -----------------------------------------------------------------------------------------


def explain(exc: BaseException, stage: str) -> str:
    """The admin-facing reason for an exception raised in `stage`."""
    text = str(exc)
    if isinstance(exc, torch.OutOfMemoryError | MemoryError) or "can't allocate memory" in text:
        return (f"out of memory in stage {stage}: lower ppo.batch_size (or raise "
                "ppo.gradient_accumulation_steps), reward.batch_size, ppo.response_length or "
                f"reward.max_length. ({type(exc).__name__}: {text[:300]})")  # fmt: skip
    if isinstance(exc, ModelLoadError | FileNotFoundError):
        return f"could not load a model in stage {stage}: {text}"
    if isinstance(exc, RoundFailed | ValueError):
        return f"{stage}: {text}"
    return f"{stage}: unexpected {type(exc).__name__}: {text}"


def run_round(workdir: Path, stop: StopFlag) -> int:
    """Run the stages that have no marker yet, write the verdict; returns the exit code."""
    rnd = Round(workdir)
    stage = Stage.snapshot
    try:
        snap = load_snapshot(workdir)
        for stage in TRAINER_STAGES:
            if stage not in rnd.results:
                rnd.status.update(stage=stage, step=0, total_steps=0, latest_metrics={})
                log.info("stage %s", stage)
                if stage == Stage.reward_model:
                    rnd.complete(stage, stage_reward_model(rnd, snap))
                elif stage == Stage.ppo:
                    rnd.complete(stage, stage_ppo(rnd, snap, stop))
                else:
                    rnd.complete(stage, stage_evaluate(rnd, snap))
            if _rejected(rnd, snap.config.gates):
                log.info("rejected: %s", rnd.status.data.rejected_reasons)
                return EXIT_VERDICT
        outputs = {stage: f"{OUTPUTS_DIR}/{output}" for stage, output in STAGE_OUTPUT.items() if output}
        rnd.status.update(state="succeeded", outputs=outputs)
        log.info("succeeded")
        return EXIT_VERDICT
    except Interrupted:
        rnd.status.update(state="interrupted", error=f"stopped by SIGTERM in stage {stage}; a rerun resumes")
        return EXIT_INTERRUPTED
    except Exception as exc:  # noqa: BLE001 - the boundary: every failure becomes a reason in status.json
        log.error("round failed in stage %s\n%s", stage, traceback.format_exc())
        rnd.status.update(state="failed", error=explain(exc, stage))
        return EXIT_FAILED


def _exit_with_parent(parent_pid: int) -> None:
    """Die with the worker that started us (Linux prctl PR_SET_PDEATHSIG): its round will be marked
    failed and may be retried, and an orphaned trainer would then race the retry over this work dir."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)  # 1 = PR_SET_PDEATHSIG
    if os.getppid() != parent_pid:  # the parent died before the prctl took effect
        sys.exit(EXIT_INTERRUPTED)


def quiet_libraries(*, verbose: bool, terminal: bool) -> None:
    """Keep trainer.log (which the console shows) plain text about the round: transformers' weight-load
    reports and Python warnings from torch and friends only with --verbose, and no progress bars, whose
    carriage-return redraws are noise in a file, unless the output is a terminal."""
    from transformers.utils import logging as transformers_logging

    if verbose:
        transformers_logging.set_verbosity_debug()
    else:
        transformers_logging.set_verbosity_error()
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(logging.DEBUG if verbose else logging.ERROR)
    if not terminal:
        transformers_logging.disable_progress_bar()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one prefloop training round from its work directory.")
    parser.add_argument("--workdir", type=Path, required=True, help=f"DATA_DIR/rounds/<id>, holding {SNAPSHOT_DIR}/")
    parser.add_argument("--parent-pid", type=int, help="exit when this process (the local worker) dies")
    parser.add_argument(
        "--verbose", action="store_true", help="debug logging, with the libraries' model-load reports and warnings"
    )
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    quiet_libraries(verbose=args.verbose, terminal=sys.stderr.isatty())
    if args.parent_pid:
        _exit_with_parent(args.parent_pid)
    workdir = args.workdir.resolve()
    with (workdir / ".lock").open("w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            log.error("another process is running the round in %s", workdir)
            return EXIT_BUSY
        stop = StopFlag()
        signal.signal(signal.SIGTERM, stop.on_sigterm)
        return run_round(workdir, stop)


if __name__ == "__main__":
    sys.exit(main())
