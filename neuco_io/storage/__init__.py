"""Where data lives: local folders, or fsspec URLs (s3://, gs://, az://, hf://, http(s)://, memory://).

`open_store` turns a path or URL into a `Store` (`LocalStore` or
`FsspecStore`) with declared capabilities; callers ask the store what it can
do instead of branching on local vs remote. Paths stay `pathlib.Path` locally
and become `upath.UPath` for URLs, which follows the same API.
"""

from neuco_io.storage.base import Entry, FileInfo, Store, Tree
from neuco_io.storage.files import file_size, glob_files, open_read, sha256_file, signature, size_or_zero
from neuco_io.storage.local import LocalStore, LocalTree, file_kind
from neuco_io.storage.options import DEFAULT_TIMEOUT, error_text, parse_storage_options
from neuco_io.storage.paths import AnyPath, as_path, is_remote, is_upath, open_store
from neuco_io.storage.remote import FsspecStore, RemoteTree

__all__ = ["DEFAULT_TIMEOUT", "AnyPath", "Entry", "FileInfo", "FsspecStore", "LocalStore", "LocalTree", "RemoteTree",
           "Store", "Tree", "as_path", "error_text", "file_kind", "file_size", "glob_files", "is_remote",
           "is_upath", "open_read", "open_store", "parse_storage_options", "sha256_file", "signature",
           "size_or_zero"]
