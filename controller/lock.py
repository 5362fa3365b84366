"""One bot per decision log, and one sending bot per exchange account: OS-level file locks.

The locks are ``filelock`` locks (``flock`` on Unix): the kernel releases them when the process
ends, however it ends — ``kill -9`` included — so a lock is never left behind by a dead bot, and a
live one is never stolen.  Beside each lock file the holder writes who it is (``.holder``: process,
host, start time, decision log), so a second ``levctl run`` can say at once whom it found.

* The decision log's lock sits beside it (``levctl.db.lock``): two runs on one log would both trade
  and fight over the SQLite writer.
* The account's lock lives in a per-user folder (``run.account_lock_dir``), named by the venue, its
  URL and a hash of the API key (never the key): two bots with different logs on one account would
  both hedge the same exposure.  Dry runs and the in-process simulator's paper account take none.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from filelock import FileLock, Timeout


class AlreadyRunningError(Exception):
    """Another levctl process holds the lock; the message names it."""


class LockFileError(Exception):
    """The lock file cannot be created (a read-only or full disk, a file where a folder should be)."""


def account_key(venue: str, url: str | None, api_key: str) -> str:
    """A file name for an exchange account: no secret in it, the same for every log that trades it."""
    digest = hashlib.sha256(f"{venue}|{url or 'default'}|{api_key}".encode()).hexdigest()[:16]
    return f"{venue}-{digest}"


@dataclass
class RunLocks:
    """The locks one run holds for its lifetime (keep the object: a collected lock is released)."""

    db: Path
    account_dir: Path | None = None
    account: str | None = None  # None: no account lock (dry run, paper account)
    _held: list[FileLock] = field(default_factory=list)

    def acquire(self) -> RunLocks:
        targets = [(self.db.with_name(self.db.name + ".lock"), f"the decision log {self.db}")]
        if self.account is not None and self.account_dir is not None:
            directory = self.account_dir.expanduser()
            targets.append((directory / f"{self.account}.lock", f"the account {self.account}"))
        try:
            for path, what in targets:
                self._take(path, what)
        except BaseException:
            self.release()
            raise
        return self

    def _take(self, path: Path, what: str) -> None:
        lock = FileLock(path, timeout=0)
        try:
            _folder(path.parent)
            lock.acquire()
        except Timeout:  # a TimeoutError, so an OSError: asked first
            if not path.exists():  # filelock times out on a folder it cannot create files in
                raise LockFileError(f"cannot create the lock file {path} for {what}") from None
            raise AlreadyRunningError(
                f"{what} is in use by {_holder(path)}; levctl does not start twice"
            ) from None
        except OSError as exc:
            raise LockFileError(
                f"cannot create the lock file {path} for {what}: {exc.strerror or exc}"
            ) from None
        self._held.append(lock)
        holder = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": datetime.now(UTC).isoformat(timespec="seconds"),
            "db": str(self.db),
        }
        try:
            _holder_file(path).write_text(json.dumps(holder), encoding="utf-8")
        except OSError as exc:
            raise LockFileError(
                f"cannot write {_holder_file(path)} for {what}: {exc.strerror or exc}"
            ) from None

    def release(self) -> None:
        while self._held:
            self._held.pop().release()


def _holder_file(lock_path: Path) -> Path:
    return lock_path.with_name(lock_path.name + ".holder")


def _holder(lock_path: Path) -> str:
    try:
        info = json.loads(_holder_file(lock_path).read_text(encoding="utf-8"))
        return f"process {info['pid']} on {info['host']} (since {info['since']}, decision log {info['db']})"
    except (OSError, ValueError, KeyError, TypeError):
        return "another levctl process"


def _folder(path: Path) -> None:
    """Create ``path`` and its parents; a file standing where a folder should be is named as such."""
    for part in (path, *path.parents):
        if part.exists() and not part.is_dir():
            raise NotADirectoryError(f"{part} is a file, not a folder")
    path.mkdir(parents=True, exist_ok=True)
