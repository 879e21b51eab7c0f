"""The CDNOW converter and the simulate / datasets commands."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from healthstream.cli import main
from schemas import Event
from simulator.datasets import CDNOW_DEFAULT, DatasetError, cdnow_events

SAMPLE = """ customer_id  date number_of_cds  dollar_value
 00002 19970112  1   12.00
 00002 19970112  5   77.00
 00001 19970101  1   11.77
 00003 19970102  2   20.76
"""


def test_cdnow_rows_become_sorted_canonical_events() -> None:
    events = list(cdnow_events(SAMPLE.splitlines()))
    assert [e["occurred_at"] for e in events] == [
        "1997-01-01T00:00:00Z",
        "1997-01-02T00:00:00Z",
        "1997-01-12T00:00:00Z",
        "1997-01-12T00:00:00Z",
    ]
    first = events[0]
    assert first["account_id"] == "00001"
    assert (first["type"], first["name"]) == ("usage", "order.placed")
    assert first["properties"] == {"amount": 11.77, "quantity": 1, "currency": "USD"}
    # Same customer and date twice: still two distinct ids.
    assert events[2]["event_id"] != events[3]["event_id"]
    assert [e["properties"]["quantity"] for e in events[2:]] == [1, 5]
    for event in events:
        Event.model_validate(event)


@pytest.mark.parametrize(
    ("line", "message"),
    [
        (" 00001 1997-01-01 1 11.77", "YYYYMMDD"),
        (" 00001 19970101 one 11.77", "number_of_cds"),
        (" 00001 19970101 1 lots", "dollar_value"),
        (" 00001 19970101 1", "4 columns"),
    ],
)
def test_cdnow_bad_rows_name_line_and_field(line: str, message: str) -> None:
    with pytest.raises(DatasetError, match=message):
        list(cdnow_events(["customer_id date number_of_cds dollar_value", line]))


def test_datasets_command_converts_the_shipped_file(tmp_path: Path) -> None:
    assert CDNOW_DEFAULT.is_file(), "datasets/cdnow must ship with the repository"
    assert (CDNOW_DEFAULT.parent / "LICENSE-lifetimes.txt").is_file()
    out = tmp_path / "cdnow.ndjson"
    assert main(["datasets", "cdnow", "--out", str(out)]) == 0
    lines = out.read_bytes().splitlines()
    assert len(lines) == 69_659
    events = [orjson.loads(line) for line in lines]
    assert len({e["event_id"] for e in events}) == len(events)
    assert len({e["account_id"] for e in events}) == 23_570
    stamps = [e["occurred_at"] for e in events]
    assert stamps == sorted(stamps)
    assert stamps[0].startswith("1997-01-01") and stamps[-1].startswith("1998-06-30")


def test_simulate_command_writes_events_and_truth(tmp_path: Path) -> None:
    out = tmp_path / "sim.ndjson"
    args = ["simulate", "--accounts", "8", "--days", "20", "--seed", "2", "--quiet"]
    assert main([*args, "--out", str(out)]) == 0
    truth = orjson.loads((tmp_path / "sim.truth.json").read_bytes())
    assert truth["accounts"] == 8 and len(truth["truth"]) == 8
    again = tmp_path / "again.ndjson"
    assert main([*args, "--out", str(again)]) == 0
    assert out.read_bytes() == again.read_bytes()
