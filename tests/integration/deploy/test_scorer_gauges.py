"""The scorer's per-worker band gauges across rebalances and restarts: a partition
another worker now owns leaves this worker's band counts, so the portfolio sum over
workers (CS dashboard, *Accounts by band*) does not count its accounts twice; and a
worker that recovers state counts the recovered accounts before any event arrives.

The processor runs for real (scoring core, no broker needed); the rebalance is
the call the worker makes after each recovery.
"""

from __future__ import annotations

from collections import Counter

from services.scorer.core import AccountState
from services.scorer.processor import BatchProcessor
from tests.integration.scorer.histories import Script, declining_accounts
from tests.integration.scorer.test_processor import make, records


def _bands(processor: BatchProcessor) -> dict[str, float]:
    return {
        sample.labels["band"]: sample.value
        for metric in processor.metrics.bands.collect()
        for sample in metric.samples
    }


async def test_accounts_of_revoked_partitions_leave_the_band_counts() -> None:
    processor, _, _ = make()
    processor.key_partitions = {}
    for partition, account in ((0, "a"), (1, "b"), (1, "c")):
        event = Script(account).event(0, "usage", "login", user_id="u")
        await processor.process(records([event], partition=partition))
    assert sum(_bands(processor).values()) == 3

    processor.forget_unowned({0, 1})  # nothing revoked: nothing forgotten
    assert sum(_bands(processor).values()) == 3

    processor.forget_unowned({0})  # partition 1 went to another worker
    assert sum(_bands(processor).values()) == 1
    # Every band keeps a series (at 0 if empty): panels show 0, not "no data".
    assert set(_bands(processor)) == {"green", "yellow", "red"}


async def test_a_restarted_worker_counts_the_recovered_accounts_by_band() -> None:
    before, store, _ = make()
    events = declining_accounts(30)
    await before.process(records(events, partition=0))
    counted = {band: count for band, count in _bands(before).items() if count}
    # The histories leave accounts in more than one band, else the check proves little.
    assert len(counted) >= 2, counted
    assert sum(counted.values()) == 30
    published = Counter(AccountState.from_bytes(raw).published_band for raw in store.values())
    assert counted == dict(published)

    # A restart: a new processor over the recovered store, no event yet.
    after, _, _ = make()
    after.store = dict(store)
    assert sum(_bands(after).values()) == 0
    await after.count_recovered_bands(list(after.store))
    assert {band: count for band, count in _bands(after).items() if count} == counted

    # An event for an account already counted moves it, never counts it twice.
    await after.process(records(events[-1:], partition=0))
    assert sum(_bands(after).values()) == 30
