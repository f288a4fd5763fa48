"""The one settings object: every knob comes from PREFLOOP_* environment variables or a .env file."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

PROJECT_ROOT = Path(__file__).resolve().parents[2]


class Settings(BaseSettings):
    model_config = SettingsConfigDict(env_prefix="PREFLOOP_", env_file=".env", extra="ignore")

    # --- where things live -------------------------------------------------------------
    DATA_DIR: Path = Field(Path("prefloop-data"), description="Database, registry, secret key, logs.")
    DATABASE_URL: str = Field("", description="SQLAlchemy URL; empty means a SQLite file in DATA_DIR.")
    SECRET_KEY: str = Field("", description="Signs session cookies; empty means generated once into DATA_DIR.")

    # --- serving -----------------------------------------------------------------------
    HOST: str = "127.0.0.1"
    PORT: int = 8000
    WORKERS: int = 1
    SECURE_COOKIES: bool = Field(
        False,
        description="Send the session cookie over HTTPS only, even to a plain-http request (TLS ends "
        "at a proxy that does not send X-Forwarded-Proto). Requests seen as https always get it.",
    )
    SESSION_MAX_AGE_S: int = 14 * 24 * 3600
    RUN_BACKGROUND: bool = Field(True, description="Start the sampler and local worker with the server.")
    CREATE_FIRST_ADMIN: bool = Field(True, description="Create an admin with a printed password on first start.")
    GC_FREEZE_ON_START: bool = Field(
        True,
        description="Move everything alive after startup out of the garbage collector's sight (gc.freeze): "
        "its full collections then scan only what requests create, not the whole app, which halves an "
        "export's CPU time and keeps multi-millisecond pauses out of request latency.",
    )

    # --- accounts ----------------------------------------------------------------------
    MIN_PASSWORD_LENGTH: int = 8
    # Failed sign-ins are counted per typed username and client address; past an allowance each
    # further try waits LOGIN_BACKOFF_S, doubled with every new failure (see app/auth/throttle.py).
    LOGIN_FAILURES_PER_CLIENT_USERNAME: int = Field(
        5, ge=1, description="Failed sign-ins for one username from one address before tries wait."
    )
    LOGIN_FAILURES_PER_CLIENT: int = Field(
        20, ge=1, description="Failed sign-ins from one address, any usernames, before its tries wait."
    )
    LOGIN_FAILURES_PER_USERNAME: int = Field(
        100, ge=1, description="Failed sign-ins for one username, from all addresses, before its tries wait."
    )
    TOKEN_FAILURES_PER_CLIENT: int = Field(
        20, ge=1, description="Unknown or revoked API tokens from one address before its requests wait."
    )
    LOGIN_BACKOFF_S: float = Field(5.0, gt=0, description="First wait once an allowance is used up.")
    LOGIN_BACKOFF_MAX_S: float = Field(900.0, gt=0, description="Longest wait between two tries.")
    LOGIN_FAILURE_WINDOW_S: int = Field(
        3600, ge=1, description="Failures are forgotten once none came under their key for this long."
    )

    # --- policies & sampler ------------------------------------------------------------
    SAMPLER_ENABLED: bool = Field(True, description="Run the sampler in the web process (with RUN_BACKGROUND).")
    # A pool of 128 and batches of 32 keep four fast annotators fed on two CPU cores (batches of 8 left
    # them waiting for pairs); a batch costs about as long as its longest answer, so bigger batches are cheap.
    SAMPLER_LOW_WATER: int = Field(128, ge=1, description="Ready comparisons the sampler keeps in the pool.")
    SAMPLER_BATCH_PROMPTS: int = Field(32, ge=1, le=1024, description="Prompts per generation batch.")
    SAMPLER_TEMPERATURE: float = Field(1.0, gt=0, le=10)
    SAMPLER_TOP_P: float = Field(1.0, gt=0, le=1)
    # As long as PPO's answers (ppo.response_length): the reward model then learns on answers of the length it
    # will score.
    SAMPLER_MAX_NEW_TOKENS: int = Field(64, ge=1, le=32768)
    SAMPLER_SEED: int = Field(0, ge=0, description="Seeds prompt order and sampling; runs are reproducible.")
    SAMPLER_CROSS_VERSION_FRACTION: float = Field(
        0.2, ge=0, le=1, description="Share of new pairs that pit the active version against an earlier one."
    )
    SAMPLER_BASELINE_VERSION: int = Field(
        0, ge=0, description="Version number cross-version pairs use; 0: the active version's previous one."
    )
    SAMPLER_RETIRE_ON_SWITCH: Literal["none", "unjudged", "all"] = Field(
        "unjudged",
        description="Which ready pairs without the newly active version are retired after a switch, once the "
        "sampler has refilled the pool with the new version (until then they keep serving).",
    )
    SAMPLER_POLL_S: float = Field(2.0, gt=0, description="How often the pool and the active version are checked.")
    SAMPLER_RETRY_LOAD_S: float = Field(60.0, gt=0, description="Wait before retrying a version that failed to load.")
    SAMPLER_DEVICE: str = Field("auto", description="torch device for generation; auto: cuda when present.")
    PROMPT_MAX_CHARS: int = Field(20000, ge=1, description="Longest prompt (all messages together) accepted.")
    QUEUE_OVERLAP_TARGET: int = Field(1, ge=1, description="Annotators per new comparison.")
    QUEUE_OVERLAP_SHARE: float = Field(
        0.1, ge=0, le=1, description="Share of new comparisons that get at least 2 annotators, to measure agreement."
    )

    # --- annotation queue & judgments (overlap targets: QUEUE_OVERLAP_* above, set by the sampler) ---
    QUEUE_LOCK_TTL_S: int = Field(
        600, ge=10, le=7 * 24 * 3600, description="How long a pair stays reserved for the annotator it was shown to."
    )
    QUEUE_GOLD_RATE: float = Field(
        0.05, ge=0, le=1, description="Chance that a pick serves a gold (known-answer) pair when one is left."
    )
    QUEUE_EMPTY_RETRY_S: int = Field(
        10, ge=1, le=3600, description="With no pair ready, when the page (and Retry-After) asks again."
    )
    JUDGMENT_RATIONALE_MAX_CHARS: int = Field(2000, ge=0, le=100_000, description="Longest rationale accepted.")

    # --- training rounds -----------------------------------------------------------------
    WORKER_ENABLED: bool = Field(True, description="Start one local training worker process with the server.")
    WORKER_POLL_S: float = Field(2.0, gt=0, description="How often a worker looks for queued rounds.")
    TRAINING_AUTO_ACTIVATE: bool = Field(
        True,
        description="Activate a round's new policy when it beats its parent on the held-out evaluation with "
        "confidence (the score gain's interval above 0); otherwise, or when false, it stays a candidate.",
    )
    # Human-gated rollout (app/rollout/): people's judgments of the candidate against its parent decide.
    TRAINING_ROLLOUT_SHARE: float = Field(
        0.0,
        ge=0,
        le=1,
        description="Share of new annotation pairs that pit a round's candidate against its parent; the "
        "candidate is activated or rejected by people's ratings. 0: off (the held-out rule decides).",
    )
    TRAINING_ROLLOUT_MAX_BATTLES: int = Field(
        300, ge=10, description="Rollout judgments after which an undecided rollout ends inconclusive."
    )
    TRAINING_ROLLOUT_MAX_HOURS: float = Field(
        72.0, gt=0, description="Hours after which an undecided rollout ends inconclusive."
    )
    # The rule is checked after every judgment, and each look is another chance for noise to cross a bound:
    # simulated with indifferent annotators (bench/bench_rollout.py, cap 300), 0.95 gives a wrong verdict in
    # ~30% of rollouts, 0.995 in ~6%, while a candidate preferred 60:40 is still activated ~85% of the time.
    TRAINING_ROLLOUT_CONFIDENCE: float = Field(
        0.995, ge=0.5, lt=1, description="Level of the rating difference's interval that decides a rollout."
    )
    TRAINING_SCHEDULE_MIN_NEW_JUDGMENTS: int = Field(
        0,
        ge=0,
        description="Queue a round once this many new usable judgments arrived and none is in flight; 0=off.",
    )
    TRAINING_HEARTBEAT_TIMEOUT_S: float = Field(
        120.0, gt=0, description="A running round whose worker is silent this long is marked failed."
    )
    TRAINING_MIN_RM_ACCURACY: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Gate: the reward model's accuracy on held-out pairs must reach this; unset: derived from the "
        "number of held-out pairs (trainer/defaults.py).",
    )
    TRAINING_MAX_KL: float = Field(
        8.0, gt=0, description="Gate: mean per-answer KL (nats) of the new policy to its reference, held out."
    )
    TRAINING_MIN_EOS_RATE: float = Field(
        0.5, ge=0, le=1, description="Gate: share of held-out answers the new policy ends itself."
    )
    TRAINING_MIN_SCORE_GAIN: float | None = Field(
        None, description="Gate: held-out reward-model score gain of the new policy over the old; unset=off."
    )
    TRAINING_MAX_EVASION_INCREASE: float | None = Field(
        None,
        ge=0,
        le=1,
        description="Gate: rise of the share of held-out answers marked as evasions, new policy minus its parent "
        "(0.05 = 5 points); unset=off.",
    )
    TRAINING_MAX_LENGTH_CHANGE: float | None = Field(
        None, ge=0, description="Gate: relative change of the mean held-out answer length, either way; unset=off."
    )
    TRAINING_MIN_DISTINCT_2_RATIO: float | None = Field(
        None, ge=0, description="Gate: the new policy's held-out distinct-2 over its parent's; unset=off."
    )
    TRAINING_HELDOUT_FRACTION: float | None = Field(
        None,
        gt=0,
        lt=1,
        description="Share of prompts whose pairs are held out, by a stable hash of each prompt; unset: derived "
        "from the number of usable judgments (trainer/defaults.py).",
    )
    TRAINING_MIN_HELDOUT_PAIRS: int = Field(10, ge=1, description="Fewer held-out pairs than this fails the round.")
    TRAINING_REFERENCE: Literal["base", "previous"] = Field(
        "base", description="PPO's frozen reference: the lineage's base policy, or the version trained from."
    )
    TRAINING_INCLUDE_TIES: bool = Field(
        False, description="Train on ties and both-bad judgments too (as a pull of the two scores together)."
    )

    # --- admin console -------------------------------------------------------------------
    ADMIN_POLL_S: float = Field(
        2.0, gt=0, le=600, description="How often the dashboard and a round's page ask for fresh numbers."
    )
    ADMIN_PAGE_SIZE: int = Field(50, ge=1, le=1000, description="Rows per page in the console's long lists.")

    # --- export & API --------------------------------------------------------------------
    EXPORT_BATCH_SIZE: int = Field(
        1000, ge=1, le=100_000, description="Judgments an export reads per keyset page (its memory is one page)."
    )
    UPLOAD_MAX_BYTES: int = Field(
        10 * 1024 * 1024, ge=1024, description="Largest request body a bulk import accepts; larger gets a 413."
    )
    API_DOCS: Literal["public", "login", "off"] = Field(
        "public",
        description="Who may read /docs and /openapi.json: anyone, signed-in users and token holders, or nobody.",
    )
    BODY_MAX_BYTES: int = Field(
        1024 * 1024,
        ge=1024,
        description="Largest request body of every other route (JSON and forms); larger gets a 413 before it is read.",
    )
    WEBHOOKS_ENABLED: bool = Field(True, description="Deliver webhooks from the web process (with RUN_BACKGROUND).")
    WEBHOOK_TIMEOUT_S: float = Field(10.0, gt=0, le=120, description="How long one delivery waits for the receiver.")
    WEBHOOK_MAX_ATTEMPTS: int = Field(
        8, ge=1, le=50, description="Attempts before a delivery is given up (kept as failed)."
    )
    WEBHOOK_RETRY_BASE_S: float = Field(
        10.0, gt=0, description="Wait after the first failed attempt; it doubles with each further failure."
    )
    WEBHOOK_RETRY_MAX_S: float = Field(3600.0, gt=0, description="Longest wait between two attempts.")
    WEBHOOK_POLL_S: float = Field(1.0, gt=0, description="How often the dispatcher looks for due deliveries.")
    WEBHOOK_ALLOWED_HOSTS: Annotated[list[str], NoDecode] = Field(
        [],
        description="Comma-separated host names (or IPs) webhooks may reach although they are internal "
        "(loopback, private, link-local); every other internal address is refused.",
    )

    @field_validator("WEBHOOK_ALLOWED_HOSTS", mode="before")
    @classmethod
    def _host_list(cls, value: str | list[str]) -> list[str]:
        names = value.split(",") if isinstance(value, str) else value
        return [n.strip().lower().rstrip(".") for n in names if n.strip()]

    @field_validator("DATA_DIR")
    @classmethod
    def _absolute_data_dir(cls, value: Path) -> Path:
        return value.expanduser().resolve()

    @property
    def database_url(self) -> str:
        return self.DATABASE_URL or f"sqlite:///{self.DATA_DIR / 'prefloop.db'}"

    @property
    def registry_dir(self) -> Path:
        return self.DATA_DIR / "registry"

    def make_data_dir(self) -> Path:
        """Create DATA_DIR owner-only (0700) if it is missing: it holds the database, the session key and
        models. Its parents, and a directory that already exists, keep the modes they have."""
        self.DATA_DIR.mkdir(mode=0o700, parents=True, exist_ok=True)
        return self.DATA_DIR

    @cached_property
    def secret_key(self) -> str:
        """The configured key, or one generated on first run and kept in the data directory."""
        if self.SECRET_KEY:
            return self.SECRET_KEY
        key_file = self.DATA_DIR / "secret_key"
        if not key_file.exists():
            self.make_data_dir()
            key_file.touch(mode=0o600)  # owner-only before the key is in it
            key_file.write_text(secrets.token_urlsafe(48))
        return key_file.read_text().strip()


def get_settings() -> Settings:
    """Read the environment once per call site that owns the app (the CLI, create_app, tests)."""
    return Settings()
