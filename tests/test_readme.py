"""The README's examples run, and its test command is the one CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_library_example_runs():
    blocks = [b for b in re.findall(r"```python\n(.*?)```", README, flags=re.S) if "import pricing" in b]
    assert blocks, "README has a library example"
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    book = namespace["book"]
    assert book.underlyings["BTC"].collateral == 12.0  # type: ignore[attr-defined]


def test_ci_runs_the_readme_test_command():
    marker = README.index("<!-- test-command")
    command = re.search(r"```sh\n(.*?)\n```", README[marker:], flags=re.S)
    assert command and "pytest" in command.group(1)
    ci_lines = (ROOT / ".ci" / "run").read_text().splitlines()
    assert command.group(1) in ci_lines  # verbatim, on a line of its own


def test_ccxt_example_runs_against_the_simulator():
    from controller.sim import SimExchange
    from controller.sim.server import SimServer

    (block,) = [b for b in re.findall(r"```python\n(.*?)```", README, flags=re.S) if "import ccxt" in b]
    with SimServer(SimExchange(), port=0) as server:
        namespace: dict[str, object] = {}
        exec(compile(block.replace("http://127.0.0.1:8765", server.url), "README.md", "exec"), namespace)
        assert namespace["exchange"].fetch_balance({"code": "BTC"})["BTC"]["total"] == 10.0  # type: ignore[attr-defined]


def test_every_command_is_in_the_readmes_command_line():
    from controller.cli.main import COMMANDS

    section = README[README.index("## The command line") :]
    block = re.search(r"```sh\n(.*?)```", section, flags=re.S)
    assert block is not None
    listed = {line.split()[1] for line in block.group(1).splitlines() if line.startswith("levctl ")}
    assert set(COMMANDS) <= listed, f"commands missing from the README: {set(COMMANDS) - listed}"


def test_the_docs_the_readme_links_exist():
    for link in re.findall(r"\]\((docs/[^)]+)\)", README):
        assert (ROOT / link).is_file(), link
