"""``levctl serve``: a real ``levctl run`` and ``levctl serve`` on 127.0.0.1, the page read over HTTP and
in headless Chromium (Debian's), the token rules, and nothing of the exchange on the page."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from controller.review.live import ServeError, check_bind
from tests.controller.e2e import EXE, free_port, has_cycles, rows, wait_until

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
SECRET = "live-page-s3cr3t-5d1e"


class Process:
    def __init__(self, args: list[str], cwd: Path, env: dict[str, str] | None = None) -> None:
        self.proc = subprocess.Popen(
            [EXE, *args], cwd=cwd, env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True,
        )  # fmt: skip

    def stop(self) -> str:
        if self.proc.poll() is None:
            self.proc.terminate()
        out, err = self.proc.communicate(timeout=30)
        return out + err


@pytest.fixture(scope="module")
def live_run(tmp_path_factory) -> Iterator[Path]:
    """``levctl run`` on the embedded default, forever (until the module's tests are done)."""
    home = tmp_path_factory.mktemp("live")
    default = (Path(__file__).parents[3] / "controller" / "default.toml").read_text()
    # two virtual days of history give a VaR (the default asks for 30); the VaR guard set, not tripped
    text = default.replace("[risk]", "[risk]\nvar_min_days = 2", 1)
    (home / "live.toml").write_text(text.replace("[guards]", "[guards]\nmax_var_fraction = 0.5", 1))
    bot = Process(["run", "--config", "live.toml", "--cycles", "0"], home, {"LEVCTL_API_SECRET": SECRET})
    db = home / "logs" / "levctl.db"
    try:
        wait_until(lambda: has_cycles(db, 3), 60, "the bot's first cycles")
        yield db
    finally:
        output = bot.stop()
        assert "Traceback" not in output, output


def serve(db: Path, **env: str) -> tuple[Process, str]:
    port = free_port()
    server = Process(["serve", "--db", str(db), "--port", str(port), "--poll", "0.3"], db.parent, env)
    url = f"http://127.0.0.1:{port}/"
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            urllib.request.urlopen(url + "login", timeout=1)
            return server, url
        except urllib.error.HTTPError:
            return server, url
        except OSError:
            time.sleep(0.1)
    raise AssertionError(f"levctl serve did not come up: {server.stop()}")


def get(url: str, **headers: str) -> tuple[int, str, dict[str, str]]:
    request = urllib.request.Request(url, headers=headers)
    try:
        with urllib.request.urlopen(request, timeout=10) as reply:
            return reply.status, reply.read().decode(errors="replace"), dict(reply.headers)
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read().decode(), dict(exc.headers)


def has_var(db: Path) -> bool:
    return bool(rows(db, "select id from cycles where var_usd is not null limit 1"))


def test_the_page_shows_the_run_over_http(live_run):
    server, url = serve(live_run, LEVCTL_API_SECRET=SECRET)
    try:
        wait_until(lambda: has_var(live_run), 60, "a cycle with a VaR")
        status, page, _ = get(url)
        assert status == 200
        for words in ("ACTIVE", "run 1 · paper on sim", "leverage L", "target L*", "σ̂", "equity (USD)",
                      "margin ratio", "to liquidation", "Positions and greeks", "BTC-PERPETUAL", "$gamma /1 %",
                      "Last decisions", "Orders", "lv-", "Advice and limit breaches", "worst scenario loss",
                      "EventSource", "1-day 99% VaR (USD)", "of equity, limit 50%", "ES ", "worst days", "delta-gamma-vega",
                      "σ̂ components: implied", "realised", "blend"):  # fmt: skip
            assert words in page, words
        with urllib.request.urlopen(url + "plot.png", timeout=20) as reply:
            assert reply.headers["content-type"] == "image/png" and reply.read()[:8] == b"\x89PNG\r\n\x1a\n"
        status, state, _ = get(url + "api/state")
        assert status == 200 and '"mode": "paper"' in state
        figures = json.loads(state)["figures"]
        assert figures["var_usd"] > 0 and figures["es_usd"] >= figures["var_usd"]
        # the default estimator: realised once it has history, the implied vol until then (and says so)
        cold = "until realised has history" in figures["sigma_source"]
        chosen = figures["sigma_implied"] if cold else figures["sigma_realised"]
        assert figures["sigma_hat"] == pytest.approx(chosen)
        assert json.loads(state)["limits"]["max_var_fraction"] == 0.5
        assert SECRET not in page + state
    finally:
        server.stop()


def test_the_event_stream_sends_new_cycles(live_run):
    server, url = serve(live_run)
    try:
        with urllib.request.urlopen(url + "events", timeout=10) as stream:
            seen: list[int] = []
            deadline = time.monotonic() + 20
            while len(set(seen)) < 2 and time.monotonic() < deadline:
                line = stream.readline().decode()
                if "id='cycle' data-n='" in line:
                    seen.append(int(line.split("data-n='")[1].split("'")[0]))
        assert len(set(seen)) >= 2 and seen == sorted(seen), seen
    finally:
        server.stop()


def test_other_addresses_need_a_token():
    with pytest.raises(ServeError, match="needs a token"):
        check_bind("0.0.0.0", None)
    check_bind("0.0.0.0", "t0ken")
    check_bind("127.0.0.1", None)
    check_bind("::1", None)
    refused = subprocess.run(
        [EXE, "serve", "--host", "0.0.0.0", "--port", str(free_port())],
        capture_output=True, text=True, timeout=30, env={k: v for k, v in os.environ.items() if k != "LEVCTL_SERVE_TOKEN"},
    )  # fmt: skip
    assert refused.returncode == 1 and "needs a token: set LEVCTL_SERVE_TOKEN" in refused.stderr
    assert "Traceback" not in refused.stderr and len(refused.stderr.strip().splitlines()) == 1


def test_with_a_token_every_request_needs_it(live_run):
    token = "serve-t0ken-31f"
    server, url = serve(live_run, LEVCTL_SERVE_TOKEN=token)
    try:
        status, body, _ = get(url, Accept="text/html")
        assert status == 401 and "Sign in" in body and "BTC-PERPETUAL" not in body
        assert get(url + "api/state")[0] == 401 and get(url + "events")[0] == 401
        assert get(url + "api/state", Authorization="Bearer wrong")[0] == 401
        status, state, _ = get(url + "api/state", Authorization=f"Bearer {token}")
        assert status == 200 and "BTC-PERPETUAL" in state and token not in state
        assert get(url + "login?token=wrong")[0] == 401
        opener = urllib.request.build_opener(urllib.request.HTTPCookieProcessor())
        with opener.open(url + f"login?token={token}", timeout=10) as reply:  # follows the redirect to /
            page = reply.read().decode()
        assert "Positions and greeks" in page and token not in page
        with opener.open(url + "api/state", timeout=10) as reply:
            assert reply.status == 200
    finally:
        server.stop()


def _browser_or_skip() -> Any:
    """playwright's API with Debian's chromium, or a skip with the reason (a failure where CI needs it)."""
    missing = None
    if CHROMIUM is None:
        missing = "no chromium on this machine (Debian: apt-get install chromium; .ci/run installs it)"
    try:
        import playwright.sync_api as sync_api
    except ImportError:
        missing = missing or "playwright is not installed (pip install -e '.[test]')"
    if missing is not None:
        if os.environ.get("LEVCTL_REQUIRE_BROWSER") == "1":
            pytest.fail(missing + "; LEVCTL_REQUIRE_BROWSER=1 requires it")
        pytest.skip(missing)
    return sync_api


def launch(playwright: Any) -> Any:
    """Debian's chromium, headless, with nothing that would reach the network on its own."""
    return playwright.chromium.launch(
        executable_path=CHROMIUM,
        args=["--no-sandbox", "--disable-gpu", "--disable-quic", "--disable-background-networking",
              "--disable-component-update", "--disable-sync", "--no-first-run"],
    )  # fmt: skip


@pytest.mark.slow
def test_in_a_real_browser_the_cycle_advances_without_a_reload(live_run, tmp_path):
    sync_api = _browser_or_skip()
    server, url = serve(live_run)
    shot = Path(os.environ.get("LEVCTL_SCREENSHOT_DIR", tmp_path)) / "live-page.png"
    try:
        with sync_api.sync_playwright() as p:
            browser = launch(p)
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            loads: list[str] = []
            page.on("load", lambda: loads.append(page.url))
            page.goto(url)
            first = int(page.text_content("#cycle").split()[1])
            page.wait_for_function(
                f"() => parseInt(document.getElementById('cycle').dataset.n) > {first + 2}", timeout=20_000
            )
            later = int(page.text_content("#cycle").split()[1])
            page.wait_for_function("() => !document.getElementById('plot').hidden", timeout=20_000)
            assert page.text_content("#conn") == "live"
            page.wait_for_function(
                "() => document.body.innerText.includes('of equity, limit 50%')", timeout=60_000
            )  # the VaR card, once two virtual days are in the log
            text = page.inner_text("body")
            for words in ("ACTIVE", "leverage L", "BTC-PERPETUAL", "worst scenario loss", "Last decisions",
                          "1-day 99% VaR (USD)", "σ̂ components: implied"):  # fmt: skip
                assert words in text, words
            page.screenshot(path=str(shot), full_page=True)
            browser.close()
    finally:
        server.stop()
    assert later > first + 2 and len(loads) == 1, (first, later, loads)  # one load: no reload
    assert shot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and shot.stat().st_size > 50_000
