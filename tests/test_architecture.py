"""The layout holds: which package may import which (docs/architecture.md), and module sizes.

Imports are read from the source with ``ast`` (every ``import`` and ``from … import``, at any depth,
so an import inside a function counts too).  The layers, bottom to top::

    pricing ← sim ← venues ← risk ← controller root (app config loop execution journal …) ← replay ← cli
                                                                       review (reads the log) ← cli
"""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
ROOT_LAYER = "controller"  # the modules at controller/'s root: the controller itself

ALLOWED: dict[str, set[str]] = {
    "pricing": {"pricing"},
    "controller.sim": {"pricing", "controller.sim"},
    "controller.venues": {"pricing", "controller.venues", "controller.sim"},
    "controller.risk": {"pricing", "controller.venues", "controller.risk"},
    ROOT_LAYER: {"pricing", "controller.venues", "controller.risk", ROOT_LAYER},
    "controller.replay": {
        "pricing",
        "controller.sim",
        "controller.venues",
        "controller.risk",
        ROOT_LAYER,
        "controller.replay",
    },
    "controller.review": {"pricing", "controller.review"},
    "controller.cli": {
        "pricing",
        "controller.sim",
        "controller.venues",
        "controller.risk",
        ROOT_LAYER,
        "controller.replay",
        "controller.review",
        "controller.cli",
    },
}
SIM_GATEWAY = "controller.venues.sim"  # the one venues module that opens the simulator


def _module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def _layer(module: str) -> str | None:
    if module == "pricing" or module.startswith("pricing."):
        return "pricing"
    if not (module == "controller" or module.startswith("controller.")):
        return None
    parts = module.split(".")
    if len(parts) >= 2 and f"controller.{parts[1]}" in ALLOWED:
        return f"controller.{parts[1]}"
    return ROOT_LAYER


def _imports(path: Path) -> list[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append(node.module)
    return found


def _sources() -> list[Path]:
    return sorted([*ROOT.joinpath("pricing").rglob("*.py"), *ROOT.joinpath("controller").rglob("*.py")])


def _violations(module: str, imported: list[str]) -> list[str]:
    layer = _layer(module)
    assert layer is not None, module
    broken = []
    for name in imported:
        target = _layer(name)
        if target is None:
            continue
        if target not in ALLOWED[layer]:
            broken.append(f"{module} imports {name} ({layer} may not import {target})")
        elif layer == "controller.venues" and target == "controller.sim" and module != SIM_GATEWAY:
            broken.append(f"{module} imports {name}: only {SIM_GATEWAY} opens the simulator")
    return broken


def test_every_layer_imports_only_what_it_may() -> None:
    broken = [v for path in _sources() for v in _violations(_module_name(path), _imports(path))]
    assert not broken, "\n".join(broken)


@pytest.mark.parametrize(
    ("module", "imported", "allowed"),
    [
        ("controller.risk.policy", "controller.loop", False),  # upwards
        ("controller.risk.policy", "controller.venues.base", True),
        ("controller.venues.base", "controller.sim.engine", False),  # the simulator only via venues.sim
        ("controller.venues.sim", "controller.sim.engine", True),
        ("controller.loop", "controller.sim", False),
        ("controller.review.report", "controller.journal", False),  # review reads the SQLite file itself
        ("pricing.book", "controller.venues", False),
        ("controller.cli.run", "controller.app", True),
    ],
)
def test_the_rules_refuse_upward_imports(module: str, imported: str, allowed: bool) -> None:
    assert (not _violations(module, [imported])) is allowed


def test_modules_stay_small_and_the_root_stays_lean() -> None:
    big = [
        f"{p.relative_to(ROOT)} ({n} lines)"
        for p in _sources()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 500
    ]
    assert not big, f"modules over 500 lines: {big}"
    root_modules = [p.name for p in ROOT.joinpath("controller").glob("*.py") if p.name != "__init__.py"]
    assert len(root_modules) <= 8, (
        f"controller/ holds {len(root_modules)} modules at its root: {root_modules}"
    )


HEAVY = ("numpy", "scipy", "pydantic", "ccxt", "matplotlib", "sqlite_utils", "schedule")


def _loaded(code: str, names: tuple[str, ...]) -> list[str]:
    """The ``names`` a fresh interpreter has loaded after running ``code``."""
    probe = f"{code}\nimport sys\nprint('loaded:', *(n for n in {names!r} if n in sys.modules))"
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    return out.stdout.splitlines()[-1].split()[1:]


@pytest.mark.parametrize(
    ("module", "absent"),
    [
        ("controller.config", ("ccxt",)),
        ("controller.review.log", ("ccxt", "numpy", "sqlite_utils", "matplotlib")),
        ("controller.venues", ("ccxt",)),
        ("controller.cli", HEAVY),  # the command group names its commands; it imports none of them
        ("controller", HEAVY),
        ("pricing", ("controller",)),
        ("controller.cli.calibrate", ("optuna", "distributed", "dask")),  # imported when a study runs
        ("controller.cli.replay", ("optuna", "distributed", "dask")),
        ("controller.replay", ("optuna", "distributed", "dask")),
    ],
)
def test_importing_a_module_does_not_load_what_it_does_not_use(module: str, absent: tuple[str, ...]) -> None:
    assert _loaded(f"import {module}", absent) == [], f"importing {module} loads them"


def test_levctl_log_loads_nothing_heavy(tmp_path: Path) -> None:
    from datetime import UTC, datetime

    from controller.journal import CycleRecord, Journal

    db = tmp_path / "l.db"
    journal = Journal(db)
    run = journal.start_run(
        started_at=datetime(2026, 1, 2, tzinfo=UTC),
        mode="paper",
        venue="sim",
        config_source="t",
        config_json="{}",
        config_sha256="-",
        version="t",
    )
    row = {"run_id": run, "n": 1, "ts": datetime(2026, 1, 2, tzinfo=UTC), "state": "ACTIVE", "action": "HOLD"}
    journal.write_cycle(CycleRecord(row))
    journal.close()
    code = f"from controller.cli import cli\ncli(['log', '--db', {str(db)!r}], standalone_mode=False)"
    assert _loaded(code, (*HEAVY, "pricing", "controller.config", "controller.loop")) == []


def test_every_command_the_group_names_resolves() -> None:
    import click

    from controller.cli.main import COMMANDS, cli

    context = click.Context(cli)
    assert cli.list_commands(context) == list(COMMANDS)
    for name in COMMANDS:
        command = cli.get_command(context, name)
        assert isinstance(command, click.Command) and command.name == name
