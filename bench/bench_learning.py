"""The learning benchmark: does the loop make the policy better, through the interfaces users use?

From the embedded policy and a fresh database, for each preference function, run K rounds of:
  1. scripted annotators judge M comparisons through the HTTP API (their own tokens, with noise),
  2. one training round, launched through the API, runs on the server's local worker and is activated,
  3. the oracle — the same preference without noise — judges fresh samples of the new version and
     of the base on held-out prompts: wins / (wins + losses) with a 95% Wilson interval, ties beside it.
Writes a markdown table, a JSON file and a PNG chart (win rate and KL by round) and prints the wall
time of each phase.

    .venv/bin/python bench/bench_learning.py --preferences on_topic,polite --rounds 3 --judgments 400
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.ratings.bradley_terry import wilson_interval  # noqa: E402
from app.simulate import preferences  # noqa: E402
from app.simulate.runner import AnnotatorSpec, provision, simulate  # noqa: E402
from trainer import metrics as M  # noqa: E402
from trainer.embedded.task import make_prompts  # noqa: E402
from trainer.generate import SamplingParams  # noqa: E402
from trainer.oracle import oracle_win_rate  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(data_dir: Path, port: int, env_extra: dict) -> subprocess.Popen:
    env = {**os.environ, "PREFLOOP_DATA_DIR": str(data_dir), "PREFLOOP_PORT": str(port),
           "PREFLOOP_CREATE_FIRST_ADMIN": "false", **env_extra}
    log = open(data_dir / "server.log", "w")  # noqa: SIM115 - lives as long as the server
    return subprocess.Popen([str(ROOT / ".venv/bin/prefloop"), "serve"], env=env, stdout=log,
                            stderr=subprocess.STDOUT, start_new_session=True)


def prefloop(data_dir: Path, *args: str) -> str:
    env = {**os.environ, "PREFLOOP_DATA_DIR": str(data_dir)}
    return subprocess.run([str(ROOT / ".venv/bin/prefloop"), *args], env=env, check=True,
                          capture_output=True, text=True).stdout


def wait_ready(url: str, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server did not become ready")


def run_round(client: httpx.Client, overrides: dict, timeout_s: float) -> dict:
    launched = client.post("/api/v1/rounds", json=overrides)
    launched.raise_for_status()
    round_id = launched.json()["id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        state = client.get(f"/api/v1/rounds/{round_id}").json()
        if state["status"] not in ("queued", "running"):
            return state
        time.sleep(2)
    raise RuntimeError(f"round {round_id} did not finish in {timeout_s}s")


def bench_preference(name: str, args, base_dir: Path, workdir: Path) -> list[dict]:
    data_dir = workdir / name
    shutil.copytree(base_dir, data_dir)  # the bootstrapped policy and demo prompts, fresh database copy
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    server = start_server(data_dir, port, {"PREFLOOP_TRAINING_AUTO_ACTIVATE": "true",
                                           "PREFLOOP_SAMPLER_LOW_WATER": str(args.low_water)})
    rows = []
    try:
        wait_ready(url)
        prefloop(data_dir, "users", "create", "bench-admin", "--admin", "--password", "bench-admin-pw")
        admin_token = prefloop(data_dir, "tokens", "create", "bench-admin").strip()
        names = [f"sim-{name}-{i}" for i in range(args.annotators)]
        tokens = asyncio.run(provision(url, admin_token, names))
        preference = preferences.load(name)
        specs = [AnnotatorSpec(n, preference, noise=args.noise) for n in names]
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60)
        base_path = client.get("/api/v1/policies/1").json()["path"]
        heldout = make_prompts(args.oracle_prompts, seed=1234, split="heldout")
        params = SamplingParams(temperature=args.temperature, top_p=1.0, max_new_tokens=args.max_new_tokens)
        overrides = json.loads(args.round_config)
        for k in range(1, args.rounds + 1):
            started = time.perf_counter()
            stats = asyncio.run(simulate(url, tokens, specs, args.judgments, seed=k))
            judge_s = time.perf_counter() - started
            started = time.perf_counter()
            state = run_round(client, overrides, args.round_timeout_s)
            train_s = time.perf_counter() - started
            if state["status"] != "succeeded":
                rows.append({"preference": name, "round": k, "status": state["status"], "error": state["error"]})
                break
            policy = client.get(f"/api/v1/policies/{state['policy_number']}").json()
            started = time.perf_counter()
            oracle = oracle_win_rate(policy["path"], base_path, heldout, preference, params, seed=k)
            oracle_s = time.perf_counter() - started
            decided = oracle.wins + oracle.losses
            results = state["results"]
            rows.append({
                "preference": name, "round": k, "status": state["status"], "version": state["policy_number"],
                "judgments": stats.acknowledged,
                "rm_heldout_accuracy": results["reward_model"].get(M.RM_EVAL_ACCURACY),
                "kl_to_base": results["evaluate"].get("eval/kl"),
                "oracle_wins": oracle.wins, "oracle_losses": oracle.losses, "oracle_ties": oracle.ties,
                "oracle_win_rate": oracle.win_rate, "oracle_ci95": wilson_interval(oracle.wins, decided),
                "oracle_tie_rate": oracle.tie_rate,
                "seconds": {"judging": round(judge_s, 1), "training": round(train_s, 1), "oracle": round(oracle_s, 1)},
                "gates": results.get("gates"),
            })
            print(json.dumps(rows[-1]), flush=True)
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        server.wait(timeout=60)
    return rows


def table(rows: list[dict]) -> str:
    lines = ["| preference | round | RM held-out acc | KL to base | oracle win rate vs base (95% CI) | ties | "
             "judge s | train s | oracle s |", "|---|---|---|---|---|---|---|---|---|"]
    for r in rows:
        if r["status"] != "succeeded":
            lines.append(f"| {r['preference']} | {r['round']} | {r['status']}: {r.get('error', '')} |||||||")
            continue
        ci = r["oracle_ci95"]
        acc = r["rm_heldout_accuracy"]
        kl = r["kl_to_base"]
        lines.append(
            f"| {r['preference']} | {r['round']} | {acc:.3f} | {kl:.3f} | {r['oracle_win_rate']:.3f} "
            f"({ci[0]:.3f}–{ci[1]:.3f}) | {r['oracle_tie_rate']:.2f} | {r['seconds']['judging']} | "
            f"{r['seconds']['training']} | {r['seconds']['oracle']} |"
            if acc is not None and kl is not None and r["oracle_win_rate"] is not None else
            f"| {r['preference']} | {r['round']} | {acc} | {kl} | {r['oracle_win_rate']} | {r['oracle_tie_rate']} | "
            f"{r['seconds']} |||"
        )
    return "\n".join(lines)


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_win, ax_kl) = plt.subplots(1, 2, figsize=(10, 4))
    for name in sorted({r["preference"] for r in rows}):
        done = [r for r in rows if r["preference"] == name and r["status"] == "succeeded"]
        rounds = [r["round"] for r in done]
        rates = [r["oracle_win_rate"] for r in done]
        low = [r["oracle_win_rate"] - r["oracle_ci95"][0] for r in done]
        high = [r["oracle_ci95"][1] - r["oracle_win_rate"] for r in done]
        ax_win.errorbar(rounds, rates, yerr=[low, high], marker="o", capsize=4, label=name)
        ax_kl.plot(rounds, [r["kl_to_base"] for r in done], marker="o", label=name)
    ax_win.axhline(0.5, color="grey", lw=1, ls="--")
    ax_win.axhline(0.75, color="green", lw=1, ls=":", label="goal 0.75")
    ax_win.set(title="Oracle win rate vs base (95% CI)", xlabel="round", ylabel="wins / (wins + losses)", ylim=(0, 1))
    ax_kl.set(title="KL to base", xlabel="round", ylabel="nats / response")
    for ax in (ax_win, ax_kl):
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preferences", default="on_topic,polite")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--judgments", type=int, default=400, help="judgments per round")
    parser.add_argument("--annotators", type=int, default=4)
    parser.add_argument("--noise", type=float, default=0.1)
    parser.add_argument("--oracle-prompts", type=int, default=300)
    parser.add_argument("--temperature", type=float, default=0.7, help="oracle sampling temperature")
    parser.add_argument("--max-new-tokens", type=int, default=64)
    parser.add_argument("--low-water", type=int, default=64)
    parser.add_argument("--preset", default="default", help="embedded policy preset: default | test")
    parser.add_argument("--round-config", default="{}", help="JSON overrides for each round")
    parser.add_argument("--round-timeout-s", type=float, default=3600)
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "learning")
    args = parser.parse_args()

    with tempfile.TemporaryDirectory(prefix="prefloop-learning-") as tmp:
        workdir = Path(tmp)
        base_dir = workdir / "base"
        base_dir.mkdir()
        started = time.perf_counter()
        prefloop(base_dir, "db", "upgrade")
        prefloop(base_dir, "bootstrap", "--preset", args.preset)
        print(f"bootstrap: {time.perf_counter() - started:.1f}s", flush=True)
        rows = []
        for name in args.preferences.split(","):
            rows += bench_preference(name, args, base_dir, workdir)
    args.out.mkdir(parents=True, exist_ok=True)
    (args.out / "learning.json").write_text(json.dumps(rows, indent=2))
    (args.out / "learning.md").write_text(table(rows) + "\n")
    print(table(rows))
    chart(rows, args.out / "learning.png")


if __name__ == "__main__":
    main()
