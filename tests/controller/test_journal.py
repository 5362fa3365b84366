"""The decision log: schema upgrades in place, whole cycles, no NaN."""

from __future__ import annotations

from datetime import UTC, datetime

import sqlite_utils

from controller.journal import MIGRATIONS, SCHEMA_VERSION, CycleRecord, Journal, integrity_ok

NOW = datetime(2026, 1, 2, 8, tzinfo=UTC)


def test_an_older_schema_is_upgraded_in_place(tmp_path):
    path = tmp_path / "old.db"
    db = sqlite_utils.Database(path)
    db["meta"].create({"key": str, "value": str}, pk="key")
    MIGRATIONS[1](db)
    db["meta"].insert({"key": "schema_version", "value": "1"})
    db["runs"].insert({"started_at": "2025-12-01T00:00:00", "mode": "paper", "venue": "sim"})
    for i, status in enumerate(("filled", "unknown", "open", "error", "rejected")):
        db["orders"].insert(
            {"run_id": 1, "label": f"lv-old-1-{i}", "status": status, "side": "buy"}
            | ({"instrument": "ETH-PERPETUAL"} if i == 0 else {})
        )
    db.close()
    journal = Journal(path)
    assert journal.schema_version == SCHEMA_VERSION == 7
    assert any(i.columns == ["label"] for i in journal.db["orders"].indexes)  # added by version 2
    assert "replay_key" in journal.db["replays"].columns_dict  # added by version 3
    assert {"valid_until", "lookups", "resolved_by"} <= set(journal.db["orders"].columns_dict)  # version 4
    assert "order_events" in journal.db.table_names() and "skew_s" in journal.db["cycles"].columns_dict
    assert {"var_usd", "es_usd", "sigma_realised", "carried_state"} <= set(journal.db["cycles"].columns_dict)
    assert {"book_vol_usd", "correlation", "risk_leverage"} <= set(journal.db["cycles"].columns_dict)  # 6
    assert "portfolio_worst_scenario_usd" in journal.db["cycles"].columns_dict  # 7
    currencies = [r["currency"] for r in journal.db.query("select currency from orders order by id")]
    assert currencies == ["ETH", None, None, None, None]  # from the instrument's name, where there is one
    # rows written before the write-ahead journal were never followed: none of them is in flight now
    statuses = [r["status"] for r in journal.db.query("select status from orders order by id")]
    assert statuses == ["filled", "unresolved", "unresolved", "unresolved", "rejected"]
    assert journal.in_flight() == []
    assert journal.db["runs"].count == 1  # data kept
    journal.close()
    assert integrity_ok(path)


def test_a_cycle_is_written_whole_and_nan_becomes_null(tmp_path):
    journal = Journal(tmp_path / "j.db")
    run = journal.start_run(
        started_at=NOW,
        mode="paper",
        venue="sim",
        config_source="t",
        config_json="{}",
        config_sha256="x",
        version="t",
    )
    record = CycleRecord(
        {
            "run_id": run,
            "n": 1,
            "ts": NOW,
            "action": "HOLD",
            "sigma_hat": float("nan"),
            "advice": ["cut vega"],
        },
        positions=[{"instrument": "BTC-PERPETUAL", "size": -100.0, "delta": -0.001}],
        events=[{"run_id": run, "ts": NOW, "level": "info", "kind": "k", "message": "m"}],
    )
    cycle_id = journal.write_cycle(record)
    row = journal.db["cycles"].get(cycle_id)
    assert row["sigma_hat"] is None and row["advice"] == '["cut vega"]'
    assert [p["cycle_id"] for p in journal.db["positions"].rows] == [cycle_id]
    assert [e["cycle_id"] for e in journal.db["events"].rows] == [cycle_id]
    journal.close()


# ------------------------------------------------------------------ orders written ahead


