"""Apply the packaged Alembic migrations to the configured database."""

from __future__ import annotations

import logging
from pathlib import Path

from alembic import command
from alembic.config import Config
from alembic.script import ScriptDirectory
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine

MIGRATIONS = Path(__file__).parent / "migrations"


def alembic_config(database_url: str | None = None) -> Config:
    """Built in code: the migrations ship inside the package, no alembic.ini to find."""
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    if database_url:
        config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def head_revision() -> str:
    """The single head of the packaged chain; two heads mean two migrations forked."""
    (head,) = ScriptDirectory.from_config(alembic_config()).get_heads()
    return str(head)


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    """Bring the schema to ``revision`` inside one transaction on ``engine``."""

    def _upgrade(connection: Connection) -> None:
        # Alembic announces every plugin at INFO; keep start-up logs to what matters.
        logging.getLogger("alembic.runtime.plugins").setLevel(logging.WARNING)
        config = alembic_config()
        config.attributes["connection"] = connection
        command.upgrade(config, revision)

    async with engine.begin() as connection:
        await connection.run_sync(_upgrade)
