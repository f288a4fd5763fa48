"""One training round from a snapshot directory: reward model -> PPO -> held-out evaluation -> verdict.

    python -m trainer.round --workdir DATA_DIR/rounds/<id> [--parent-pid PID]

Input, written by the app (app/training/snapshot.py documents the fields):
    snapshot/pairs.jsonl, snapshot/prompts.jsonl, snapshot/config.json, snapshot/manifest.json
Output (app/training/workdir.py reads it; this process never touches the database):
    status.json     {"state": running|succeeded|rejected|failed|interrupted, "stage", "step", "total_steps",
                     "completed_stages", "latest_metrics", "results", "rejected_reasons", "error"},
                    replaced atomically (write + rename) at every logged step
    metrics.jsonl   {"stage", "step", "values"} per logged point, for the live charts
    outputs/reward_model/, outputs/policy/   the models to publish (only final, complete directories)
    work/           stage markers (<stage>.json, holding the stage's results) and the PPO checkpoint

Stages: `reward_model` (Bradley-Terry on the train pairs, accuracy on the held-out pairs), `ppo` (from
the version the round starts from, reference = config ref_policy_dir, value model from the new reward
model), `evaluate` (old vs new policy sampled on held-out prompts and scored by the new reward model,
KL of the new policy to the reference). A stage with a marker (and its output) is skipped, so a rerun
after a crash resumes after the last completed stage, and PPO resumes from its checkpoint.

Gates: held-out reward-model accuracy >= gates.min_rm_accuracy (checked before PPO, which is not run
for a reward model that failed), no NaN/inf in PPO, held-out KL <= gates.max_kl, held-out EOS rate
>= gates.min_eos_rate and, when set, held-out score gain >= gates.min_score_gain. A gate failure is a
verdict, not an error: state "rejected", exit code 0.

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

# OpenMP threads waiting for work sleep instead of spinning. A round shares its cores with the web server
# and the sampler, and spinning waiters made 2-thread training steps ~3x slower than 1 thread on a busy
# 2-core machine, while passive ones matched it (docs/benchmarks.md, "Trainer"). OpenMP reads this once,
# when torch loads, so it is set before the imports below; an explicit setting is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

import torch  # noqa: E402

from trainer import metrics as M  # noqa: E402
from trainer.evaluate import compare_policies  # noqa: E402
from trainer.models import ModelLoadError  # noqa: E402
from trainer.ppo import PPOArgs, derive_sizes, train_ppo  # noqa: E402
from trainer.reward import RewardArgs, train_reward_model  # noqa: E402

log = logging.getLogger("trainer.round")

STAGES = ("reward_model", "ppo", "evaluate")
# The directory under outputs/ each stage leaves (moved out by the worker when it publishes).
STAGE_OUTPUT = {"reward_model": "reward_model", "ppo": "policy", "evaluate": None}
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
    tmp.write_text(json.dumps(_jsonable(data), indent=1), encoding="utf-8")
    os.replace(tmp, path)


def _jsonable(value):
    """NaN/inf as strings ("nan", "inf"), as trainer.metrics writes them: JSON has no such numbers."""
    if hasattr(value, "item"):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_jsonable(v) for v in value]
    return value


class Status:
    """status.json, rewritten whole on every change."""

    def __init__(self, path: Path, completed: list[str], results: dict) -> None:
        self.path = path
        self.data = {"state": "running", "stage": "", "step": 0, "total_steps": 0,
                     "completed_stages": completed, "latest_metrics": {}, "results": results,
                     "rejected_reasons": [], "error": ""}  # fmt: skip

    def update(self, **fields) -> None:
        self.data |= fields
        _write_json_atomic(self.path, self.data)


class Round:
    """Paths and results of the round in `workdir`, and its progress reporting."""

    def __init__(self, workdir: Path) -> None:
        self.work = workdir / "work"
        self.outputs = workdir / "outputs"
        self.work.mkdir(exist_ok=True)
        self.outputs.mkdir(exist_ok=True)
        self.results = {}
        for stage in STAGES:  # done = its marker, its output and every earlier stage's
            output = STAGE_OUTPUT[stage]
            missing = output is not None and not (self.outputs / output / "config.json").exists()
            if missing or not self.marker(stage).exists():
                break
            self.results[stage] = json.loads(self.marker(stage).read_text())
        self.status = Status(workdir / "status.json", [s for s in STAGES if s in self.results], self.results)
        self._metrics = (workdir / "metrics.jsonl").open("a", encoding="utf-8")

    def marker(self, stage: str) -> Path:
        return self.work / f"{stage}.json"

    def complete(self, stage: str, result: dict) -> None:
        """Record a finished stage: its marker is what a resumed run skips it by."""
        self.results[stage] = _jsonable(result)
        _write_json_atomic(self.marker(stage), self.results[stage])
        self.status.update(completed_stages=[s for s in STAGES if s in self.results], results=self.results)

    def on_progress(self, stage: str):
        def report(step: int, total: int, values: dict) -> None:
            values = _jsonable(values)
            self._metrics.write(json.dumps({"stage": stage, "step": step, "values": values}) + "\n")
            self._metrics.flush()
            self.status.update(stage=stage, step=step, total_steps=total, latest_metrics=values)
            shown = " ".join(f"{k}={v:.4g}" for k, v in values.items() if isinstance(v, float))
            log.info("%s %d/%d %s", stage, step, total, shown)

        return report


@dataclasses.dataclass
class Snapshot:
    config: dict
    pairs_train: list[dict]
    pairs_eval: list[dict]
    ppo_prompts: list[list[dict]]
    eval_prompts: list[list[dict]]
    reward_args: RewardArgs
    ppo_args: PPOArgs


def _read_jsonl(path: Path) -> list[dict]:
    with path.open(encoding="utf-8") as f:
        return [json.loads(line) for line in f if line.strip()]


def _args(cls, values: dict, section: str):
    known = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise RoundFailed(f"unknown {section} settings {unknown}; known: {sorted(known)}")
    return cls(**values)


def load_snapshot(workdir: Path) -> Snapshot:
    """Read and check the snapshot, including PPO's batch sizes, before any model is loaded."""
    snap = workdir / "snapshot"
    if not (snap / "config.json").is_file():
        raise RoundFailed(f"{snap} holds no snapshot (config.json is missing)")
    config = json.loads((snap / "config.json").read_text(encoding="utf-8"))
    pairs = _read_jsonl(snap / "pairs.jsonl")
    prompts = _read_jsonl(snap / "prompts.jsonl")
    train = [p for p in pairs if p["split"] == "train"]
    held_out = [p for p in pairs if p["split"] == "eval"]
    if not train:
        raise RoundFailed("the snapshot has no usable training pairs")
    if not held_out:
        raise RoundFailed("the snapshot has no held-out pairs, so the reward model's accuracy cannot be measured")
    ppo_prompts = [p["prompt"] for p in prompts if p["split"] == "train"]
    if not ppo_prompts:
        raise RoundFailed("the snapshot has no training-split prompts for PPO rollouts")
    reward_args = _args(RewardArgs, config["reward"], "reward")
    try:
        ppo_args = derive_sizes(_args(PPOArgs, config["ppo"], "ppo"), len(ppo_prompts))
    except ValueError as exc:
        raise RoundFailed(f"inconsistent PPO batch sizes: {exc}") from exc
    eval_prompts = [p["prompt"] for p in prompts if p["split"] == "eval"]
    return Snapshot(config, train, held_out, ppo_prompts, eval_prompts, reward_args, ppo_args)


