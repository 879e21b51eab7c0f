"""Alembic environment for the alert store.

The service runs migrations itself (:func:`services.alerts.migrate.upgrade`) and
passes an open connection in ``config.attributes["connection"]``; the plain
``alembic`` command line falls back to ``sqlalchemy.url`` / ``HEALTHSTREAM_DATABASE_URL``.
"""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from services.alerts.db import Base, make_engine

target_metadata = Base.metadata
config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online_async(url: str) -> None:
    engine = make_engine(url)
    async with engine.begin() as connection:
        await connection.run_sync(_run)
    await engine.dispose()


def run() -> None:
    connection = config.attributes.get("connection")
    if connection is not None:
        _run(connection)
        return
    url = config.get_main_option("sqlalchemy.url")
    if not url:
        from services.alerts.settings import AlertsSettings

        url = AlertsSettings().database_url
    asyncio.run(_run_online_async(url))


if context.is_offline_mode():
    raise SystemExit("offline migrations are not supported: run `healthstream alerts migrate`")
run()
