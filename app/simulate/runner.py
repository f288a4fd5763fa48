"""Scripted annotators that judge pairs through the HTTP API with their own tokens, as real clients do.

Each annotator loops: ask for the next pair, judge it with a preference function (plus noise, ties and
a think time), submit with an idempotency key. 401/409/429 and connection errors back off and carry
on; a judgment counts only once the server acknowledged it, so stopping midway loses nothing counted.
"""

from __future__ import annotations

import asyncio
import random
import re
import uuid
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
from tenacity import AsyncRetrying, retry_if_exception, stop_after_attempt, wait_exponential_jitter

from app.simulate.preferences import Preference, prompt_text

# 409 is not here: a pair taken or closed meanwhile is not retried; the annotator moves on.
RETRYABLE_STATUS = {401, 429, 500, 502, 503, 504}


@dataclass
class AnnotatorSpec:
    """How one scripted annotator behaves."""

    name: str
    preference: Preference
    noise: float = 0.0  # share of answers replaced by a random left/right
    tie_rate: float = 0.0  # share of answers that are "tie" regardless of preference
    think_s: float = 0.0  # seconds spent per pair before submitting
    tie_margin: float = 0.05  # |preference score| below this is judged a tie


@dataclass
class RunStats:
    acknowledged: int = 0
    acknowledged_request_ids: list[str] = field(default_factory=list)  # what the server confirmed storing
    choices: Counter[str] = field(default_factory=Counter)  # left | right | tie
    backoffs: Counter[int] = field(default_factory=Counter)  # by HTTP status
    empty_polls: int = 0


class Retryable(Exception):
    def __init__(self, status: int, retry_after: float | None) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.retry_after = status, retry_after


def decide(spec: AnnotatorSpec, prompt: str, left: str, right: str, rng: random.Random) -> str:
    """left | right | tie from the preference, with this annotator's noise and tie habits."""
    if rng.random() < spec.tie_rate:
        return "tie"
    if rng.random() < spec.noise:
        return rng.choice(["left", "right"])
    score = spec.preference(prompt, left, right)
    if abs(score) < spec.tie_margin:
        return "tie"
    return "left" if score > 0 else "right"


async def _request(client: httpx.AsyncClient, stats: RunStats, method: str, url: str, **kwargs: Any) -> httpx.Response:
    """One API call, retried with exponential backoff on 401/429/5xx and connection errors."""
    async for attempt in AsyncRetrying(
        retry=retry_if_exception(lambda e: isinstance(e, Retryable | httpx.TransportError)),
        wait=wait_exponential_jitter(multiplier=0.2, max=10, jitter=0.2),
        stop=stop_after_attempt(8),
        reraise=True,
    ):
        with attempt:
            response = await client.request(method, url, **kwargs)
            if response.status_code in RETRYABLE_STATUS:
                stats.backoffs[response.status_code] += 1
                retry_after = response.headers.get("retry-after")
                if retry_after:
                    await asyncio.sleep(min(float(retry_after), 30))
                raise Retryable(response.status_code, float(retry_after) if retry_after else None)
            return response
    raise AssertionError("unreachable: tenacity reraises")


async def run_annotator(
    client: httpx.AsyncClient,
    spec: AnnotatorSpec,
    quota: asyncio.Semaphore,
    stats: RunStats,
    stop: asyncio.Event,
    seed: int,
    on_ack: Callable[[], object] | None = None,
) -> None:
    rng = random.Random(seed)
    while not stop.is_set():
        if not await _try_acquire(quota):
            return
        pair = await _next_pair(client, stats, stop)
        if pair is None:
            quota.release()
            return
        choice = decide(spec, prompt_text(pair["messages"]), pair["left"], pair["right"], rng)
        if spec.think_s:
            await asyncio.sleep(spec.think_s * rng.uniform(0.5, 1.5))
        body = {
            "comparison_id": pair["comparison_id"],
            "choice": choice,
            "client_request_id": uuid.uuid4().hex,
            "time_spent_ms": int(spec.think_s * 1000),
        }
        response = await _request(client, stats, "POST", "/api/v1/judgments", json=body)
        if response.status_code == 409:  # the lock lapsed and the pair was taken or closed: next one
            stats.backoffs[409] += 1
            quota.release()
            continue
        response.raise_for_status()
        stats.acknowledged += 1
        stats.acknowledged_request_ids.append(body["client_request_id"])
        stats.choices[choice] += 1
        if on_ack:
            on_ack()


async def _try_acquire(quota: asyncio.Semaphore) -> bool:
    if quota.locked():
        return False
    await quota.acquire()
    return True


async def _next_pair(client: httpx.AsyncClient, stats: RunStats, stop: asyncio.Event) -> dict[str, Any] | None:
    while not stop.is_set():
        response = await _request(client, stats, "GET", "/api/v1/queue/next")
        if response.status_code == 200:
            pair: dict[str, Any] = response.json()
            return pair
        stats.empty_polls += 1  # 204: the sampler is still filling the pool
        await asyncio.sleep(min(float(response.headers.get("retry-after", 1)), 5))
    return None


def annotator_names(preference: str, count: int) -> list[str]:
    """Usernames for `count` scripted annotators of `preference` (a shipped name or module:function), made
    of the characters a username allows and short enough for one."""
    stem = re.sub(r"[^A-Za-z0-9_-]+", "-", preference)[:48]
    return [f"sim-{stem}-{i}" for i in range(count)]


async def provision(base_url: str, admin_token: str, names: list[str]) -> dict[str, str]:
    """Accounts and tokens for the simulated annotators, created through the admin API (reused if they exist)."""
    headers = {"Authorization": f"Bearer {admin_token}"}
    tokens: dict[str, str] = {}
    async with httpx.AsyncClient(base_url=base_url, headers=headers, timeout=30) as client:
        existing = {u["username"]: u["id"] for u in (await client.get("/api/v1/users")).raise_for_status().json()}
        for name in names:
            if name not in existing:
                created = await client.post(
                    "/api/v1/users", json={"username": name, "password": uuid.uuid4().hex, "role": "annotator"}
                )
                existing[name] = created.raise_for_status().json()["id"]
            token = await client.post(f"/api/v1/users/{existing[name]}/tokens", json={"name": "simulate"})
            tokens[name] = token.raise_for_status().json()["token"]
    return tokens


async def simulate(
    base_url: str,
    tokens: dict[str, str],
    specs: list[AnnotatorSpec],
    judgments: int,
    seed: int = 0,
    timeout_s: float | None = None,
    on_ack: Callable[[], object] | None = None,
    transport: httpx.AsyncBaseTransport | None = None,
) -> RunStats:
    """Run the annotators concurrently until `judgments` are acknowledged (or timeout_s passes)."""
    stats, stop, quota = RunStats(), asyncio.Event(), asyncio.Semaphore(judgments)
    clients = [
        httpx.AsyncClient(
            base_url=base_url, timeout=30, transport=transport, headers={"Authorization": f"Bearer {tokens[s.name]}"}
        )
        for s in specs
    ]
    tasks = [
        asyncio.create_task(run_annotator(c, s, quota, stats, stop, seed + i, on_ack))
        for i, (c, s) in enumerate(zip(clients, specs, strict=True))
    ]
    try:
        await asyncio.wait_for(asyncio.gather(*tasks), timeout_s)
    except TimeoutError:
        pass
    finally:
        stop.set()
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        for client in clients:
            await client.aclose()
    return stats
