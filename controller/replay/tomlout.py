"""A configuration written back as TOML: ``levctl calibrate --write-config`` (no TOML writer needed).

The whole validated configuration is written, section by section, so the file stands alone and
``load_config`` reads it back to the same settings; keys whose value is unset (``None``) are left
out (they default to it), and chosen keys carry a comment on their line.
"""

from __future__ import annotations

import json
import math
from datetime import datetime
from typing import Any


def config_toml(raw: dict[str, Any], *, header: list[str], notes: dict[str, str]) -> str:
    """``raw`` (a configuration as plain data) as TOML; ``notes`` maps ``"policy.band"`` to a comment."""
    lines = [f"# {h}".rstrip() for h in header]
    _table(lines, [], raw, notes)
    return "\n".join(lines).strip() + "\n"


def _table(lines: list[str], path: list[str], table: dict[str, Any], notes: dict[str, str]) -> None:
    scalars = {k: v for k, v in table.items() if not _is_table(k, v) and not _is_tables(v) and v is not None}
    if path and (scalars or not table):
        lines += ["", f"[{'.'.join(_key(p) for p in path)}]"]
    for key, value in scalars.items():
        note = notes.get(".".join([*path, key]))
        line = f"{_key(key)} = {_value(value)}"
        lines.append(f"{line}  # {note}" if note else line)
    for key, value in table.items():
        if _is_table(key, value):
            _table(lines, [*path, key], value, notes)
        elif _is_tables(value):
            for entry in value:
                lines += ["", f"[[{'.'.join(_key(p) for p in [*path, key])}]]"]
                lines += [f"{_key(k)} = {_value(v)}" for k, v in entry.items() if v is not None]


def _is_table(key: str, value: Any) -> bool:
    """A nested mapping is a table, but a search-space entry (``"policy.band"``) is written inline."""
    return isinstance(value, dict) and "." not in key


def _is_tables(value: Any) -> bool:
    return isinstance(value, list | tuple) and bool(value) and all(isinstance(v, dict) for v in value)


def _key(key: str) -> str:
    return key if key.replace("_", "").replace("-", "").isalnum() else json.dumps(key)


def _value(value: Any) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if not math.isfinite(value):
            raise ValueError(f"TOML cannot hold {value}")
        return repr(value)
    if isinstance(value, datetime):
        return value.isoformat().replace("+00:00", "Z")
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)
    if isinstance(value, list | tuple):
        return "[" + ", ".join(_value(v) for v in value) + "]"
    if isinstance(value, dict):
        items = [f"{_key(k)} = {_value(v)}" for k, v in value.items() if v is not None]
        return "{ " + ", ".join(items) + " }"
    raise TypeError(f"no TOML for {type(value).__name__}")
