"""Annotation load benchmark: "next pair" and "submit judgment" with concurrent simulated annotators.

The database gets 2,000 ready comparisons (10 % of them for two annotators, the default overlap share)
and 100,000 stored judgments (50,000 completed pairs judged twice, by 64 annotators, over 30 days),
seeded with bulk inserts. The real server then runs as its own process (`prefloop serve`, the default
worker count), and an asyncio httpx client on loopback plays N annotators, each with its own API token,
each looping GET /api/v1/queue/next -> POST /api/v1/judgments. After a short warm-up, the same
client first measures its own ceiling on this machine (GET /healthz: no database, no auth, back to
back from as many tasks), then two measured phases:

- saturated: no think time (a closed loop: the load is as high as the server lets it be, like the
  wrk runs of the Label Studio anchor); latency there is mostly time spent queueing behind the
  other 31 annotators' requests.
- paced: each annotator thinks --think-ms (0.5x..1.5x) before submitting, still far faster than
  people judge two completions; latency there is the server's service time under concurrency.

Every annotator stops after its pair budget or at the --duration limit, whichever comes first; the
budgets keep the 2,000-pair pool from running dry mid-run (empty-pool answers are reported).

    python bench/bench_annotation.py --db sqlite
    python bench/bench_annotation.py --db postgresql --postgres-url postgresql+psycopg://root@127.0.0.1:5432/postgres

Prints one table per phase: per endpoint, throughput and p50/p99 latency as the load client saw it,
p50/p99 as the server's own request log saw it (time spent inside the server process: it leaves out
the client's side and the wait before the server reads a request), and errors. --json adds the same
as JSON.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import httpx
import psutil
from sqlalchemy import create_engine, func, insert, select, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from app.auth import service as auth_service  # noqa: E402
from app.auth.models import Role, User  # noqa: E402
from app.comparisons.models import Choice, Comparison, ComparisonStatus, Completion  # noqa: E402
from app.core.db import Database, utcnow  # noqa: E402
from app.core.migrations import upgrade_to_head  # noqa: E402
from app.core.security import hash_password  # noqa: E402
from app.judgments.models import Judgment  # noqa: E402
from app.policies.models import PolicyStatus, PolicyVersion  # noqa: E402
from app.prompts.models import Prompt  # noqa: E402

CHUNK = 5_000


# --- seeding ------------------------------------------------------------------------------------


def _bulk(session, model, rows: list[dict]) -> None:
    for start in range(0, len(rows), CHUNK):
        session.execute(insert(model), rows[start : start + CHUNK])


def seed(
    db: Database,
    *,
    ready: int,
    history_pairs: int,
    annotators: int,
    history_annotators: int,
    overlap_share: float,
    rng: random.Random,
) -> list[str]:
    """Fill the database; return one API token per load annotator."""
    now = utcnow()
    password_hash = hash_password("bench password")
    with db.session() as session:
        session.add(PolicyVersion(id=1, number=1, path="/nonexistent", status=PolicyStatus.active))
        session.flush()
        users = [
            {
                "id": i + 1,
                "username": f"annotator{i}",
                "password_hash": password_hash,
                "role": Role.annotator,
                "is_active": True,
                "excluded_from_training": False,
                "session_version": 0,
                "created_at": now,
            }
            for i in range(annotators + history_annotators)
        ]
        _bulk(session, User, users)

        history_prompts = max(1, history_pairs // 10)
        prompts, completions, comparisons, judgments = [], [], [], []
        for p in range(history_prompts + ready):
            tag = uuid.UUID(int=rng.getrandbits(128)).hex
            content = f"Prompt {p}: explain item {tag[:8]} in two sentences."
            prompts.append(
                {
                    "id": p + 1,
                    "messages": [{"role": "user", "content": content}],
                    "text": content,
                    "source": "bench",
                    "tags": [],
                    "content_hash": tag + tag,
                    "is_active": True,
                    "created_at": now,
                }
            )
        answer = "A plausible answer of a few sentences. " * 6
        for c in range(history_pairs + ready):
            is_history = c < history_pairs
            prompt_id = (c % history_prompts) + 1 if is_history else history_prompts + (c - history_pairs) + 1
            a_id, b_id = 2 * c + 1, 2 * c + 2
            for completion_id in (a_id, b_id):
                completions.append(
                    {
                        "id": completion_id,
                        "prompt_id": prompt_id,
                        "policy_version_id": 1,
                        "text": f"{answer}({completion_id})",
                        "token_count": 60,
                        "finish_reason": "eos",
                        "sampling": {},
                        "created_at": now,
                    }
                )
            target = 2 if is_history or rng.random() < overlap_share else 1
            comparisons.append(
                {
                    "id": c + 1,
                    "prompt_id": prompt_id,
                    "completion_a_id": a_id,
                    "completion_b_id": b_id,
                    "status": ComparisonStatus.completed if is_history else ComparisonStatus.ready,
                    "overlap_target": target,
                    "judgment_count": target if is_history else 0,
                    "is_gold": False,
                    "created_at": now,
                }
            )
            if is_history:
                for annotator_id in rng.sample(range(1, annotators + history_annotators + 1), 2):
                    created = now - timedelta(seconds=rng.uniform(0, 30 * 24 * 3600))
                    judgments.append(
                        {
                            "comparison_id": c + 1,
                            "annotator_id": annotator_id,
                            "choice": rng.choice(list(Choice)),
                            "strength": rng.choice([None, 1, 2, 3]),
                            "rationale": "",
                            "shown_left": rng.choice("ab"),
                            "time_spent_ms": 20_000,
                            "channel": "browser",
                            "created_at": created,
                        }
                    )
        _bulk(session, Prompt, prompts)
        _bulk(session, Completion, completions)
        _bulk(session, Comparison, comparisons)
        _bulk(session, Judgment, judgments)
        if db.engine.dialect.name == "postgresql":
            # Explicit ids above: move every id sequence past them.
            for table in ("users", "prompts", "completions", "comparisons", "judgments", "policy_versions"):
                session.execute(
                    text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                )
        tokens = []
        for user_id in range(1, annotators + 1):
            _api_token, token = auth_service.create_token(db=session, user=session.get(User, user_id), name="bench")
            tokens.append(token)
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))
    return tokens


# --- the server ---------------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def start_server(database_url: str, data_dir: Path, port: int, log_path: Path) -> subprocess.Popen:
    """`prefloop serve` in its own process, with the default worker count."""
    env = {
        **os.environ,
        "PREFLOOP_DATABASE_URL": database_url,
        "PREFLOOP_DATA_DIR": str(data_dir),
        "PREFLOOP_PORT": str(port),
        "PREFLOOP_RUN_BACKGROUND": "false",
        "PREFLOOP_CREATE_FIRST_ADMIN": "false",
        "PREFLOOP_SECRET_KEY": "bench-secret",
    }
    prefloop = Path(sys.executable).with_name("prefloop")
    command = (
        [str(prefloop), "serve"]
        if prefloop.exists()
        else [sys.executable, "-c", "from app.cli import main; main()", "serve"]
    )
    log = log_path.open("w")
    server = subprocess.Popen(command, cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise RuntimeError(f"the server exited; see {log_path}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/healthz", timeout=1).status_code == 200:
                return server
        except httpx.TransportError:
            pass
        time.sleep(0.2)
    raise RuntimeError(f"the server did not answer within 60 s; see {log_path}")


def stop_server(server: subprocess.Popen) -> None:
    os.killpg(server.pid, signal.SIGTERM)
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        os.killpg(server.pid, signal.SIGKILL)
        server.wait()


# --- the load -----------------------------------------------------------------------------------


@dataclass
class Samples:
    # Seen by the load client: from sending the request to reading the whole response.
    latencies: dict[str, list[float]] = field(default_factory=lambda: {"next": [], "submit": []})
    # Seen by the server: its own per-request log line (app.main's request log), in seconds.
    server: dict[str, list[float]] = field(default_factory=lambda: {"next": [], "submit": []})
    # CPU seconds the phase cost the server process and this load client.
    server_cpu_s: float = 0.0
    client_cpu_s: float = 0.0
    errors: dict[str, int] = field(default_factory=lambda: {"next": 0, "submit": 0})
    empty: int = 0


async def timed(samples: Samples | None, endpoint: str, request) -> httpx.Response | None:
    """Await one request, recording its latency; a transport error counts as an error (None)."""
    started = time.perf_counter()
    try:
        response = await request
    except httpx.TransportError:
        response = None
    if samples is not None:
        samples.latencies[endpoint].append(time.perf_counter() - started)
        if response is None:
            samples.errors[endpoint] += 1
    return response


async def annotate(
    client: httpx.AsyncClient,
    token: str,
    samples: Samples | None,
    *,
    pairs: int,
    deadline: float,
    think_s: float,
    rng: random.Random,
) -> None:
    """One simulated annotator: next -> (think) -> submit, until its pair budget or the deadline.

    Thinking happens between seeing a pair and submitting it, as on the page (where the next pair is
    already prefetched when a submit goes out): a random 0.5x..1.5x think_s, starting out of step.
    """
    headers = {"Authorization": f"Bearer {token}"}
    if think_s:
        await asyncio.sleep(rng.uniform(0, think_s))
    for _ in range(pairs):
        if time.perf_counter() >= deadline:
            return
        response = await timed(samples, "next", client.get("/api/v1/queue/next", headers=headers))
        if response is not None and response.status_code == 204:
            if samples is not None:
                samples.empty += 1
            return
        if response is None or response.status_code != 200:
            if samples is not None and response is not None:
                samples.errors["next"] += 1
            continue
        body = {
            "comparison_id": response.json()["comparison_id"],
            "choice": rng.choice(["left", "right", "tie", "both_bad"]),
            "client_request_id": uuid.uuid4().hex,
            "time_spent_ms": rng.randint(3_000, 60_000),
        }
        if think_s:
            await asyncio.sleep(rng.uniform(0.5 * think_s, 1.5 * think_s))
        response = await timed(samples, "submit", client.post("/api/v1/judgments", json=body, headers=headers))
        if samples is not None and response is not None and response.status_code != 201:
            samples.errors["submit"] += 1


async def run_phase(
    client: httpx.AsyncClient,
    tokens: list[str],
    *,
    pairs: int,
    duration: float,
    think_s: float,
    rng: random.Random,
    measured: bool = True,
) -> tuple[Samples, float]:
    """All annotators at once; returns their samples and the phase's wall time."""
    samples = Samples() if measured else None
    started = time.perf_counter()
    deadline = started + duration
    await asyncio.gather(
        *(
            annotate(
                client,
                token,
                samples,
                pairs=pairs,
                deadline=deadline,
                think_s=think_s,
                rng=random.Random(rng.random()),
            )
            for token in tokens
        )
    )
    return samples, time.perf_counter() - started


