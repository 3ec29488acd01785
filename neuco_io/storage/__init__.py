"""Where data lives: local paths, or fsspec URLs (s3://, gs://, az://, hf://, http(s)://, memory://).

Local paths stay `pathlib.Path` (and keep the fast os-level code paths);
URLs become `upath.UPath`, which offers the same API over fsspec, so the rest
of neuco-io handles both alike. Credentials come from the usual environment
(AWS_*, GOOGLE_*, HF_TOKEN...) and from storage options (`--storage-option
key=value` on the command line).

Writes to an object store stay atomic without renames: a file is written
locally first and then uploaded in one PUT, so it appears under its final
name only when complete (S3 and the others never show a partial object).
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import stat
import tempfile
from collections.abc import Iterator
from pathlib import Path, PurePath
from typing import IO, Any

from neuco_io.errors import UsageError

__all__ = ["AnyPath", "Folder", "as_path", "error_text", "file_kind", "file_size", "in_process_only", "is_remote",
           "open_read",
           "parse_storage_options", "read_only", "sha256_file", "signature", "size_or_zero", "upload_atomic"]

AnyPath = Path  # a pathlib.Path or an upath.UPath (which follows the same API)
READ_ONLY = ("http", "https")


def _is_upath(value: Any) -> bool:
    return type(value).__module__.startswith("upath")


def is_remote(path: Any) -> bool:
    """True for a remote UPath, or a URL string other than file://."""
    if isinstance(path, PurePath):
        return False  # pathlib paths, and UPath's own local ones
    if _is_upath(path):
        return True
    if isinstance(path, str):
        return "://" in path and not path.startswith("file://")
    return False


def as_path(value: Any, storage_options: dict[str, Any] | None = None) -> Path:
    """A local Path, or a UPath for a URL (with the storage options bound to it)."""
    if isinstance(value, PurePath):
        return Path(value)
    if _is_upath(value):
        return value
    if not isinstance(value, (str, os.PathLike)):
        raise UsageError(f"{value!r} is not a path or URL")
    text = os.fspath(value)
    if text.startswith("file://"):
        return Path(text[len("file://"):])
    if "://" in text:
        try:
            from upath import UPath
        except ImportError:
            raise UsageError(f"{text}: URLs need universal-pathlib and fsspec: pip install 'neuco-io[remote]'") \
                from None
        try:
            return UPath(text, **_with_timeouts(text, storage_options or {}))
        except (ValueError, ImportError) as exc:
            raise UsageError(f"{text}: {exc}") from None
    return Path(text)


def in_process_only(path: Any) -> bool:
    """memory:// files exist only in this process: worker processes would not see them."""
    return is_remote(path) and getattr(path, "protocol", "") == "memory"


def read_only(path: Any) -> bool:
    return is_remote(path) and getattr(path, "protocol", "") in READ_ONLY


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


def open_read(path: Path, *, sequential: bool = False) -> IO[bytes]:
    """A binary file for reading. On object stores, reads fetch blocks by range requests (never the whole
    object first); with `sequential` over http(s) the response is streamed, which also works with servers
    that ignore Range. Local paths open only when they are regular files (see `_open_regular`)."""
    try:
        if read_only(path):
            return path.fs.open(path.path, "rb", block_size=0) if sequential else _open_http_seekable(path)
        return path.open("rb") if is_remote(path) else _open_regular(path)
    except TimeoutError as exc:
        raise OSError(f"{path}: {error_text(exc)}") from exc
    except OSError:
        raise
    except Exception as exc:  # fsspec backends raise their own errors for missing buckets, auth...
        raise OSError(f"{path}: {type(exc).__name__}: {exc}") from exc