# ---- stages --------------------------------------------------------------------------------------------


def _replace_dir(src: Path, dst: Path) -> None:
    shutil.rmtree(dst, ignore_errors=True)
    src.rename(dst)


def stage_reward_model(rnd: Round, snap: Snapshot) -> dict:
    """Train the reward model from the lineage's base policy; only a finished one reaches outputs/."""
    tmp = rnd.work / "reward_model"
    shutil.rmtree(tmp, ignore_errors=True)
    result = train_reward_model(
        snap.reward_args,
        snap.config["base_policy_dir"],
        snap.pairs_train,
        snap.pairs_eval,
        str(tmp),
        on_progress=rnd.on_progress("reward_model"),
    )
    _replace_dir(tmp, rnd.outputs / "reward_model")
    return result


def stage_ppo(rnd: Round, snap: Snapshot, stop: StopFlag) -> dict:
    """PPO in work/ppo (its checkpoint survives a kill there); the final policy moves to outputs/."""
    stop.graceful = True
    try:
        result = train_ppo(
            snap.ppo_args,
            snap.config["policy_dir"],
            snap.config["ref_policy_dir"],
            str(rnd.outputs / "reward_model"),
            snap.ppo_prompts,
            str(rnd.work / "ppo"),
            on_progress=rnd.on_progress("ppo"),
            should_stop=lambda: stop.requested,
        )
    finally:
        stop.graceful = False
    if result["stopped"]:
        raise Interrupted()
    _replace_dir(rnd.work / "ppo", rnd.outputs / "policy")
    return result


