"""The one settings object: every knob comes from PREFLOOP_* environment variables or a .env file."""

from __future__ import annotations

import secrets
from functools import cached_property
from pathlib import Path

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

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
    SECURE_COOKIES: bool = Field(False, description="Send the session cookie over HTTPS only.")
    SESSION_MAX_AGE_S: int = 14 * 24 * 3600
    RUN_BACKGROUND: bool = Field(True, description="Start the sampler and local worker with the server.")
    CREATE_FIRST_ADMIN: bool = Field(True, description="Create an admin with a printed password on first start.")

    # --- accounts ----------------------------------------------------------------------
    MIN_PASSWORD_LENGTH: int = 8
    LOGIN_MAX_FAILURES: int = Field(5, description="Failed logins before an account is throttled.")
    LOGIN_LOCKOUT_S: int = Field(60, description="First lockout; it doubles with each further failure.")

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

    @cached_property
    def secret_key(self) -> str:
        """The configured key, or one generated on first run and kept in the data directory."""
        if self.SECRET_KEY:
            return self.SECRET_KEY
        key_file = self.DATA_DIR / "secret_key"
        if not key_file.exists():
            self.DATA_DIR.mkdir(parents=True, exist_ok=True)
            key_file.write_text(secrets.token_urlsafe(48))
            key_file.chmod(0o600)
        return key_file.read_text().strip()


def get_settings() -> Settings:
    """Read the environment once per call site that owns the app (the CLI, create_app, tests)."""
    return Settings()
