"""Field-by-field comparison of two JSON replies: names, types and nesting, not values.

``differences(real, sim)`` lists, as dotted paths, every field the real reply has and the simulator's
lacks (``missing``), every field the simulator adds (``extra``) and every field whose type differs
(``type``).  ``null`` matches any type (Deribit sends ``null`` for a missing quote where it would
otherwise send a number) and an int matches a float (Deribit prints whole numbers as ints).  The
elements of a list are compared with the real list's first element (one shape per list).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "deribit"


def fixture(name: str) -> Any:
    """A fixture's whole envelope."""
    return json.loads((FIXTURES / f"{name}.json").read_text())


def kind_of(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    if isinstance(value, dict):
        return "object"
    raise TypeError(f"not JSON: {value!r}")


def differences(real: Any, sim: Any, path: str = "") -> set[str]:
    out: set[str] = set()
    real_kind, sim_kind = kind_of(real), kind_of(sim)
    if "null" in (real_kind, sim_kind):
        return out
    if real_kind != sim_kind:
        return {f"type {path or '.'}: real {real_kind}, sim {sim_kind}"}
    if real_kind == "object":
        for key in real.keys() - sim.keys():
            out.add(f"missing {path}{key}")
        for key in sim.keys() - real.keys():
            out.add(f"extra {path}{key}")
        for key in real.keys() & sim.keys():
            out |= differences(real[key], sim[key], f"{path}{key}.")
    elif real_kind == "list" and real and sim:
        for element in sim:
            out |= differences(real[0], element, f"{path}[].")
    return out
