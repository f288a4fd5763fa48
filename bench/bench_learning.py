"""The learning benchmark: does the loop make the policy better, through the interfaces users use?

From the embedded policy and a fresh database, for each preference function, run K rounds of:
  1. scripted annotators judge M comparisons through the HTTP API (their own tokens, with noise),
  2. one training round, launched through the API with the app's default settings, runs on the server's
     local worker; its version is activated when it passes the activation rule (a round whose version
     stays a candidate is reported "not activated", and the next round starts from the active version),
  3. the oracle — the same preference without noise — judges fresh samples of the new version and
     of the base on held-out prompts (never used in training): wins / (wins + losses) with a 95% Wilson
     interval, ties beside it, and the win rate with ties counted as half a win.
Writes a markdown table, a JSON file and a PNG chart (win rate and KL by round) and prints the wall
time of each phase. The server runs with the app's defaults; --round-config and --server-env are for
experiments.

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
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PREFLOOP = str(Path(sys.executable).with_name("prefloop"))  # the console script of this environment

from app.ratings.bradley_terry import wilson_interval  # noqa: E402
from app.simulate import preferences  # noqa: E402
from app.simulate.runner import AnnotatorSpec, annotator_names, provision, simulate  # noqa: E402
from trainer import metrics as M  # noqa: E402
from trainer.embedded.task import make_prompts  # noqa: E402
from trainer.generate import SamplingParams  # noqa: E402
from trainer.oracle import oracle_win_rate  # noqa: E402


@dataclass
class LoopConfig:
    """One learning run's knobs; the CI-sized test (tests/simulate/test_learning_loop.py) shrinks them."""

    rounds: int = 3
    judgments: int = 400  # acknowledged judgments per round
    annotators: int = 4
    noise: float = 0.1  # share of random answers per annotator
    oracle_prompts: int = 300  # held-out prompts the oracle judges per round
    # "rephrased": training subjects asked in words never used in training (RL prompts are "train");
    # "heldout": subjects the policy never saw at all, where it cannot be on topic (trainer/embedded/task.py)
    oracle_split: str = "rephrased"
    temperature: float = 0.7  # oracle sampling temperature (the PPO rollout default)
    max_new_tokens: int = 64
    round_config: dict = field(default_factory=dict)  # overrides for every round (POST /api/v1/rounds)
    round_timeout_s: float = 3600
    server_env: dict = field(default_factory=dict)  # extra PREFLOOP_* settings for the server


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def prefloop(data_dir: Path, *args: str) -> str:
    env = {**os.environ, "PREFLOOP_DATA_DIR": str(data_dir)}
    return subprocess.run([PREFLOOP, *args], env=env, check=True, capture_output=True, text=True).stdout


def bootstrap(base_dir: Path, preset: str) -> None:
    """A data directory with a fresh database, the embedded policy and its demo prompts."""
    base_dir.mkdir(parents=True, exist_ok=True)
    prefloop(base_dir, "db", "upgrade")
    prefloop(base_dir, "bootstrap", "--preset", preset)


@contextmanager
def running_server(data_dir: Path, env_extra: dict) -> Iterator[str]:
    """`prefloop serve` (web app, sampler and a local training worker) on a free port; yields its URL."""
    port = free_port()
    env = {
        **os.environ,
        "PREFLOOP_DATA_DIR": str(data_dir),
        "PREFLOOP_PORT": str(port),
        "PREFLOOP_CREATE_FIRST_ADMIN": "false",
        **env_extra,
    }
    with open(data_dir / "server.log", "w") as log:
        server = subprocess.Popen(
            [PREFLOOP, "serve"], env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True
        )
        try:
            url = f"http://127.0.0.1:{port}"
            wait_ready(url, server)
            yield url
        finally:
            os.killpg(server.pid, signal.SIGTERM)
            server.wait(timeout=60)


