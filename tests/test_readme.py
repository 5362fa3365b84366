"""The README's examples run, and its test command is the one CI runs."""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = (ROOT / "README.md").read_text()


def test_library_example_runs():
    blocks = re.findall(r"```python\n(.*?)```", README, flags=re.S)
    assert blocks, "README has a python example"
    namespace: dict[str, object] = {}
    exec(compile(blocks[0], "README.md", "exec"), namespace)
    book = namespace["book"]
    assert book.underlyings["BTC"].collateral == 12.0  # type: ignore[attr-defined]


def test_ci_runs_the_readme_test_command():
    ci = (ROOT / ".ci" / "run").read_text()
    assert "test-command" in ci and "README.md" in ci
    marker = README.index("<!-- test-command")
    command = re.search(r"```sh\n(.*?)\n```", README[marker:], flags=re.S)
    assert command and "pytest" in command.group(1)
