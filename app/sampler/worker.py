"""The sampler loop: keep the pool of ready comparisons above the low-water mark with the active policy.

It runs in a thread of the web process (a background component, see app.background) or as its own
process (`prefloop sampler`, e.g. on a GPU box). Either way generation happens here, never on a request
path: torch is imported only inside this loop, and database transactions are short and never span a
generation. One sampler per data directory holds sampler.lock; others wait for it (several web
workers each start a component, but only one loads the model).

Each cycle:
  1. Sync the model with the database: when another version became active, load it beside the one
     serving; if the load fails, the old one keeps serving (and the pool is left alone) and the load is
     retried after SAMPLER_RETRY_LOAD_S.
     While a human-gated rollout runs (app/rollout/), its candidate is loaded too, and the rollout's rule
     is applied first to the judgments so far (it may activate the candidate, or end the rollout).
  2. While the pool of pairs with the serving version is below SAMPLER_LOW_WATER: take the prompts that
     need pairs most, sample two completions each (the rollout's share of them: one from the active
     version and one from the candidate; a SAMPLER_CROSS_VERSION_FRACTION of the rest: one from the
     active version and one from the baseline version), store completions and comparisons.
  3. After a switch, once that pool is full (or nothing more can be made): retire the ready pairs without
     the new version, per SAMPLER_RETIRE_ON_SWITCH. Until then they keep serving, so annotators never
     meet an empty queue right after an activation.
"""

from __future__ import annotations

import logging
import os
import random
import signal
import socket
import threading
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from filelock import FileLock, Timeout

from app.comparisons import service as comparisons_service
from app.comparisons.schemas import NewCompletion
from app.core.config import Settings
from app.core.db import Database, utcnow
from app.core.errors import Conflict
from app.policies import service as policy_service
from app.rollout import service as rollout_service
from app.rollout.models import RolloutStatus
from app.sampler import service

if TYPE_CHECKING:
    from trainer.generate import LoadedPolicy, Sample

log = logging.getLogger("prefloop.sampler")
# An unchanged status is saved again this often, so a stale one shows that no sampler is running.
STATUS_EVERY_S = 30.0


@dataclass(frozen=True)
class VersionRef:
    id: int
    number: int
    path: str


@dataclass(frozen=True)
class _Job:
    prompt_id: int
    messages: list[dict]
    partner: VersionRef | None  # the version of the pair's second answer; None: the serving one


