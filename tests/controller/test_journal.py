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
        db["orders"].insert({"run_id": 1, "label": f"lv-old-1-{i}", "status": status, "side": "buy"})
    db.close()
    journal = Journal(path)
    assert journal.schema_version == SCHEMA_VERSION == 4
    assert any(i.columns == ["label"] for i in journal.db["orders"].indexes)  # added by version 2
    assert "replay_key" in journal.db["replays"].columns_dict  # added by version 3
    assert {"valid_until", "lookups", "resolved_by"} <= set(journal.db["orders"].columns_dict)  # version 4
    assert "order_events" in journal.db.table_names() and "skew_s" in journal.db["cycles"].columns_dict
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
