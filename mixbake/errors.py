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
