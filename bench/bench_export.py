"""Export benchmark: GET /api/v1/export against a plain SQL dump of the same joined rows, in one run.

The database is seeded with bulk inserts to the first size (10,000 judgments by default), measured,
then grown to the next (100,000) and measured again, so "memory flat as the export grows" compares
the same server process at both sizes. Each judgment is on its own pair of ~450-character completions
(10 % of pairs judged twice), 16 annotators, one prompt per five pairs.

At each size, three times each (the median time is reported, the highest peak memory):
  * export trl  GET /api/v1/export?format=trl  (JSON Lines, the default options), streamed to a file
  * export raw  GET /api/v1/export?format=raw  (every judgment, Arena battle rows)
  * SQL dump    the same judgment + comparison + prompt + completions + versions join, one JSON object
                per row, by the database's own client: `sqlite3` or `psql \\copy`
and the server's resident memory (its process tree, sampled every 5 ms) before and during each export.

    python bench/bench_export.py --db sqlite
    python bench/bench_export.py --db postgresql --postgres-url postgresql+psycopg://root@127.0.0.1:5432/postgres

The server is `prefloop serve` in its own process (server helpers shared with bench_annotation.py).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from datetime import timedelta
from pathlib import Path

import httpx
import psutil
from sqlalchemy import insert, text
from sqlalchemy.engine import make_url

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_annotation import free_port, prepare_database, start_server, stop_server  # noqa: E402

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
ANNOTATORS = 16
LABEL_STUDIO_ROWS_PER_S = 960  # its JSON export of 2,000 annotations on this machine (measured-anchors.md)

DUMP_COLUMNS = [
    ("judgment_id", "j.id"),
    ("comparison_id", "j.comparison_id"),
    ("annotator_id", "j.annotator_id"),
    ("choice", "j.choice"),
    ("strength", "j.strength"),
    ("rationale", "j.rationale"),
    ("shown_left", "j.shown_left"),
    ("time_spent_ms", "j.time_spent_ms"),
    ("created_at", "j.created_at"),
    ("prompt_id", "c.prompt_id"),
    ("completion_a_id", "c.completion_a_id"),
    ("completion_b_id", "c.completion_b_id"),
    ("is_gold", "c.is_gold"),
    ("prompt", "p.messages"),
    ("text_a", "ca.text"),
    ("text_b", "cb.text"),
    ("policy_version_a", "va.number"),
    ("policy_version_b", "vb.number"),
]
DUMP_FROM = """FROM judgments j JOIN comparisons c ON c.id = j.comparison_id
JOIN prompts p ON p.id = c.prompt_id
JOIN completions ca ON ca.id = c.completion_a_id JOIN completions cb ON cb.id = c.completion_b_id
JOIN policy_versions va ON va.id = ca.policy_version_id
JOIN policy_versions vb ON vb.id = cb.policy_version_id
ORDER BY j.id"""


# --- seeding ------------------------------------------------------------------------------------


def seed_base(db: Database) -> str:
    """An admin (user 1, made first: the explicit ids below do not move PostgreSQL's sequences), policy
    versions and annotators 2 .. ANNOTATORS + 1; returns the admin's API token."""
    now = utcnow()
    with db.session() as session:
        admin = auth_service.create(
            db=session,
            username="bench-admin",
            password="bench password",
            role=Role.admin,
            min_password_length=8,
        )
        session.execute(
            insert(PolicyVersion),
            [
                {
                    "id": n,
                    "number": n,
                    "path": "/nonexistent",
                    "status": PolicyStatus.archived,
                    "source": "",
                    "metrics": {},
                    "created_at": now,
                }
                for n in (1, 2)
            ],
        )
        password_hash = hash_password("bench password")
        session.execute(
            insert(User),
            [
                {
                    "id": i + 2,
                    "username": f"annotator{i}",
                    "password_hash": password_hash,
                    "role": Role.annotator,
                    "is_active": True,
                    "excluded_from_training": False,
                    "session_version": 0,
                    "created_at": now,
                }
                for i in range(ANNOTATORS)
            ],
        )
        return auth_service.create_token(db=session, user=admin, name="bench")[1]


def seed_judgments(db: Database, *, start: int, stop: int, rng: random.Random) -> None:
    """Judgments start+1 .. stop with their pairs, prompts and completions (ids continue from start)."""
    now = utcnow()
    answer = "A plausible answer that goes on for a few sentences, as small policies do. " * 6
    prompts, completions, comparisons, judgments = [], [], [], []
    comparison_id = start - start // 10  # every tenth judgment is a second opinion on the previous pair
    for judgment_id in range(start + 1, stop + 1):
        if judgment_id % 10 != 0:
            comparison_id += 1
            prompt_id = (comparison_id - 1) // 5 + 1
            if (comparison_id - 1) % 5 == 0:
                content = f"Prompt {prompt_id}: explain item {rng.getrandbits(64):016x} in two short paragraphs."
                prompts.append(
                    {
                        "id": prompt_id,
                        "messages": [{"role": "user", "content": content}],
                        "text": content,
                        "source": "bench",
                        "tags": [],
                        "content_hash": f"{prompt_id:064x}",
                        "is_active": True,
                        "created_at": now,
                    }
                )
            a_id, b_id = 2 * comparison_id - 1, 2 * comparison_id
            for completion_id, version in ((a_id, 1), (b_id, 2)):
                completions.append(
                    {
                        "id": completion_id,
                        "prompt_id": prompt_id,
                        "policy_version_id": version,
                        "text": f"{answer}({completion_id})",
                        "token_count": 90,
                        "finish_reason": "eos",
                        "sampling": {},
                        "created_at": now,
                    }
                )
            comparisons.append(
                {
                    "id": comparison_id,
                    "prompt_id": prompt_id,
                    "completion_a_id": a_id,
                    "completion_b_id": b_id,
                    "status": ComparisonStatus.completed,
                    "overlap_target": 1,
                    "judgment_count": 1,
                    "is_gold": False,
                    "created_at": now,
                }
            )
        first_annotator = comparison_id % ANNOTATORS  # a second opinion comes from the next annotator
        annotator = 2 + (first_annotator if judgment_id % 10 != 0 else (first_annotator + 1) % ANNOTATORS)
        choice = rng.choice([Choice.a, Choice.a, Choice.b, Choice.b, Choice.tie, Choice.both_bad])
        judgments.append(
            {
                "id": judgment_id,
                "comparison_id": comparison_id,
                "annotator_id": annotator,
                "choice": choice,
                "strength": rng.choice([None, 1, 2, 3]) if choice in "ab" else None,
                "rationale": "",
                "shown_left": rng.choice("ab"),
                "time_spent_ms": rng.randrange(2_000, 60_000),
                "channel": "browser",
                "created_at": now - timedelta(seconds=stop - judgment_id),
            }
        )
    with db.session() as session:
        for model, rows in (
            (Prompt, prompts),
            (Completion, completions),
            (Comparison, comparisons),
            (Judgment, judgments),
        ):
            for offset in range(0, len(rows), CHUNK):
                session.execute(insert(model), rows[offset : offset + CHUNK])
    if db.engine.dialect.name == "postgresql":
        with db.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as connection:
            connection.execute(text("VACUUM ANALYZE"))


# --- measuring ----------------------------------------------------------------------------------


class PeakRss:
    """Samples the resident memory of a process and its children until stopped; keeps the highest."""

    def __init__(self, pid: int) -> None:
        self.process = psutil.Process(pid)
        self.peak = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def now(self) -> int:
        return sum(p.memory_info().rss for p in [self.process, *self.process.children(recursive=True)])

    def _run(self) -> None:
        while not self._stop.is_set():
            self.peak = max(self.peak, self.now())
            self._stop.wait(0.005)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *_exc) -> None:
        self._stop.set()
        self._thread.join()
        self.peak = max(self.peak, self.now())


