"""S3 through pyarrow, with timeouts and a bounded retry, so a stalled endpoint becomes an error
naming the object instead of workers blocked for as long as the stall lasts.

``pyarrow.fs.FileSystem.from_uri`` reads the URI (credentials in it, ``region``, ``scheme``,
``endpoint_override``, ...) and the AWS environment (``AWS_ENDPOINT_URL``, the region, the
credentials), but takes no timeout, and the file system it makes retries a failed connection for
as long as it keeps failing: with the endpoint paused, workers sat in a shard's ``close()`` for the
whole pause (120 s, 182 s). So the file system is made again from every setting ``from_uri``
resolved (those pyarrow itself pickles: ``S3FileSystem.__reduce__``), plus the settings below.

The defaults are longer than the AWS SDK's (1 s to connect, 3 s of silence), so that a busy
endpoint is not taken for a dead one, and still fail a bake within two minutes of a stall (82 s
measured): an upload that gets no answer takes about (request timeout + 6 s) per attempt (curl's
low-speed check averages over ~5 s, so a request that has just sent its body looks alive that much
longer), and a failing bake meets two in a row: its shard's, then labels.parquet's as the parent
stops. (More if a big shard had several parts in flight: each part takes its own attempts.)
"""
from __future__ import annotations

import os
from typing import Dict, Tuple

import pyarrow.fs as pafs

from ..errors import MixbakeError

# (setting, environment variable, default): seconds to open a connection; the longest silence of
# an open request (curl's low-speed limit: less than 1 byte/s for that long); and the retries after
# a request's first attempt (3 attempts in all, as pyarrow's default strategy has)
TIMEOUTS = (("connect_timeout", "MIXBAKE_S3_CONNECT_TIMEOUT", 5.0),
            ("request_timeout", "MIXBAKE_S3_REQUEST_TIMEOUT", 10.0))
RETRIES = ("MIXBAKE_S3_RETRIES", 2)


def patience() -> Dict[str, float]:
    """The timeouts (seconds) and retries in effect, from the environment; an error naming the
    variable when one is not a number."""
    found: Dict[str, float] = {}
    for name, variable, default in TIMEOUTS:
        found[name] = _number(variable, default, float, lambda v: v > 0, "a number of seconds > 0")
    variable, default = RETRIES
    found["retries"] = _number(variable, default, int, lambda v: v >= 0, "a whole number >= 0")
    return found


def _number(variable: str, default, kind, valid, what: str):
    text = os.environ.get(variable, "").strip()
    if not text:
        return default
    try:
        value = kind(text)
    except ValueError:
        value = None
    if value is None or not valid(value):
        raise MixbakeError(f"{variable} must be {what}, got {text!r}.")
    return value


def open_s3(location: str) -> Tuple[pafs.FileSystem, str]:
    """(file system, path inside it) of an ``s3://`` URI, as ``from_uri`` resolves it, with
    :func:`patience`'s timeouts (where the URI gave none) and retries."""
    fs, root = pafs.FileSystem.from_uri(location)
    _, (settings,) = fs.__reduce__()
    wanted = patience()
    for name, _, _ in TIMEOUTS:
        if settings.get(name) is None or settings[name] < 0:  # -1: "the SDK's default"
            settings[name] = wanted[name]
    return PatientS3FileSystem(int(wanted["retries"]), **settings), root


class PatientS3FileSystem(pafs.S3FileSystem):
    """An S3 file system that keeps its retries when pickled: pyarrow pickles every setting but the
    retry strategy, so each worker's copy would otherwise be back on pyarrow's default."""

    def __init__(self, retries: int, **settings):
        super().__init__(retry_strategy=pafs.AwsStandardS3RetryStrategy(max_attempts=retries + 1), **settings)
        self.retries = retries

    def __reduce__(self):
        _, (settings,) = super().__reduce__()
        return _rebuild, (self.retries, settings)


def _rebuild(retries: int, settings: dict) -> PatientS3FileSystem:
    return PatientS3FileSystem(retries, **settings)
