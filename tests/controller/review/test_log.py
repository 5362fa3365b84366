"""``levctl log``: limit breaches as episodes (when each began and ended), and ``--follow`` printing new
cycles, events and breaches as a real run writes them."""

from __future__ import annotations

import json
import os
import queue
import subprocess
import threading
import time
from pathlib import Path

from controller.review.breaches import BreachTracker, breach_key
from controller.review.logview import breach_line
from tests.controller.e2e import EXE, has_cycles, wait_until

VEGA = "vega +2,500 USD per vol point exceeds the limit 2,000: reduce X from -5 to -3"
WORST = "worst scenario loss (PM -16%) -9,000 USD exceeds the limit 6,000: reduce Y from -2 to -1"


def test_a_breach_is_named_by_its_metric_not_its_figures():
    assert breach_key(VEGA) == "vega"
    assert breach_key(WORST) == "worst scenario loss"
    assert breach_key("1-day 99% VaR -61,000 USD exceeds the limit 50,000: reduce Z") == "1-day 99% VaR"


def test_episodes_start_and_end_and_a_failed_cycle_does_neither():
    tracker = BreachTracker()
    steps = [
        (1, [VEGA]),
        (2, [VEGA, WORST]),
        (3, None),  # failed: computed no advice
        (4, [WORST]),
        (5, []),
    ]
    seen = []
    for n, texts in steps:
        started, ended = tracker.observe(1, n, f"t{n}", texts)
        seen.append(([e.key for e in started], [e.key for e in ended]))
    assert seen == [
        (["vega"], []),
        (["worst scenario loss"], []),
        ([], []),
        ([], ["vega"]),
        ([], ["worst scenario loss"]),
    ]
    vega, worst = tracker.episodes
    assert (vega.first_n, vega.last_n, vega.cycles, vega.ongoing) == (1, 2, 2, False)
    assert (worst.first_n, worst.last_n, worst.cycles) == (2, 4, 2)
    assert breach_line(vega, started=False) == "BREACH ended: vega (run 1, cycles 1–2, 2 cycles)"
    assert breach_line(worst, started=True).startswith(
        "BREACH started: worst scenario loss (run 1 cycle 2): "
    )


def test_a_new_run_ends_the_last_runs_episodes():
    tracker = BreachTracker()
    tracker.observe(1, 1, "t1", [VEGA])
    started, _ = tracker.observe(2, 1, "t2", [VEGA])
    assert [e.run_id for e in tracker.episodes] == [1, 2] and not tracker.episodes[0].ongoing
    assert [e.run_id for e in started] == [2]


def levctl(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([EXE, *args], cwd=cwd, capture_output=True, text=True, timeout=120)


def test_log_shows_the_default_configs_standing_advice_as_one_episode(tmp_path):
    assert levctl("run", "--cycles", "3", cwd=tmp_path).returncode == 0
    data = json.loads(levctl("log", "--json", cwd=tmp_path).stdout)
    (episode,) = [b for b in data["breaches"] if b["breach"] == "worst scenario loss"]
    assert (episode["from_cycle"], episode["to_cycle"], episode["cycles"], episode["ongoing"]) == (
        1,
        3,
        3,
        False,
    )
    table = levctl("log", cwd=tmp_path)
    assert table.returncode == 0 and "advice and limit breaches" in table.stdout
    assert "worst scenario loss" in table.stdout and table.stderr == ""


def _lines(stream) -> queue.Queue[str]:
    out: queue.Queue[str] = queue.Queue()
    threading.Thread(target=lambda: [out.put(line) for line in stream], daemon=True).start()
    return out


def _wait_for(lines: queue.Queue[str], seen: list[str], test, what: str, timeout: float = 30) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            seen.append(lines.get(timeout=0.5))
        except queue.Empty:
            continue
        if test(seen):
            return
    raise AssertionError(f"log --follow never showed {what}: {seen}")


def test_follow_prints_new_cycles_breaches_and_the_runs_end_as_they_are_written(tmp_path):
    assert levctl("run", "--cycles", "1", cwd=tmp_path).returncode == 0  # the log exists, run 1 is over
    follow = subprocess.Popen(
        [EXE, "log", "--follow", "--limit", "1"], cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        text=True, env={**os.environ, "COLUMNS": "200"},
    )  # fmt: skip
    run = None
    try:
        lines, seen = _lines(follow.stdout), []
        _wait_for(lines, seen, lambda s: any(x.startswith("following ") for x in s), "that it follows")
        run = subprocess.Popen([EXE, "run", "--cycles", "0"], cwd=tmp_path, stderr=subprocess.PIPE, text=True)
        wait_until(lambda: has_cycles(tmp_path / "logs" / "levctl.db", 2), 60, "run 2's cycles")

        def cycles(s: list[str]) -> list[int]:
            return [int(x.split(" cycle ")[1].split()[0]) for x in s if "  run 2 cycle " in x]

        _wait_for(lines, seen, lambda s: len(cycles(s)) >= 4, "four cycles of run 2")
        assert cycles(seen) == sorted(cycles(seen)) and len(set(cycles(seen))) == len(cycles(seen))
        assert any(x.startswith("BREACH started: worst scenario loss (run 2 BTC cycle 1)") for x in seen), (
            seen
        )
        assert any("σ̂ " in x and " USD  L " in x for x in seen if "  run 2 cycle " in x)
        run.terminate()
        run.wait(timeout=30)
        _wait_for(
            lines, seen, lambda s: any("INFO stop: finished: stop requested" in x for x in s), "the stop"
        )
    finally:
        if run is not None and run.poll() is None:
            run.kill()
        follow.terminate()
        _, err = follow.communicate(timeout=30)
    assert "Traceback" not in err
