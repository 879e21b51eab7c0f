"""How long a record waits before a waiting consumer gets it, per ``fetch_max_wait_ms``.

Kafka answers a pending fetch as soon as ``fetch_min_bytes`` (1) arrive, so the
wait setting costs nothing in latency there. The e2e breakdown showed every hop
through the embedded broker costing hundreds of milliseconds; this isolates the
cause: a record produced while a consumer's fetch is pending, timed from its
CreateTime to the consumer receiving it, for a long and a short fetch wait.

    .venv/bin/python -m benchmarks.fetch_wait            # embedded broker
    HEALTHSTREAM_KAFKA_BOOTSTRAP_SERVERS=... python -m benchmarks.fetch_wait
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic

from benchmarks.context import cluster

RECORDS = 20
PARTITIONS = 4
#: Not a divisor of any wait tried, so arrivals fall all over a fetch's wait.
GAP_S = 0.137


async def delivery_ms(bootstrap: str, wait_ms: int) -> list[float]:
    """CreateTime -> received, for ``RECORDS`` records produced one by one."""
    topic = f"fetch-wait-{uuid.uuid4().hex[:8]}"
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, PARTITIONS, 1)])
    finally:
        await admin.close()
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, auto_offset_reset="latest", fetch_max_wait_ms=wait_ms
    )
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, enable_idempotence=False)
    await consumer.start()
    await producer.start()
    delays: list[float] = []
    try:
        await asyncio.sleep(1.0)  # partitions assigned, first fetch pending

        async def receive() -> None:
            while len(delays) < RECORDS:
                batches = await consumer.getmany(timeout_ms=1_000)
                now = time.time()
                for records in batches.values():
                    delays.extend((now - r.timestamp / 1000.0) * 1000.0 for r in records)

        receiving = asyncio.create_task(receive())
        for index in range(RECORDS):
            await producer.send_and_wait(topic, b"x", partition=index % PARTITIONS)
            await asyncio.sleep(GAP_S)
        await asyncio.wait_for(receiving, 30)
    finally:
        await producer.stop()
        await consumer.stop()
    return delays


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--waits", default="1500,500,50,20", help="fetch_max_wait_ms values")
    args = parser.parse_args()
    waits = [int(w) for w in args.waits.split(",")]
    with cluster() as (bootstrap, embedded):
        where = "embedded tansu" if embedded else bootstrap
        for wait_ms in waits:
            delays = sorted(asyncio.run(delivery_ms(bootstrap, wait_ms)))
            print(
                f"{where}: fetch_max_wait_ms={wait_ms:>5}: delivery p50 "
                f"{statistics.median(delays):6.1f} ms, max {delays[-1]:6.1f} ms"
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