SERVER_LINE = re.compile(r"prefloop\.http: (GET|POST) (\S+) \d+ ([\d.]+)ms")
ENDPOINTS = {("GET", "/api/v1/queue/next"): "next", ("POST", "/api/v1/judgments"): "submit"}


def server_times(log_path: Path, offset: int) -> dict[str, list[float]]:
    """Per-endpoint durations from the server's request log, from byte `offset` on."""
    times: dict[str, list[float]] = {"next": [], "submit": []}
    with log_path.open() as log:
        log.seek(offset)
        for match in SERVER_LINE.finditer(log.read()):
            endpoint = ENDPOINTS.get((match.group(1), match.group(2)))
            if endpoint is not None:
                times[endpoint].append(float(match.group(3)) / 1000)
    return times


async def ceiling(client: httpx.AsyncClient, concurrency: int, *, duration: float) -> tuple[float, float, float]:
    """What this client and machine reach at all: GET /healthz (no database, no auth) back to back from
    as many tasks as there are annotators. Returns (req/s, p50 s, p99 s)."""
    latencies: list[float] = []
    deadline = time.perf_counter() + duration

    async def loop() -> None:
        while time.perf_counter() < deadline:
            started = time.perf_counter()
            await client.get("/healthz")
            latencies.append(time.perf_counter() - started)

    started = time.perf_counter()
    await asyncio.gather(*(loop() for _ in range(concurrency)))
    rate = len(latencies) / (time.perf_counter() - started)
    return rate, percentile(latencies, 0.5), percentile(latencies, 0.99)


