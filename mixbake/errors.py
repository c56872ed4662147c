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