def wait_ready(url: str, server: subprocess.Popen, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and server.poll() is None:
        try:
            if httpx.get(f"{url}/readyz", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        time.sleep(0.5)
    raise RuntimeError("server did not become ready; see server.log in its data directory")


def run_round(client: httpx.Client, overrides: dict, timeout_s: float) -> dict:
    launched = client.post("/api/v1/rounds", json=overrides)
    launched.raise_for_status()
    round_id = launched.json()["id"]
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        response = client.get(f"/api/v1/rounds/{round_id}")
        if response.status_code != 200:  # say what the server answered, and keep polling until the deadline
            print(f"round {round_id}: HTTP {response.status_code}: {response.text[:500]}", file=sys.stderr, flush=True)
            time.sleep(2)
            continue
        state = response.json()
        if state["status"] not in ("queued", "running"):
            return state
        time.sleep(2)
    raise RuntimeError(f"round {round_id} did not finish in {timeout_s}s")


def learn(name: str, config: LoopConfig, base_dir: Path, data_dir: Path, log=print, seed: int = 0) -> list[dict]:
    """K rounds of (judge M pairs through the API, train, activate, oracle vs base) for one preference.

    `base_dir` (from bootstrap) is copied to `data_dir`, so each preference starts from the same base.
    `seed` seeds the sampler, the annotators and the oracle (the round settings stay the app's defaults).
    Returns one row per round. A round rejected by its gates, or whose version is not activated, is
    reported and the loop carries on (the next round has more judgments); a failed or cancelled one ends it.
    """
    shutil.copytree(base_dir, data_dir)
    preference = preferences.load(name)
    rows = []
    with running_server(data_dir, {"PREFLOOP_SAMPLER_SEED": str(seed), **config.server_env}) as url:
        prefloop(data_dir, "users", "create", "bench-admin", "--admin", "--password", "bench-admin-pw")
        admin_token = prefloop(data_dir, "tokens", "create", "bench-admin").strip()
        names = annotator_names(name, config.annotators)
        tokens = asyncio.run(provision(url, admin_token, names))
        specs = [AnnotatorSpec(n, preference, noise=config.noise) for n in names]
        client = httpx.Client(base_url=url, headers={"Authorization": f"Bearer {admin_token}"}, timeout=60)
        base_path = client.get("/api/v1/policies/1").json()["path"]
        for k in range(1, config.rounds + 1):
            started = time.perf_counter()
            stats = asyncio.run(simulate(url, tokens, specs, config.judgments, seed=k + 1000 * seed))
            judge_s = time.perf_counter() - started
            started = time.perf_counter()
            state = run_round(client, config.round_config, config.round_timeout_s)
            train_s = time.perf_counter() - started
            if state["status"] != "succeeded":
                rows.append(
                    {
                        "preference": name,
                        "seed": seed,
                        "round": k,
                        "status": state["status"],
                        "error": state["error"],
                        "results": state["results"],
                    }
                )
                log(json.dumps(rows[-1]))
                if state["status"] == "rejected":
                    continue
                break
            policy = client.get(f"/api/v1/policies/{state['policy_number']}").json()
            started = time.perf_counter()
            judged = oracle_fields(policy["path"], base_path, config, preference, seed=k + 1000 * seed)
            oracle_s = time.perf_counter() - started
            results = state["results"]
            rows.append(
                {
                    "preference": name,
                    "seed": seed,
                    "round": k,
                    "status": state["status"] if policy["status"] == "active" else "not activated",
                    "version": state["policy_number"],
                    "judgments": stats.acknowledged,
                    "oracle_split": config.oracle_split,
                    "rm_heldout_accuracy": results["reward_model"].get(M.RM_EVAL_ACCURACY),
                    "kl_to_base": results["evaluate"].get("eval/kl"),
                    **judged,
                    "seconds": {
                        "judging": round(judge_s, 1),
                        "training": round(train_s, 1),
                        "oracle": round(oracle_s, 1),
                    },
                    "gates": results.get("gates"),
                    # activated only on a confident held-out gain; a candidate leaves the next round where it was
                    "activation": results.get("activation", {}).get("decision"),
                    "config": _derived_settings(state["config"]),
                }
            )
            log(json.dumps(rows[-1]))
    return rows


def oracle_fields(policy_path: str, base_path: str, config: LoopConfig, preference, seed: int) -> dict:
    """A row's oracle figures: independent draws for the two sides (the headline), and paired draws (one
    seed for both, ties wherever the policy did not change), as the earlier figures were measured."""
    prompts = make_prompts(config.oracle_prompts, seed=1234, split=config.oracle_split)
    params = SamplingParams(temperature=config.temperature, top_p=1.0, max_new_tokens=config.max_new_tokens)
    oracle, paired = oracle_win_rate(policy_path, base_path, prompts, preference, params, seed=seed)
    return {
        "oracle_wins": oracle.wins,
        "oracle_losses": oracle.losses,
        "oracle_ties": oracle.ties,
        "oracle_win_rate": oracle.win_rate,
        "oracle_win_rate_ties_half": oracle.win_rate_ties_half,
        "oracle_ci95": wilson_interval(oracle.wins, oracle.wins + oracle.losses),
        "oracle_tie_rate": oracle.tie_rate,
        "oracle_paired": {
            "wins": paired.wins,
            "losses": paired.losses,
            "ties": paired.ties,
            "win_rate": paired.win_rate,
        },  # fmt: skip
        # the samples described (task qualities, evasive share, words): what the win cost
        "oracle_new": oracle.new,
        "oracle_base": oracle.base,
    }


def rejudge(rows: list[dict], keep: Path, config: LoopConfig) -> list[dict]:
    """The oracle figures of a kept run (--keep) measured again, e.g. after the oracle changed; each
    version is read from its preference's data directory, the rest of the row is kept."""
    out = []
    for row in rows:
        if "version" in row:
            seed = row.get("seed", 0)
            data_dir = keep / (row["preference"] if seed == 0 else f"{row['preference']}-seed{seed}")
            policies = data_dir / "registry" / "policy"
            judged = oracle_fields(str(policies / f"v{row['version']:04d}"), str(policies / "v0001"), config,
                                   preferences.load(row["preference"]), seed=row["round"] + 1000 * seed)  # fmt: skip
            row = row | judged
            print(json.dumps(row), flush=True)
        out.append(row)
    return out


# What the oracle's samples are like, base → new, beside every win rate (digits shown): a win bought with
# evasions, with answers about another subject, or with false claims shows here.
SIDE_COLUMNS = (("helpful", 2), ("evasive", 2), ("on_topic", 2), ("correct", 2), ("words", 1))


def table(rows: list[dict]) -> str:
    """One line per round and seed; the side-effect columns read "base → new" on the oracle's samples."""
    lines = [
        "| preference | seed | round | outcome | RM held-out acc (gate) | KL to base | decisive win rate (95% CI) | "
        "ties as half | wins–losses–ties | tie rate | paired: decisive (W–L–T) | "
        + " | ".join(q.replace("_", " ") for q, _ in SIDE_COLUMNS)
        + " | judge / train / oracle s |",
        "|---|---|---|---|---|---|---|---|---|---|---|" + "---|" * len(SIDE_COLUMNS) + "---|",
    ]
    for r in rows:
        if "oracle_wins" not in r:
            lines.append(
                f"| {r['preference']} | {r.get('seed', 0)} | {r['round']} | {r['status']}: {r.get('error', '')} |"
                + "|" * (8 + len(SIDE_COLUMNS))
            )
            continue
        ci, rate = r["oracle_ci95"], r["oracle_win_rate"]
        decisive = f"**{rate:.3f}** ({ci[0]:.3f}–{ci[1]:.3f})" if rate is not None else "no decisive pair"
        seconds = r["seconds"]
        lines.append(
            f"| {r['preference']} | {r.get('seed', 0)} | {r['round']} | {r['status']} | "
            f"{_number(r['rm_heldout_accuracy'])} ({_number(r['config']['min_rm_accuracy'])}) | "
            f"{_number(r['kl_to_base'], 2)} | {decisive} | {r['oracle_win_rate_ties_half']:.3f} | "
            f"{r['oracle_wins']}–{r['oracle_losses']}–{r['oracle_ties']} | {r['oracle_tie_rate']:.2f} | "
            f"{_paired(r)} | " + " | ".join(_change(r, q, d) for q, d in SIDE_COLUMNS) + " | "
            f"{seconds['judging']} / {seconds['training']} / {seconds['oracle']} |"
        )
    return "\n".join(lines)


def summary(rows: list[dict]) -> str:
    """Mean ± sd over the seeds, per preference and round (a round a seed did not measure is counted out)."""
    lines = [
        "| preference | round | seeds measured | decisive win rate | ties as half | tie rate | "
        + " | ".join(q.replace("_", " ") for q, _ in SIDE_COLUMNS)
        + " |",
        "|---|---|---|---|---|---|" + "---|" * len(SIDE_COLUMNS),
    ]
    for name in dict.fromkeys(r["preference"] for r in rows):
        for k in sorted({r["round"] for r in rows if r["preference"] == name}):
            runs = [r for r in rows if (r["preference"], r["round"]) == (name, k)]
            done = [r for r in runs if r.get("oracle_win_rate") is not None]
            if not done:
                lines.append(f"| {name} | {k} | 0 of {len(runs)} |" + "|" * (3 + len(SIDE_COLUMNS)))
                continue
            lines.append(
                f"| {name} | {k} | {len(done)} of {len(runs)} | {_spread([r['oracle_win_rate'] for r in done])} | "
                f"{_spread([r['oracle_win_rate_ties_half'] for r in done])} | "
                f"{_spread([r['oracle_tie_rate'] for r in done], 2)} | "
                + " | ".join(
                    f"{_spread([r['oracle_base'][q] for r in done], d)} → "
                    f"{_spread([r['oracle_new'][q] for r in done], d)}"
                    if all(q in r["oracle_new"] for r in done)
                    else "—"  # a run measured before the quality existed
                    for q, d in SIDE_COLUMNS
                )
                + " |"
            )
    return "\n".join(lines)


def _paired(row: dict) -> str:
    paired = row.get("oracle_paired")
    if not paired:
        return "—"
    return f"{_number(paired['win_rate'])} ({paired['wins']}–{paired['losses']}–{paired['ties']})"


def _change(row: dict, quality: str, digits: int = 2) -> str:
    if quality not in row["oracle_new"]:  # measured before the quality existed
        return "—"
    return f"{row['oracle_base'][quality]:.{digits}f} → {row['oracle_new'][quality]:.{digits}f}"


def _spread(values: list[float], digits: int = 3) -> str:
    mean = statistics.fmean(values)
    return f"{mean:.{digits}f} ± {statistics.stdev(values):.{digits}f}" if len(values) > 1 else f"{mean:.{digits}f}"


def _derived_settings(config: dict) -> dict:
    """The size-dependent settings the round ran with (trainer/defaults.py), for the record."""
    return {
        "reward": {k: config["reward"][k] for k in ("learning_rate", "batch_size", "num_epochs")},
        "ppo": {k: config["ppo"][k] for k in ("learning_rate", "num_prompt_epochs")},
        "heldout_fraction": config["data"]["heldout_fraction"],
        "min_rm_accuracy": config["gates"]["min_rm_accuracy"],
    }


def _number(value: float | None, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def chart(rows: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (ax_win, ax_kl) = plt.subplots(1, 2, figsize=(10, 4))
    runs = sorted({(r["preference"], r.get("seed", 0)) for r in rows})
    seeds = len({seed for _, seed in runs})
    for name, seed in runs:  # one line per run: a line never joins two seeds' rounds
        done = [r for r in rows if (r["preference"], r.get("seed", 0)) == (name, seed)
                and r.get("oracle_win_rate") is not None]  # fmt: skip
        label = f"{name}, seed {seed}" if seeds > 1 else name
        rounds = [r["round"] for r in done]
        rates = [r["oracle_win_rate"] for r in done]
        low = [r["oracle_win_rate"] - r["oracle_ci95"][0] for r in done]
        high = [r["oracle_ci95"][1] - r["oracle_win_rate"] for r in done]
        ax_win.errorbar(rounds, rates, yerr=[low, high], marker="o", capsize=4, label=label)
        ax_kl.plot(rounds, [r["kl_to_base"] for r in done], marker="o", label=label)
    ax_win.axhline(0.5, color="grey", lw=1, ls="--")
    ax_win.axhline(0.9, color="green", lw=1, ls=":", label="goal 0.9 (decisive)")
    ax_win.set(title="Oracle win rate vs base (95% CI)", xlabel="round", ylabel="wins / (wins + losses)", ylim=(0, 1))
    ax_kl.set(title="KL to base", xlabel="round", ylabel="nats / response")
    for ax in (ax_win, ax_kl):
        ax.set_xticks(sorted({r["round"] for r in rows}))
        ax.legend()
        ax.grid(alpha=0.3)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    defaults = LoopConfig()
    parser.add_argument("--preferences", default="on_topic,polite")
    parser.add_argument("--rounds", type=int, default=defaults.rounds)
    parser.add_argument(
        "--seeds", type=int, default=1, help="runs per preference, each seeding sampler, annotators and oracle anew"
    )
    parser.add_argument("--judgments", type=int, default=defaults.judgments, help="judgments per round")
    parser.add_argument("--annotators", type=int, default=defaults.annotators)
    parser.add_argument("--noise", type=float, default=defaults.noise)
    parser.add_argument("--oracle-prompts", type=int, default=defaults.oracle_prompts)
    parser.add_argument("--oracle-split", choices=("rephrased", "heldout"), default=defaults.oracle_split)
    parser.add_argument("--temperature", type=float, default=defaults.temperature, help="oracle sampling temperature")
    parser.add_argument("--max-new-tokens", type=int, default=defaults.max_new_tokens)
    parser.add_argument("--preset", default="default", help="embedded policy preset: default | test")
    parser.add_argument("--base-dir", type=Path, help="reuse a bootstrapped data directory instead of building one")
    parser.add_argument("--round-config", default="{}", help="JSON overrides for each round")
    parser.add_argument("--round-timeout-s", type=float, default=defaults.round_timeout_s)
    parser.add_argument(
        "--server-env", default="{}", help='JSON of extra server settings, e.g. {"PREFLOOP_SAMPLER_LOW_WATER": "128"}'
    )
    parser.add_argument("--out", type=Path, default=ROOT / "docs" / "learning")
    parser.add_argument(
        "--keep", type=Path, help="keep each preference's data directory here (its database holds the samples to read)"
    )
    parser.add_argument(
        "--rejudge",
        type=Path,
        metavar="LEARNING_JSON",
        help="run no loop: measure the oracle figures of a kept run (--keep its directory) again, write to --out",
    )
    args = parser.parse_args()
    config = LoopConfig(
        rounds=args.rounds,
        judgments=args.judgments,
        annotators=args.annotators,
        noise=args.noise,
        oracle_prompts=args.oracle_prompts,
        oracle_split=args.oracle_split,
        temperature=args.temperature,
        max_new_tokens=args.max_new_tokens,
        round_config=json.loads(args.round_config),
        round_timeout_s=args.round_timeout_s,
        server_env=json.loads(args.server_env),
    )

    for name in args.preferences.split(","):  # a misbehaving preference fails here, before any bootstrap
        try:
            preferences.load(name)
        except ValueError as exc:
            parser.error(str(exc))
    if args.rejudge:
        if args.keep is None:
            parser.error("--rejudge needs --keep: the directory the run kept its data directories in")
        write_report(rejudge(json.loads(args.rejudge.read_text()), args.keep, config), args.out)
        return
    with tempfile.TemporaryDirectory(prefix="prefloop-learning-") as tmp:
        workdir = args.keep or Path(tmp)
        base_dir = args.base_dir
        if base_dir is None:
            started = time.perf_counter()
            base_dir = workdir / "base"
            bootstrap(base_dir, args.preset)
            print(f"bootstrap: {time.perf_counter() - started:.1f}s", flush=True)
        rows = []
        for name in args.preferences.split(","):
            for seed in range(args.seeds):
                data_dir = workdir / (name if seed == 0 else f"{name}-seed{seed}")
                rows += learn(name, config, base_dir, data_dir, log=lambda line: print(line, flush=True), seed=seed)
    write_report(rows, args.out)


def write_report(rows: list[dict], out: Path) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / "learning.json").write_text(json.dumps(rows, indent=2))
    report = f"{table(rows)}\n\nMean ± sd over seeds:\n\n{summary(rows)}\n"
    (out / "learning.md").write_text(report)
    print(report)
    chart(rows, out / "learning.png")


if __name__ == "__main__":
    main()
