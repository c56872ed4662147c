"""The one exception type users see: its message is a single sentence naming the problem."""


class MixbakeError(Exception):
    """A problem with the user's input or request (not a bug). The CLI prints it without a traceback."""


class OptionsConflict(MixbakeError):
    """Options that cannot go together (the CLI's usage error, exit status 2)."""


class ItemError(MixbakeError):
    """One source item could not be used: ``ref`` names it (file, or parquet file + row)."""

    def __init__(self, ref: str, reason: str):
        super().__init__(f"{ref}: {reason}")
        self.ref = ref
        self.reason = reason

    def __reduce__(self):  # keep picklable across the process pool
        return (ItemError, (self.ref, self.reason))


class SourceChanged(MixbakeError):
    """A source item changed while the bake was reading the source: the build would match neither
    the old source nor the new one, so nothing is committed, whatever the --on-error policy."""

    def __init__(self, ref: str, what: str):
        super().__init__(f"{ref} changed while the bake was reading the source ({what}): nothing was "
                         f"committed. Re-run once the source is stable (it is then another build: "
                         f"--overwrite replaces this one).")
        self.ref, self.what = ref, what

    def __reduce__(self):  # keep picklable across the process pool
        return (SourceChanged, (self.ref, self.what))


def changed(ref: str, size: int) -> "SourceChanged":
    """SourceChanged for a file whose size or modification time is no longer what the listing saw."""
    return SourceChanged(ref, f"its size or modification time is no longer the listing's: now {size} bytes")


class DiskFull(MixbakeError):
    """No space left where OUT is; the message names the file being written and the free space."""

    def __init__(self, where: str, free: int = -1, needed: int = -1):
        from .humanize import human_bytes
        have = f" ({human_bytes(free)} free there)" if free >= 0 else ""
        need = f"; the rest of this build needs about {human_bytes(needed)} more" if needed > 0 else ""
        super().__init__(f"{where}: no space left on the device{have}{need}. Finished shards are kept: "
                         f"free some space, then re-run the same command to resume.")
        self.where, self.free, self.needed = where, free, needed

    def __reduce__(self):  # keep picklable across the process pool
        return (DiskFull, (self.where, self.free, self.needed))


def is_disk_full(exc: BaseException) -> bool:
    """ENOSPC from Python (errno) or from pyarrow (whose OSError says '[errno 28]' in its text)."""
    import errno
    return isinstance(exc, OSError) and (exc.errno == errno.ENOSPC or f"[errno {errno.ENOSPC}]" in str(exc))


class StoreUnreachable(MixbakeError):
    """An object store did not answer (timed out, refused, unreachable) within its timeouts and
    retries; ``where`` names the object. Not an OSError on purpose: it must not pass for a bad item
    or a missing file. ``resumable()``: the same, saying that a bake's finished shards are kept."""

    def __init__(self, where: str, why: str, resume: bool = False):
        then = "; finished shards are kept: re-run the same command to resume" if resume else ""
        super().__init__(f"{where}: the object store did not answer ({why}) within its timeouts and retries "
                         f"(MIXBAKE_S3_REQUEST_TIMEOUT, MIXBAKE_S3_RETRIES){then}.")
        self.where, self.why, self.resume = where, why, resume

    def resumable(self) -> "StoreUnreachable":
        return StoreUnreachable(self.where, self.why, resume=True)

    def __reduce__(self):  # keep picklable across the process pool
        return (StoreUnreachable, (self.where, self.why, self.resume))