async def run_load(
    base_url: str,
    tokens: list[str],
    phases: list[tuple[str, int, float]],
    *,
    server_pid: int,
    log_path: Path,
    duration: float,
    warmup_pairs: int,
    seed: int,
) -> dict:
    """A warm-up, the harness's ceiling, then each phase (name, pairs per annotator, think seconds)."""
    # Idle connections are dropped before uvicorn's 5 s keep-alive timeout would close them under a
    # request being sent (a thinking annotator leaves its connection idle for seconds).
    limits = httpx.Limits(max_connections=len(tokens), max_keepalive_connections=len(tokens), keepalive_expiry=2.0)
    rng = random.Random(seed)
    results = {}
    async with httpx.AsyncClient(base_url=base_url, limits=limits, timeout=30) as client:
        await run_phase(client, tokens, pairs=warmup_pairs, duration=60, think_s=0, rng=rng, measured=False)
        results["ceiling"] = await ceiling(client, len(tokens), duration=duration / 2)
        server = psutil.Process(server_pid)
        for name, pairs, think_s in phases:
            offset = log_path.stat().st_size
            server_cpu, client_cpu = sum(server.cpu_times()[:2]), time.process_time()
            samples, elapsed = await run_phase(client, tokens, pairs=pairs, duration=duration, think_s=think_s, rng=rng)
            samples.server_cpu_s = sum(server.cpu_times()[:2]) - server_cpu
            samples.client_cpu_s = time.process_time() - client_cpu
            await asyncio.sleep(0.5)  # the last log lines
            samples.server = server_times(log_path, offset)
            results[name] = (samples, elapsed)
    return results


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=1000, method="inclusive")[int(q * 1000) - 1] if len(values) > 1 else values[0]


