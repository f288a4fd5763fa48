"""A scripted stand-in for `python -m trainer.round`: same arguments, files and exit codes, no torch.

    python fake_trainer.py --script JSON --workdir DIR --parent-pid PID

Script keys: "points" [[stage, step, total, {values}], ...] logged one by one, "sleep_s" between them,
"evaluate" {metric: value} over the held-out evaluation's results (a confident gain by default), "gates"
the verdicts to report (one passed or failed "kl" verdict by default), and
"end": succeeded | rejected | failed (exit 1) | sigkill (kills itself) | hang (until SIGTERM, then state
interrupted and exit 143, as the real trainer does) | silent (exit 3 before writing anything).
"""

import argparse
import ctypes
import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path

DEFAULT_POINTS = [
    ["reward_model", 1, 2, {"rm/train/loss": 0.7}],
    ["reward_model", 2, 2, {"rm/train/loss": 0.5}],
    ["ppo", 1, 2, {"objective/kl": 0.1}],
    ["ppo", 2, 2, {"objective/kl": float("nan")}],
]
RESULTS = {
    "reward_model": {"rm/eval/accuracy": 0.9, "rm/norm/mean": 0.5, "rm/norm/std": 2.0},
    "ppo": {"metrics": {"objective/kl": 0.2, "rollout/eos_rate": 1.0}, "gates": {"nan_or_inf": False}},
    "evaluate": {
        "eval/score_old": 0.1,
        "eval/score_new": 0.4,
        "eval/score_gain": 0.3,
        "eval/score_gain_low": 0.1,
        "eval/score_gain_high": 0.5,
        "eval/confidence": 0.95,
        "eval/kl": 0.3,
        "eval/eos_rate": 1.0,
    },
}


def write_status(workdir: Path, **fields) -> None:
    path = workdir / "status.json"
    current = json.loads(path.read_text()) if path.exists() else {}
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(current | fields))
    os.replace(tmp, path)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--script", required=True)
    parser.add_argument("--workdir", type=Path, required=True)
    parser.add_argument("--parent-pid", type=int, required=True)
    args = parser.parse_args()
    if sys.platform.startswith("linux"):  # die with the test's worker, as trainer.round does
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGKILL)
    script, workdir = json.loads(args.script), args.workdir
    if script.get("end") == "silent":  # dies before writing anything, like a broken environment
        return 3
    (workdir / "fake_args.json").write_text(
        json.dumps({"pid": os.getpid(), "parent_pid": args.parent_pid, "cwd": os.getcwd()})
    )
    config = json.loads((workdir / "snapshot" / "config.json").read_text())
    print("fake trainer starting", flush=True)
    write_status(workdir, state="running", completed_stages=[], results={})
    with (workdir / "metrics.jsonl").open("a") as metrics:
        for stage, step, total, values in script.get("points", DEFAULT_POINTS):
            metrics.write(json.dumps({"stage": stage, "step": step, "values": values}) + "\n")
            metrics.flush()
            write_status(workdir, stage=stage, step=step, total_steps=total, latest_metrics=values)
            time.sleep(script.get("sleep_s", 0))
    end = script.get("end", "succeeded")
    if end == "hang":

        def interrupted(*_):
            write_status(workdir, state="interrupted", error="stopped by SIGTERM")
            sys.exit(143)

        signal.signal(signal.SIGTERM, interrupted)
        while True:
            time.sleep(0.05)
    if end == "sigkill":
        os.kill(os.getpid(), signal.SIGKILL)
    if end == "failed":
        write_status(workdir, state="failed", error="ppo: scripted failure")
        print("fake trainer failed", flush=True)
        return 1
    for name in ("reward_model", "policy"):
        shutil.copytree(config["policy_dir"], workdir / "outputs" / name, dirs_exist_ok=True)
    evaluation = RESULTS["evaluate"] | script.get("evaluate", {})
    gates = script.get("gates", {"kl": {"passed": end == "succeeded"}})
    results = RESULTS | {"evaluate": evaluation, "gates": gates}
    write_status(
        workdir,
        state=end,
        completed_stages=["reward_model", "ppo", "evaluate"],
        results=results,
        rejected_reasons=script.get("rejected_reasons", []),
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
