"""Runtime settings shared by every service, read from ``HEALTHSTREAM_*`` variables and ``.env``.

Each service extends :class:`Settings` with what only it needs; nothing here is read
at import time: call :func:`load_settings` (or instantiate) where the value is used.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import Field, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from healthstream import contract


class Scope(StrEnum):
    INGEST = "ingest"
    ALERTS_READ = "alerts:read"
    ALERTS_WRITE = "alerts:write"
    ADMIN = "admin"


@dataclass(frozen=True)
class ApiKey:
    """One configured API key. ``csm`` ties a key to one CSM's accounts."""

    key: str
    scopes: frozenset[Scope]
    csm: str | None = None

    def allows(self, scope: Scope) -> bool:
        return scope in self.scopes or Scope.ADMIN in self.scopes

    def __repr__(self) -> str:  # never print the secret
        return f"ApiKey(key='***', scopes={sorted(self.scopes)}, csm={self.csm!r})"


def parse_api_keys(text: str) -> list[ApiKey]:
    """Parse ``<key>:<scope>[+<scope>...][@<csm>]`` entries separated by commas.

    The optional ``@<csm>`` suffix (everything after the first ``@`` of the scope
    part, so e-mail addresses work) restricts an alerts key to that CSM's accounts.
    """
    keys: list[ApiKey] = []
    for raw in text.split(","):
        entry = raw.strip()
        if not entry:
            continue
        key, sep, rest = entry.partition(":")
        if not sep or not key or not rest:
            raise ValueError("each API key must look like <key>:<scope>[+<scope>...][@<csm>]")
        scope_part, _, csm = rest.partition("@")
        scopes = set()
        for name in scope_part.split("+"):
            try:
                scopes.add(Scope(name.strip()))
            except ValueError:
                allowed = ", ".join(s.value for s in Scope)
                raise ValueError(f"unknown API key scope {name!r} (allowed: {allowed})") from None
        keys.append(ApiKey(key=key, scopes=frozenset(scopes), csm=csm or None))
    return keys


@dataclass(frozen=True)
class Topics:
    """Topic names (``healthstream.contract``) behind an optional prefix, so tests and
    tenants can share a cluster."""

    prefix: str = ""

    def _t(self, name: str) -> str:
        return f"{self.prefix}{name}"

    @property
    def usage(self) -> str:
        return self.for_type("usage")

    @property
    def ticket(self) -> str:
        return self.for_type("ticket")

    @property
    def billing(self) -> str:
        return self.for_type("billing")

    @property
    def feedback(self) -> str:
        return self.for_type("feedback")

    @property
    def account(self) -> str:
        return self.for_type("account")

    @property
    def events(self) -> list[str]:
        """The five data topics, in event-type order."""
        return [self.for_type(t) for t in contract.EVENT_TYPES]

    def for_type(self, event_type: str) -> str:
        return self._t(contract.event_topic(event_type))

    @property
    def account_health(self) -> str:
        return self._t(contract.ACCOUNT_HEALTH_TOPIC)

    @property
    def risk_alerts(self) -> str:
        return self._t(contract.RISK_ALERTS_TOPIC)

    @property
    def training_examples(self) -> str:
        return self._t(contract.TRAINING_EXAMPLES_TOPIC)

    @property
    def model_snapshots(self) -> str:
        return self._t(contract.MODEL_SNAPSHOTS_TOPIC)

    @staticmethod
    def dlq(topic: str) -> str:
        return f"{topic}{contract.DLQ_SUFFIX}"

    @property
    def compacted(self) -> list[str]:
        return [self.account_health, self.model_snapshots]

    @property
    def all(self) -> list[str]:
        main = [*self.events, self.account_health, self.risk_alerts, self.training_examples]
        main.append(self.model_snapshots)
        return main + [self.dlq(t) for t in (*self.events, self.risk_alerts)]


class Settings(BaseSettings):
    """Everything more than one service needs. Services subclass this."""

    model_config = SettingsConfigDict(
        env_prefix="HEALTHSTREAM_", env_file=".env", extra="ignore", populate_by_name=True
    )

    # Kafka. Empty bootstrap servers means "start the embedded broker".
    kafka_bootstrap_servers: str = ""
    kafka_client_id: str = "healthstream"
    topic_prefix: str = ""
    partitions: int = Field(default=4, ge=1)
    replication_factor: int = Field(default=1, ge=1)
    # Idempotent producers need InitProducerId; real Kafka has it, the embedded
    # tansu 0.6 does not, so the embedded launcher turns this off for its children.
    kafka_enable_idempotence: bool = True

    # HTTP.
    host: str = "127.0.0.1"
    ingest_port: int = 8080
    alerts_port: int = 8081
    scorer_port: int = 8082

    # Storage and auth.
    database_url: str = "sqlite+aiosqlite:///./healthstream-alerts.db"
    api_keys: Annotated[list[ApiKey], NoDecode] = Field(default_factory=list)

    # Scoring config (scorecard TOML); None = the built-in default scorecard.
    scorecard_path: Path | None = None

    log_level: str = "INFO"
    log_json: bool = True

    @field_validator("api_keys", mode="before")
    @classmethod
    def _parse_keys(cls, value: object) -> object:
        if isinstance(value, str):
            return parse_api_keys(value)
        return value

    @cached_property
    def topics(self) -> Topics:
        return Topics(self.topic_prefix)

    @property
    def embedded_broker(self) -> bool:
        return not self.kafka_bootstrap_servers.strip()

    def find_key(self, presented: str) -> ApiKey | None:
        """Constant-time lookup: every configured key is compared, match or not."""
        import hmac

        found = None
        for candidate in self.api_keys:
            if hmac.compare_digest(candidate.key.encode(), presented.encode()):
                found = candidate
        return found


def load_settings() -> Settings:
    return Settings()