def summarize(samples: Samples, elapsed: float) -> dict:
    requests = sum(len(values) for values in samples.latencies.values()) or 1
    result = {
        "elapsed_s": round(elapsed, 2),
        "empty_pool_answers": samples.empty,
        "server_cpu_ms_per_request": round(samples.server_cpu_s / requests * 1000, 2),
        "client_cpu_ms_per_request": round(samples.client_cpu_s / requests * 1000, 2),
    }
    for endpoint, values in samples.latencies.items():
        server = samples.server[endpoint] or [0.0]
        result[endpoint] = {
            "requests": len(values),
            "throughput_rps": round(len(values) / elapsed, 1),
            "p50_ms": round(percentile(values, 0.5) * 1000, 1),
            "p99_ms": round(percentile(values, 0.99) * 1000, 1),
            "server_p50_ms": round(percentile(server, 0.5) * 1000, 1),
            "server_p99_ms": round(percentile(server, 0.99) * 1000, 1),
            "errors": samples.errors[endpoint],
        }
    return result


# --- the run ------------------------------------------------------------------------------------


def prepare_database(args, workdir: Path) -> tuple[str, callable]:
    """A fresh, migrated database; returns its URL and a function that drops it."""
    if args.db == "sqlite":
        path = workdir / "bench.db"
        return f"sqlite:///{path}", lambda: None
    server_url = make_url(args.postgres_url)
    name = f"prefloop_bench_{uuid.uuid4().hex[:8]}"
    admin = create_engine(server_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'CREATE DATABASE "{name}"'))

    def drop() -> None:
        with admin.connect() as connection:
            connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()

    return server_url.set(database=name).render_as_string(hide_password=False), drop


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://root@127.0.0.1:5432/postgres",
        help="A server (and a database to connect to) where a throw-away database is created.",
    )
    parser.add_argument("--annotators", type=int, default=32)
    parser.add_argument("--ready", type=int, default=2_000, help="Ready comparisons in the pool.")
    parser.add_argument("--judgments", type=int, default=100_000, help="Stored judgments (two per old pair).")
    parser.add_argument("--duration", type=float, default=20.0, help="Time limit of each measured phase, seconds.")
    parser.add_argument(
        "--max-pairs",
        type=int,
        default=40,
        help="Judgments per annotator in the saturated phase (no thinking).",
    )
    parser.add_argument(
        "--think-ms",
        type=float,
        default=2000,
        help="Mean think time per pair in the paced phase (0 skips that phase).",
    )
    parser.add_argument("--paced-pairs", type=int, default=10, help="Judgments per annotator in the paced phase.")
    parser.add_argument("--warmup-pairs", type=int, default=2, help="Unmeasured judgments per annotator first.")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="Also print the result as JSON.")
    parser.add_argument("--keep", action="store_true", help="Keep the work directory (database, server log).")
    args = parser.parse_args()
    phases = [("saturated", args.max_pairs, 0.0)]
    if args.think_ms:
        phases.append(("paced", args.paced_pairs, args.think_ms / 1000))

    workdir = Path(tempfile.mkdtemp(prefix="prefloop-bench-"))
    database_url, drop = prepare_database(args, workdir)
    server = None
    try:
        upgrade_to_head(database_url)
        db = Database(database_url)
        started = time.perf_counter()
        tokens = seed(
            db,
            ready=args.ready,
            history_pairs=args.judgments // 2,
            annotators=args.annotators,
            history_annotators=args.annotators,
            overlap_share=0.1,
            rng=random.Random(args.seed),
        )
        with db.session() as session:
            stored = session.scalar(select(func.count()).select_from(Judgment))
            open_pairs = session.scalar(
                select(func.count()).select_from(Comparison).where(Comparison.status == ComparisonStatus.ready)
            )
        db.dispose()
        seeding_s = time.perf_counter() - started
        print(f"seeded {stored:,} judgments and {open_pairs:,} ready pairs in {seeding_s:.1f} s", flush=True)
        port = free_port()
        server = start_server(database_url, workdir / "data", port, workdir / "server.log")
        results = asyncio.run(
            run_load(
                f"http://127.0.0.1:{port}",
                tokens,
                phases,
                server_pid=server.pid,
                log_path=workdir / "server.log",
                duration=args.duration,
                warmup_pairs=args.warmup_pairs,
                seed=args.seed,
            )
        )
        rate, p50, p99 = results.pop("ceiling")
        report = {
            "db": args.db,
            "annotators": args.annotators,
            "load_average_1m": os.getloadavg()[0],
            "ceiling_healthz": {
                "throughput_rps": round(rate),
                "p50_ms": round(p50 * 1000, 1),
                "p99_ms": round(p99 * 1000, 1),
            },
        }
        print(
            f"\nceiling of this client and machine, GET /healthz from {args.annotators} tasks: "
            f"{rate:.0f} req/s, p50 {p50 * 1000:.1f} ms, p99 {p99 * 1000:.1f} ms"
        )
        for (name, _pairs, think_s), (samples, elapsed) in zip(phases, results.values(), strict=True):
            report[name] = summary = {"think_ms": think_s * 1000, **summarize(samples, elapsed)}
            print(
                f"\n{args.db}, {args.annotators} annotators, {name} (think {think_s * 1000:.0f} ms), "
                f"{elapsed:.1f} s, {samples.empty} empty-pool answers, CPU per request: "
                f"server {summary['server_cpu_ms_per_request']} ms, "
                f"load client {summary['client_cpu_ms_per_request']} ms"
            )
            print(
                "| endpoint | requests | throughput (req/s) | p50 (ms) | p99 (ms) "
                "| server p50 (ms) | server p99 (ms) | errors |"
            )
            print("|---|---|---|---|---|---|---|---|")
            for endpoint in ("next", "submit"):
                row = summary[endpoint]
                print(
                    f"| {endpoint} | {row['requests']} | {row['throughput_rps']} | {row['p50_ms']} | "
                    f"{row['p99_ms']} | {row['server_p50_ms']} | {row['server_p99_ms']} | {row['errors']} |"
                )
        print(f"\nload average (1 min) at the end: {report['load_average_1m']:.1f}")
        if args.json:
            print(json.dumps(report))
    finally:
        if server is not None:
            stop_server(server)
        drop()
        if args.keep:
            print(f"work directory kept: {workdir}")
        else:
            shutil.rmtree(workdir, ignore_errors=True)


if __name__ == "__main__":
    main()