class SamplerWorker:
    name = "sampler"

    def __init__(self, settings: Settings, db: Database) -> None:
        self.settings = settings
        self.db = db
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self._loaded: dict[int, LoadedPolicy] = {}  # version id -> model: the serving one and the baseline
        self._failures: dict[int, tuple[float, str]] = {}  # version id -> (when its load failed, why)
        self._cycle_error = ""
        self._too_long: set[int] = set()  # prompt ids the serving model's context cannot hold
        self.serving: VersionRef | None = None
        self.baseline: VersionRef | None = None
        self.candidate: VersionRef | None = None  # a running rollout's, while its parent is served
        self.rollout_share = 0.0
        self._last_note = ""
        self._reported: dict = {}
        self._reported_at = 0.0
        self._retire_pending = False  # a switch happened; the old version's pairs retire once the pool is full

    @property
    def last_error(self) -> str:
        """Why a wanted version is not loaded, and why the last cycle failed; empty when all is well."""
        errors = [why for _, why in self._failures.values()]
        return "; ".join([*errors, self._cycle_error] if self._cycle_error else errors)

    # --- lifecycle -------------------------------------------------------------------------

    def start(self) -> None:
        self._stop.clear()
        self._thread = threading.Thread(target=self.run, name="prefloop-sampler", daemon=True)
        self._thread.start()

    def stop(self, timeout_s: float = 60.0) -> None:
        """Ask the loop to stop; a batch being generated is finished first."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout_s)
            if self._thread.is_alive():
                log.warning("sampler still finishing a batch after %.0f s; leaving it as a daemon", timeout_s)

    def run(self) -> None:
        """Loop until stopped: hold the data directory's sampler lock, then refill every SAMPLER_POLL_S."""
        self.settings.make_data_dir()
        lock = FileLock(self.settings.DATA_DIR / "sampler.lock")
        if not self._acquire(lock):
            return
        try:
            while not self._stop.is_set():
                try:
                    self.run_once()
                    self._cycle_error = ""
                except Exception as exc:  # noqa: BLE001 - the loop must survive a bad cycle; the next retries
                    log.exception("sampler cycle failed")
                    self._cycle_error = f"sampler cycle failed: {exc}"
                try:
                    self.report()
                except Exception:  # noqa: BLE001 - a missed report is retried next cycle
                    log.exception("could not save the sampler status")
                self._stop.wait(self.settings.SAMPLER_POLL_S)
        finally:
            lock.release()

    def _acquire(self, lock: FileLock) -> bool:
        """Wait for the lock (another sampler may hold it) until stopped; True once held."""
        while not self._stop.is_set():
            try:
                lock.acquire(timeout=0)
                return True
            except Timeout:
                self._note(f"another sampler holds {lock.lock_file}; waiting to take over")
                self._stop.wait(self.settings.SAMPLER_POLL_S)
        return False

    def report(self) -> None:
        """Save what this sampler serves when it changed, and as a heartbeat every STATUS_EVERY_S."""
        status = {
            "serving_version": self.serving.number if self.serving else None,
            "baseline_version": self.baseline.number if self.baseline else None,
            "rollout_candidate": self.candidate.number if self.candidate else None,
            "last_error": self.last_error,
            "low_water": self.settings.SAMPLER_LOW_WATER,
            "host": socket.gethostname(),
            "pid": os.getpid(),
        }
        if status == self._reported and time.monotonic() - self._reported_at < STATUS_EVERY_S:
            return
        with self.db.session() as db:
            service.save_status(db=db, status={**status, "reported_at": utcnow().isoformat()})
        self._reported, self._reported_at = status, time.monotonic()

    # --- one cycle -------------------------------------------------------------------------

    def run_once(self) -> int:
        """Sync with the active version, refill its pool up to the low-water mark, then retire what a
        switch superseded; returns the number of comparisons created."""
        created = 0
        while not self._stop.is_set():
            self.sync_version()
            serving = self.serving
            if serving is None:
                return created
            with self.db.session() as db:
                missing = self.settings.SAMPLER_LOW_WATER - service.pool_size(db=db, version_id=serving.id)
            if missing <= 0:
                break
            made = self._fill(serving, min(missing, self.settings.SAMPLER_BATCH_PROMPTS))
            if made == 0:
                break
            created += made
        else:
            return created  # stopped mid-refill: the old pairs keep serving until the next run
        self._retire_superseded()
        return created

    def _retire_superseded(self) -> None:
        """After a switch, with the new version's pool full: retire the ready pairs without it."""
        if not self._retire_pending or self.serving is None:
            return
        with self.db.session() as db:
            retired = comparisons_service.retire_superseded(
                db=db, active_version_id=self.serving.id, mode=self.settings.SAMPLER_RETIRE_ON_SWITCH
            )
        self._retire_pending = False
        log.info("version %d's pool is full; retired %d ready pairs without it", self.serving.number, retired)

    def decide_rollout(self) -> None:
        """Apply the running rollout's rule to the judgments so far; it may activate the candidate."""
        try:
            with self.db.write_session() as db:
                rollout = rollout_service.evaluate_running(db=db, now=utcnow())
                if rollout is not None and rollout.status is not RolloutStatus.running:
                    log.info("rollout %d %s: %s", rollout.id, rollout.status.value, rollout.reason)
        except Conflict as exc:  # an admin activated a version at this very moment: the next cycle sees it
            log.info("rollout decision deferred: %s", exc.msg)

    def sync_version(self) -> None:
        """Serve the active version (loading it if needed), and load the cross-version baseline and a
        running rollout's candidate."""
        self.decide_rollout()
        with self.db.session() as db:
            active = policy_service.get_active(db=db)
            if active is None:
                return
            baseline = None
            if self.settings.SAMPLER_CROSS_VERSION_FRACTION > 0:
                baseline = service.baseline_version(db=db, active=active, number=self.settings.SAMPLER_BASELINE_VERSION)
            active_ref = VersionRef(active.id, active.number, active.path)
            baseline_ref = VersionRef(baseline.id, baseline.number, baseline.path) if baseline else None
            candidate, share = service.rollout_partner(db=db, active=active)
            candidate_ref = VersionRef(candidate.id, candidate.number, candidate.path) if candidate else None
        wanted = {active_ref.id, baseline_ref.id if baseline_ref else None, candidate_ref.id if candidate_ref else None}
        self._failures = {k: v for k, v in self._failures.items() if k in wanted}
        if self.serving is None or active_ref.id != self.serving.id:
            if self._load(active_ref):
                self._switch_to(active_ref)
        if baseline_ref is not None and self.serving is not None and baseline_ref.id != self.serving.id:
            self.baseline = baseline_ref if self._load(baseline_ref) else None
        else:
            self.baseline = None
        serving_parent = self.serving is not None and self.serving.id == active_ref.id
        if candidate_ref is not None and serving_parent and self._load(candidate_ref):
            self.candidate, self.rollout_share = candidate_ref, share
        else:
            self.candidate, self.rollout_share = None, 0.0
        keep = {ref.id for ref in (self.serving, self.baseline, self.candidate) if ref is not None}
        for version_id in set(self._loaded) - keep:
            del self._loaded[version_id]

    def _load(self, ref: VersionRef) -> bool:
        if ref.id in self._loaded:
            return True
        failed_at, _why = self._failures.get(ref.id, (None, ""))
        if failed_at is not None and time.monotonic() - failed_at < self.settings.SAMPLER_RETRY_LOAD_S:
            return False
        from transformers.utils import logging as transformers_logging

        from trainer import generate  # torch stays out of the web process until the sampler needs it

        transformers_logging.disable_progress_bar()  # a bar per load is noise in a server log
        started = time.perf_counter()
        try:
            self._loaded[ref.id] = generate.load_policy(ref.path, device=self.settings.SAMPLER_DEVICE)
        except Exception as exc:  # noqa: BLE001 - any failure leaves the serving model in place
            why = f"policy version {ref.number} failed to load: {exc}"
            self._failures[ref.id] = (time.monotonic(), why)
            log.error(
                "%s; %s", why, f"still serving version {self.serving.number}" if self.serving else "nothing to serve"
            )
            return False
        self._failures.pop(ref.id, None)
        log.info("loaded policy version %d from %s in %.1f s", ref.number, ref.path, time.perf_counter() - started)
        return True

    def _switch_to(self, ref: VersionRef) -> None:
        previous, self.serving = self.serving, ref
        self._too_long.clear()
        self._retire_pending = True
        log.info(
            "sampler now serving policy version %d%s; pairs without it keep serving until its pool is full",
            ref.number,
            f" (was {previous.number})" if previous else "",
        )

    def _fill(self, serving: VersionRef, n_prompts: int) -> int:
        """Generate and store pairs for up to n_prompts prompts; returns how many were stored."""
        from trainer import generate

        settings = self.settings
        with self.db.session() as db:
            prompts = [
                (p.id, p.messages) for p in service.prompts_by_need(db=db, limit=n_prompts, exclude_ids=self._too_long)
            ]
            seed = service.next_seed(db=db, base_seed=settings.SAMPLER_SEED)
        if not prompts:
            self._note("no active prompts to sample for; import some with `prefloop prompts import`")
            return 0
        rng = random.Random(seed)
        params = generate.SamplingParams(
            settings.SAMPLER_TEMPERATURE, settings.SAMPLER_TOP_P, settings.SAMPLER_MAX_NEW_TOKENS
        )
        jobs = self._plan(serving, prompts, rng, params.max_new_tokens)
        if not jobs:
            return 0
        # One batch for the serving model: two rows for a same-version pair, one for a cross-version pair;
        # one batch per partner version for the other answers.
        rows = [job.messages for job in jobs for _ in range(1 if job.partner else 2)]
        served = iter(
            [s for [s] in generate.generate(self._loaded[serving.id], rows, n_per_prompt=1, params=params, seed=seed)]
        )
        partners = {job.partner for job in jobs if job.partner is not None}
        answers = {
            ref: iter(
                [
                    s
                    for [s] in generate.generate(
                        self._loaded[ref.id],
                        [job.messages for job in jobs if job.partner == ref],
                        n_per_prompt=1,
                        params=params,
                        seed=seed + 1,
                    )
                ]
            )
            for ref in partners
        }
        sampling = {**params.as_dict(), "seed": seed}
        with self.db.session() as db:
            for job in jobs:
                pair = [
                    self._completion(next(served), serving, sampling),
                    self._completion(next(answers[job.partner]), job.partner, sampling)
                    if job.partner
                    else self._completion(next(served), serving, sampling),
                ]
                if job.partner:
                    rng.shuffle(pair)  # which version ends up as "a" must carry no information
                overlap = service.overlap_target(
                    rng=rng, target=settings.QUEUE_OVERLAP_TARGET, share=settings.QUEUE_OVERLAP_SHARE
                )
                comparisons_service.create(db=db, prompt_id=job.prompt_id, a=pair[0], b=pair[1], overlap=overlap)
        return len(jobs)

    def _plan(
        self, serving_ref: VersionRef, prompts: list[tuple[int, list[dict]]], rng: random.Random, max_new_tokens: int
    ) -> list[_Job]:
        """Leave out prompts the serving model cannot hold and draw which pairs are cross-version: the
        rollout's share with the candidate, then SAMPLER_CROSS_VERSION_FRACTION of the rest with the baseline."""
        from trainer import generate

        serving = self._loaded[serving_ref.id]
        jobs = []
        lengths = generate.prompt_lengths(serving, [messages for _, messages in prompts])
        for (prompt_id, messages), length in zip(prompts, lengths, strict=True):
            if not generate.fits(serving, length, max_new_tokens):
                log.warning(
                    "prompt %d (%d tokens) plus max_new_tokens %d does not fit the %s-token "
                    "context of version %d; leaving it out",
                    prompt_id,
                    length,
                    max_new_tokens,
                    serving.context_length,
                    serving_ref.number,
                )
                self._too_long.add(prompt_id)
                continue
            partner = None
            if self.candidate is not None and rng.random() < self.rollout_share:
                partner = self.candidate
            elif self.baseline is not None and rng.random() < self.settings.SAMPLER_CROSS_VERSION_FRACTION:
                partner = self.baseline
            if partner is not None:
                [partner_length] = generate.prompt_lengths(self._loaded[partner.id], [messages])
                partner = partner if generate.fits(self._loaded[partner.id], partner_length, max_new_tokens) else None
            jobs.append(_Job(prompt_id, messages, partner))
        return jobs

    @staticmethod
    def _completion(sample: Sample, ref: VersionRef, sampling: dict) -> NewCompletion:
        return NewCompletion(
            policy_version_id=ref.id,
            text=sample.text,
            token_count=sample.token_count,
            finish_reason=sample.finish_reason,
            sampling=sampling,
        )

    def _note(self, message: str) -> None:
        """Log a recurring condition once, not every poll."""
        if message != self._last_note:
            log.info(message)
            self._last_note = message


def run_process(settings: Settings) -> None:
    """`prefloop sampler`: the loop in the foreground until SIGTERM or SIGINT."""
    db = Database(settings.database_url)
    worker = SamplerWorker(settings, db)
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: worker.stop())
    try:
        worker.run()
    finally:
        db.dispose()
