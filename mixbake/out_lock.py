"""One bake per OUT at a time.

On a local disk the lock is the operating system's (``flock`` on ``OUT/.mixbake.lock``): it is held
for the whole bake and dies with its process, however that process ends, so a killed bake never
leaves OUT locked. The file says who holds it (pid, host, since when) for the message a second bake
prints; it is removed when the bake ends.

An object store has no locks. There the lock is a lease: ``OUT/.mixbake.lock`` holds the holder and
a heartbeat, renewed every ``HEARTBEAT`` seconds while the bake runs; a second bake refuses while the
heartbeat is fresher than ``LEASE`` seconds. It is advisory: two bakes started within the same few
seconds can both see no lease and both go on (S3 offers no atomic create that pyarrow exposes). The
build identity still keeps them apart: a *different* build into a claimed OUT is always refused.
A lease left by a process of this machine that is gone is stale at once.
"""
from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from datetime import datetime, timezone
from typing import Optional

from .errors import MixbakeError

log = logging.getLogger("mixbake")

LOCK = ".mixbake.lock"
HEARTBEAT = 30.0   # seconds between renewals of an object-store lease
LEASE = 120.0      # a lease not renewed for this long is stale (its bake is gone)
POLL = 0.5         # seconds between tries with --wait on an object store


def _now() -> str:
    return datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M:%S UTC")


def _holder(since: str) -> dict:
    return {"pid": os.getpid(), "host": socket.gethostname(), "since": since, "beat": time.time()}


def _busy(store, holder: Optional[dict]) -> MixbakeError:
    who = (f"pid {holder.get('pid')} on {holder.get('host')}, since {holder.get('since')}" if holder
           else "its holder did not say who it is")
    return MixbakeError(f"Another bake is running into {store.display()} ({who}): wait for it to end, or "
                        f"re-run with --wait to wait for it.")


class OutLock:
    """``with OutLock(store, wait): ...``: the bake's exclusive hold on OUT."""

    def __init__(self, store, wait: bool = False):
        self.store, self.wait = store, wait
        self._fd: Optional[int] = None
        self._stop: Optional[threading.Event] = None
        self._since = _now()

    def __enter__(self):
        self.store.makedirs()
        (self._lock_local if self.store.local else self._lock_remote)()
        return self

    def __exit__(self, *exc):
        if self._fd is not None:
            try:
                os.unlink(self.store.path(LOCK))  # while still held: a waiter re-checks the file it locked
            except OSError:
                pass
            os.close(self._fd)
            self._fd = None
        if self._stop is not None:
            self._stop.set()
            self.store.remove(LOCK)
        return False

    # ---------------------------------------------------------------- local: flock
    def _lock_local(self) -> None:
        import fcntl
        path = self.store.path(LOCK)
        while True:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                holder = _read_holder(fd)
                if not self.wait:
                    os.close(fd)
                    raise _busy(self.store, holder) from None
                log.warning("waiting for the bake that holds %s (%s) to end", self.store.display(),
                            f"pid {holder.get('pid')} on {holder.get('host')}" if holder else "pid unknown")
                fcntl.flock(fd, fcntl.LOCK_EX)
            if _same_file(fd, path):  # not unlinked by a holder that ended while we waited
                break
            os.close(fd)
        os.ftruncate(fd, 0)
        os.write(fd, json.dumps(_holder(self._since), sort_keys=True).encode())
        self._fd = fd

    # ---------------------------------------------------------------- object store: a lease
    def _lock_remote(self) -> None:
        while True:
            holder = self._remote_holder()
            if holder is None or time.time() - holder.get("beat", 0) > LEASE or _gone(holder):
                break
            if not self.wait:
                raise _busy(self.store, holder)
            time.sleep(POLL)
        self._write_lease()
        self._stop = threading.Event()
        threading.Thread(target=self._renew, daemon=True, name="mixbake-lease").start()

    def _remote_holder(self) -> Optional[dict]:
        try:
            return json.loads(self.store.read_bytes(LOCK)) if self.store.exists(LOCK) else None
        except (OSError, ValueError):
            return None

    def _write_lease(self) -> None:
        self.store.write_bytes(LOCK, json.dumps(_holder(self._since), sort_keys=True).encode())

    def _renew(self) -> None:
        while not self._stop.wait(HEARTBEAT):
            try:
                self._write_lease()
            except OSError:
                pass  # a missed renewal is retried; the lease outlasts a few


def _gone(holder: dict) -> bool:
    """A lease of a process of this machine that is no longer running (a bake that could not take
    its lease back: the store stopped answering, or the bake was killed) is stale at once."""
    if holder.get("host") != socket.gethostname() or not isinstance(holder.get("pid"), int):
        return False
    try:
        os.kill(holder["pid"], 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


def _read_holder(fd: int) -> Optional[dict]:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        return json.loads(os.read(fd, 4096) or b"null")
    except (OSError, ValueError):
        return None


def _same_file(fd: int, path: str) -> bool:
    try:
        return os.fstat(fd).st_ino == os.stat(path).st_ino
    except OSError:
        return False