def stage_evaluate(rnd: Round, snap: Snapshot) -> dict:
    """The policy the round started from against the new one, on held-out prompts (trainer/evaluate.py)."""
    cfg = snap.config["evaluate"]
    return compare_policies(
        old_dir=snap.config["policy_dir"], new_dir=str(rnd.outputs / "policy"),
        ref_dir=snap.config["ref_policy_dir"], reward_model_dir=str(rnd.outputs / "reward_model"),
        prompts=snap.eval_prompts[: cfg["max_prompts"]], args=snap.ppo_args,
        samples_per_prompt=cfg["samples_per_prompt"], batch_size=cfg["batch_size"], seed=cfg["seed"],
        on_policy_done=lambda done: rnd.status.update(step=done, total_steps=2), device=snap.ppo_args.device,
    )  # fmt: skip


# ---- gates ---------------------------------------------------------------------------------------------


def gate_verdicts(results: dict, gates: dict) -> dict[str, dict]:
    """Every gate whose inputs exist: {"value", "limit", "passed", "reason"}. A missing or non-finite
    value fails its gate."""
    checks = []  # (name, value, op, limit, what it measures, the setting or cause to name)
    if "reward_model" in results:
        checks.append(
            (
                "rm_accuracy",
                results["reward_model"].get(M.RM_EVAL_ACCURACY),
                ">=",
                gates["min_rm_accuracy"],
                "reward model held-out accuracy",
                "gates.min_rm_accuracy",
            )
        )
    if "ppo" in results:
        checks.append(
            (
                "finite",
                0.0 if results["ppo"]["gates"]["nan_or_inf"] else 1.0,
                ">=",
                1.0,
                "PPO losses and metrics finite (1 = yes)",
                "NaN/inf during PPO",
            )
        )
    if "evaluate" in results:
        checks.append(
            (
                "kl",
                results["evaluate"].get("eval/kl"),
                "<=",
                gates["max_kl"],
                "KL of the new policy to the reference on held-out prompts (nats)",
                "gates.max_kl",
            )
        )
        checks.append(
            (
                "eos_rate",
                results["evaluate"].get("eval/eos_rate"),
                ">=",
                gates["min_eos_rate"],
                "share of held-out answers that end with EOS",
                "gates.min_eos_rate",
            )
        )
        if gates.get("min_score_gain") is not None:
            checks.append(("score_gain", results["evaluate"].get("eval/score_gain"), ">=",
                           gates["min_score_gain"], "held-out reward-model score gain over the old policy",
                           "gates.min_score_gain"))  # fmt: skip
    verdicts = {}
    for name, value, op, limit, what, setting in checks:
        finite = isinstance(value, int | float) and math.isfinite(value)
        passed = finite and (value >= limit if op == ">=" else value <= limit)
        shown = f"{value:.4g}" if finite else str(value)
        reason = "" if passed else f"{what} is {shown}, the gate is {op} {limit:g} ({setting})"
        verdicts[name] = {"value": value, "limit": limit, "passed": passed, "reason": reason}
    return verdicts


def _rejected(rnd: Round, gates: dict) -> bool:
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
    stage = "snapshot"
    try:
        snap = load_snapshot(workdir)
        for stage in STAGES:
            if stage not in rnd.results:
                rnd.status.update(stage=stage, step=0, total_steps=0, latest_metrics={})
                log.info("stage %s", stage)
                if stage == "reward_model":
                    rnd.complete(stage, stage_reward_model(rnd, snap))
                elif stage == "ppo":
                    rnd.complete(stage, stage_ppo(rnd, snap, stop))
                else:
                    rnd.complete(stage, stage_evaluate(rnd, snap))
            if _rejected(rnd, snap.config["gates"]):
                log.info("rejected: %s", rnd.status.data["rejected_reasons"])
                return EXIT_VERDICT
        rnd.status.update(
            state="succeeded", outputs={"reward_model": "outputs/reward_model", "policy": "outputs/policy"}
        )
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


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="Run one prefloop training round from its work directory.")
    parser.add_argument("--workdir", type=Path, required=True, help="DATA_DIR/rounds/<id>, holding snapshot/")
    parser.add_argument("--parent-pid", type=int, help="exit when this process (the local worker) dies")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
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