def _order(state=None, **changes):
    from dataclasses import replace

    from controller.orders import OrderState, TrackedOrder
    from controller.venues import Side

    base = TrackedOrder(
        label="lv-1a-3-0",
        run_id=1,
        cycle_n=3,
        instrument="BTC-PERPETUAL",
        side=Side.BUY,
        amount=10_000.0,
        reduce_only=False,
        state=state or OrderState.SENDING,
        created_at=NOW,
        updated_at=NOW,
        notional_usd=10_000.0,
        delta_usd_change=10_000.0,
        valid_until=NOW,
        position_before=-5_000.0,
    )
    return replace(base, **changes)


def _run(journal):
    return journal.start_run(
        started_at=NOW,
        mode="testnet",
        venue="sim",
        config_source="t",
        config_json="{}",
        config_sha256="x",
        version="t",
        pid=4242,
        host="box",
    )


def test_an_intent_is_committed_before_anything_else_and_read_back_in_flight(tmp_path):
    from controller.orders import OrderState

    path = tmp_path / "j.db"
    journal = Journal(path, durable=True)
    assert journal.db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL: survives a power cut
    _run(journal)
    intent = journal.record_intent(_order())
    # another connection sees it at once: it is committed, not waiting for the cycle
    other = sqlite_utils.Database(path)
    assert [r["status"] for r in other.query("select status from orders")] == ["sending"]
    (back,) = Journal(path).in_flight()
    assert back == intent  # every field survives the round trip
    unknown = journal.record_transition(
        intent, _order(OrderState.UNKNOWN, error="timed out", row_id=intent.row_id), detail="timeout"
    )
    filled = journal.record_transition(
        unknown, _order(OrderState.FILLED, filled_amount=10_000.0, resolved_by="label"), detail="found"
    )
    assert journal.in_flight() == [] and filled.row_id == intent.row_id
    steps = [
        (e["from_status"], e["to_status"], e["detail"]) for e in other.query("select * from order_events")
    ]
    assert steps == [
        (None, "sending", "intent, before sending"),
        ("sending", "unknown", "timeout"),
        ("unknown", "filled", "found"),
    ]
    journal.close()


def test_runs_left_running_are_closed_as_crashed(tmp_path):
    journal = Journal(tmp_path / "j.db")
    first = _run(journal)
    crashed = journal.close_crashed_runs(now=NOW, found_by="process 7")
    assert [r["id"] for r in crashed] == [first]
    row = journal.db["runs"].get(first)
    assert row["status"] == "crashed" and "process 4242 on box" in row["exit_reason"]
    assert journal.close_crashed_runs(now=NOW, found_by="process 7") == []
    journal.close()


def test_a_full_disk_is_a_journal_error(tmp_path):
    """SQLite's own 'database or disk is full' (the file may grow no further), not a traceback."""
    import pytest

    from controller.journal import JournalError

    path = tmp_path / "j.db"
    journal = Journal(path)
    pages = journal.db.execute("PRAGMA page_count").fetchone()[0]
    journal.db.execute(f"PRAGMA max_page_count = {pages}")
    with pytest.raises(JournalError, match=f"the decision log {path} cannot be written .*disk is full"):
        for _ in range(1000):  # a few hundred runs fill the pages it has
            _run(journal)
    journal.close()


def test_what_is_not_a_decision_log_is_refused_and_left_as_it_was(tmp_path):
    import sqlite3

    import pytest

    from controller.journal import JournalError

    text = tmp_path / "notes.db"
    text.write_bytes(b"this is not a database, it is a text file of more than a hundred bytes " * 4)
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as conn:
        conn.execute("create table customers (name)")
    folder = tmp_path / "folder"
    folder.mkdir()
    cases = {
        text: f"{text} is not a SQLite database",
        other: f"{other} is not a levctl decision log .another program's database: customers.",
        folder: f"{folder} is a directory",
    }
    before = {p: p.read_bytes() for p in (text, other)}
    for path, words in cases.items():
        with pytest.raises(JournalError, match=words):
            Journal(path)
    assert {p: p.read_bytes() for p in (text, other)} == before
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "folder",
        "notes.db",
        "other.db",
    ]  # no -wal, no lock