def cpu_seconds(process: psutil.Process) -> float:
    times = process.cpu_times()
    return times.user + times.system


def children_cpu_seconds() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_export(base_url: str, token: str, params: dict, out: Path, server_pid: int) -> tuple[float, float, int, int]:
    """(wall seconds, server CPU seconds, bytes, peak server RSS) for one streamed export written to `out`."""
    with PeakRss(server_pid) as rss, out.open("wb") as file:
        cpu_before = cpu_seconds(rss.process)
        started = time.perf_counter()
        with httpx.stream(
            "GET",
            f"{base_url}/api/v1/export",
            params=params,
            timeout=600,
            headers={"Authorization": f"Bearer {token}"},
        ) as response:
            response.raise_for_status()
            for chunk in response.iter_bytes():
                file.write(chunk)
        elapsed = time.perf_counter() - started
        cpu = cpu_seconds(rss.process) - cpu_before
    return elapsed, cpu, out.stat().st_size, rss.peak


def timed_dump(database_url: str, out: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds) for the database's own client to write the joined rows as JSON lines.
    With PostgreSQL the CPU is the psql client's only (the server's share is not visible from here)."""
    url = make_url(database_url)
    cpu_before = children_cpu_seconds()
    started = time.perf_counter()
    with out.open("wb") as file:
        if url.get_backend_name() == "sqlite":
            fields = ", ".join(
                f"'{name}', {('json(' + expr + ')') if name == 'prompt' else expr}" for name, expr in DUMP_COLUMNS
            )
            subprocess.run(
                ["sqlite3", url.database, f"SELECT json_object({fields}) {DUMP_FROM};"],
                stdout=file,
                check=True,
            )
        else:
            fields = ", ".join(f"'{name}', {expr}" for name, expr in DUMP_COLUMNS)
            one_line = DUMP_FROM.replace("\n", " ")
            libpq = url.set(drivername="postgresql").render_as_string(hide_password=False)
            subprocess.run(
                [
                    "psql",
                    libpq,
                    "-X",
                    "-q",
                    "-c",
                    f"\\copy (SELECT json_build_object({fields}) {one_line}) TO STDOUT",
                ],
                stdout=file,
                check=True,
            )
    return time.perf_counter() - started, children_cpu_seconds() - cpu_before


def count_lines(path: Path) -> int:
    with path.open("rb") as file:
        return sum(1 for _ in file)


def measure(base_url: str, token: str, database_url: str, server_pid: int, workdir: Path, repeats: int) -> dict:
    results = {}
    for name, params in (("trl", {"format": "trl"}), ("raw", {"format": "raw"})):
        runs = [
            timed_export(base_url, token, params, workdir / f"export-{name}.jsonl", server_pid) for _ in range(repeats)
        ]
        results[name] = {
            "seconds": statistics.median(r[0] for r in runs),
            "cpu": statistics.median(r[1] for r in runs),
            "bytes": runs[0][2],
            "rows": count_lines(workdir / f"export-{name}.jsonl"),
            "peak_rss": max(r[3] for r in runs),
        }
    dumps = [timed_dump(database_url, workdir / "dump.jsonl") for _ in range(repeats)]
    results["dump"] = {
        "seconds": statistics.median(d[0] for d in dumps),
        "cpu": statistics.median(d[1] for d in dumps),
        "bytes": (workdir / "dump.jsonl").stat().st_size,
        "rows": count_lines(workdir / "dump.jsonl"),
    }
    return results


# --- the run ------------------------------------------------------------------------------------


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--db", choices=["sqlite", "postgresql"], default="sqlite")
    parser.add_argument(
        "--postgres-url",
        default="postgresql+psycopg://root@127.0.0.1:5432/postgres",
        help="A server (and a database to connect to) where a throw-away database is created.",
    )
    parser.add_argument("--sizes", default="10000,100000", help="Judgment counts to measure at, ascending.")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--json", action="store_true", help="Also print the result as JSON.")
    args = parser.parse_args()
    sizes = [int(s) for s in args.sizes.split(",")]

    workdir = Path(tempfile.mkdtemp(prefix="prefloop-bench-export-"))
    database_url, drop = prepare_database(args, workdir)
    server = None
    rng = random.Random(args.seed)
    table = {}
    try:
        upgrade_to_head(database_url)
        db = Database(database_url)
        token = seed_base(db)
        port = free_port()
        server = start_server(database_url, workdir / "data", port, workdir / "server.log")
        base_url = f"http://127.0.0.1:{port}"
        httpx.get(
            f"{base_url}/api/v1/export",
            params={"format": "trl"},
            timeout=60,
            headers={"Authorization": f"Bearer {token}"},
        ).raise_for_status()  # warm: imports, connections
        seeded = 0
        for size in sizes:
            started = time.perf_counter()
            seed_judgments(db, start=seeded, stop=size, rng=rng)
            seeded = size
            print(f"seeded {size:,} judgments ({time.perf_counter() - started:.1f} s)", flush=True)
            idle = PeakRss(server.pid).now()
            table[size] = {
                "idle_rss": idle,
                **measure(base_url, token, database_url, server.pid, workdir, args.repeats),
            }
        db.dispose()
    finally:
        if server is not None:
            stop_server(server)
        drop()
        shutil.rmtree(workdir, ignore_errors=True)

    mib = 1024 * 1024
    print(
        f"\n{args.db}: median of {args.repeats}; memory = server process RSS (peak during the export); "
        f"load average at the end {os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    )
    print(
        "| judgments | what | rows out | MB | wall (s) | judgments/s | wall vs dump | CPU (s) | CPU vs dump "
        "| vs Label Studio (960/s) | server RSS idle → peak (MiB) |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for size, r in table.items():
        dump = r["dump"]["seconds"]
        for name in ("trl", "raw", "dump"):
            row = r[name]
            rate = size / row["seconds"]  # judgments read per second, whatever the rows they become
            memory = f"{r['idle_rss'] / mib:.0f} → {row['peak_rss'] / mib:.0f}" if "peak_rss" in row else "—"
            ratio = "1.00x" if name == "dump" else f"{row['seconds'] / dump:.2f}x"
            cpu_ratio = "1.00x" if name == "dump" else f"{row['cpu'] / r['dump']['cpu']:.2f}x"
            print(
                f"| {size:,} | {'SQL dump' if name == 'dump' else 'export ' + name} | {row['rows']:,} | "
                f"{row['bytes'] / 1e6:.1f} | {row['seconds']:.2f} | {rate:,.0f} | {ratio} | "
                f"{row['cpu']:.2f} | "
                f"{cpu_ratio} | {rate / LABEL_STUDIO_ROWS_PER_S:.0f}x | {memory} |"
            )
    if args.json:
        print(json.dumps({"db": args.db, "sizes": table}))


if __name__ == "__main__":
    main()
