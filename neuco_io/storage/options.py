"""Storage options: parsing `key=value` pairs, timeouts for http(s), readable backend errors."""

from __future__ import annotations

import json
from typing import Any

from neuco_io.errors import UsageError


def _numeric_option(key: str) -> bool:
    """Options every fsspec backend reads as numbers (sizes, counts, timeouts)."""
    return key == "timeout" or key.endswith(("_size", "_timeout", "_retries")) or key.startswith("max_")


def parse_storage_options(pairs: tuple[str, ...] | list[str]) -> dict[str, Any]:
    """`key=value` pairs; values are JSON when they parse (true, 3, {"a": 1}), else strings. Sizes, counts
    and timeouts must be non-negative numbers (a usage error here, not a crash deep in a backend)."""
    options: dict[str, Any] = {}
    for pair in pairs:
        key, sep, value = pair.partition("=")
        if not sep or not key:
            raise UsageError(f"--storage-option {pair!r}: use key=value")
        try:
            options[key] = json.loads(value)
        except ValueError:
            options[key] = value
        number = options[key]
        if _numeric_option(key) and (isinstance(number, bool) or not isinstance(number, (int, float))
                                     or number < 0 or number != number):
            raise UsageError(f"--storage-option {pair!r}: {key} must be a non-negative number")
    return options


DEFAULT_TIMEOUT = 60.0
"""Seconds an http(s) server may stay silent (connecting, or between bytes) before a read fails."""


def _with_timeouts(text: str, options: dict[str, Any]) -> dict[str, Any]:
    """http(s): `timeout` (default DEFAULT_TIMEOUT) bounds connecting and each wait for data, not the whole
    transfer, so a multi-GB shard still streams while a server that never answers fails in bounded time."""
    if not text.startswith(("http://", "https://")):
        return options
    options = dict(options)
    seconds = options.pop("timeout", DEFAULT_TIMEOUT)
    client = dict(options.get("client_kwargs") or {})
    if "timeout" not in client:
        import aiohttp

        client["timeout"] = aiohttp.ClientTimeout(total=None, sock_connect=seconds, sock_read=seconds)
        options["client_kwargs"] = client
    return options


def error_text(exc: BaseException) -> str:
    """An exception as a message that says something: backends raise timeouts with no text at all."""
    if isinstance(exc, TimeoutError) and not str(exc):
        return ("no answer from the server in time (timed out; wait longer with --storage-option "
                "timeout=SECONDS)")
    return f"{type(exc).__name__}: {exc}"