def file_kind(mode: int) -> str:
    """What a non-regular file is, for messages."""
    kinds = ((stat.S_ISDIR, "a directory"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket"),
             (stat.S_ISCHR, "a character device"), (stat.S_ISBLK, "a block device"))
    return next((name for test, name in kinds if test(mode)), "not a regular file")


def _open_regular(path: Path) -> IO[bytes]:
    """Open a local file only if it is a regular file: a FIFO or device named like a data file would
    block the reader forever (or never end). Opened non-blocking, so a FIFO cannot hang the open itself."""
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    try:
        mode = os.fstat(fd).st_mode
        if not stat.S_ISREG(mode):
            raise OSError(errno.EINVAL, f"not a regular file ({file_kind(mode)})", str(path))
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def sha256_file(path: Path) -> str:
    """The hex SHA-256 of a file, local or remote, read front to back in 4 MiB blocks."""
    digest = hashlib.sha256()
    with open_read(path, sequential=True) as fh:
        while block := fh.read(1 << 22):
            digest.update(block)
    return digest.hexdigest()


SPOOL_IN_MEMORY = 64 << 20


def _open_http_seekable(path: Path) -> IO[bytes]:
    """Random access over http(s): range requests when the server honours them; otherwise the file is
    streamed once into a spooled temporary file (memory up to 64 MiB, then disk), so readers that seek
    (Parquet) still work against simple servers."""
    fh = path.fs.open(path.path, "rb")
    try:
        size = fh.size or 0
        if size > 1:
            fh.seek(size - 1)  # a request that does not start at 0 shows whether ranges are honoured
            fh.read(1)
            fh.seek(0)
        return fh
    except ValueError as exc:
        if "range" not in str(exc).lower():
            raise
        fh.close()
    spool = tempfile.SpooledTemporaryFile(max_size=SPOOL_IN_MEMORY)  # noqa: SIM115 - returned open
    with path.fs.open(path.path, "rb", block_size=0) as stream:
        while block := stream.read(1 << 22):
            spool.write(block)
    spool.seek(0)
    return spool


@contextlib.contextmanager
def upload_atomic(final: Path) -> Iterator[Path]:
    """A local temporary file to write; uploaded to `final` (one PUT) when the block succeeds."""
    if read_only(final):
        raise UsageError(f"{final}: this storage is read-only")
    fd, name = tempfile.mkstemp(prefix=".neuco-", suffix=".partial")
    os.close(fd)
    temp = Path(name)
    try:
        yield temp
        final.fs.put_file(str(temp), final.path)
    finally:
        with contextlib.suppress(FileNotFoundError):
            temp.unlink()


def signature(path: Path) -> list:
    """What tells whether a file changed: size and modification time (or an object store's ETag)."""
    try:
        if not is_remote(path):
            st = path.stat()
            return [st.st_size, st.st_mtime_ns]
        info = path.fs.info(path.path)
        return [int(info.get("size") or 0), str(info.get("ETag") or info.get("LastModified") or info.get("mtime")
                                                or info.get("created") or "")]
    except OSError:
        return [-1, -1]


def file_size(path: Path) -> int | None:
    """Bytes of a file, or None when it does not exist."""
    try:
        if is_remote(path):
            return int(path.fs.info(path.path).get("size") or 0)
        return path.stat().st_size if path.is_file() else None
    except FileNotFoundError:
        return None


def size_or_zero(path: Path) -> int:
    """Bytes of a file for summaries: 0 when it is absent or cannot be asked about."""
    try:
        return file_size(path) or 0
    except OSError:
        return 0


class Folder:
    """An output folder, local or on an object store, with the writes neuco-io needs.

    `writing(name)` yields a local temporary file: locally it is fsynced and
    renamed into place, remotely it is uploaded in one PUT. Either way the
    file appears under its name only when complete.
    """

    def __init__(self, path: Any, storage_options: dict[str, Any] | None = None) -> None:
        self.path = as_path(path, storage_options)
        self.remote = is_remote(self.path)
        if read_only(self.path):
            raise UsageError(f"{self.path}: http(s) storage is read-only")

    def exists(self) -> bool:
        return self.path.exists()

    def is_dir(self) -> bool:
        return self.path.is_dir()

    def names(self) -> list[str]:
        """The entries directly in the folder (empty when it does not exist)."""
        if self.remote:
            try:
                return sorted(entry.rstrip("/").rpartition("/")[2] for entry in self.path.fs.ls(self.path.path,
                                                                                                 detail=False))
            except FileNotFoundError:
                return []
        return sorted(p.name for p in self.path.iterdir()) if self.path.is_dir() else []

    def has(self, name: str) -> bool:
        return file_size(self.path / name) is not None

    def size(self, name: str) -> int | None:
        return file_size(self.path / name)

    def read_text(self, name: str) -> str:
        return (self.path / name).read_text(encoding="utf-8")

    @contextlib.contextmanager
    def writing(self, name: str) -> Iterator[Path]:
        final = self.path / name
        if self.remote:
            with upload_atomic(final) as temp:
                yield temp
        else:
            from neuco_io.storage.atomic import atomic_path

            with atomic_path(final) as temp:
                yield temp

    def write_text(self, name: str, text: str) -> None:
        with self.writing(name) as temp:
            temp.write_text(text, encoding="utf-8")

    def remove(self, name: str) -> None:
        """Remove a file or a folder (recursively); nothing if absent."""
        target = self.path / name
        if self.remote:
            with contextlib.suppress(FileNotFoundError):
                target.fs.rm(target.path, recursive=True)
            return
        import shutil

        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
        else:
            with contextlib.suppress(FileNotFoundError):
                target.unlink()

    def mkdir(self) -> None:
        if not self.remote:
            self.path.mkdir(parents=True, exist_ok=True)
