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

from neuco_io.storage.files import file_size, open_read, sha256_file, signature, size_or_zero
from neuco_io.storage.folder import Folder
from neuco_io.storage.local import file_kind
from neuco_io.storage.options import error_text, parse_storage_options
from neuco_io.storage.paths import AnyPath, as_path, in_process_only, is_remote, read_only
from neuco_io.storage.remote import upload_atomic

__all__ = ["AnyPath", "Folder", "as_path", "error_text", "file_kind", "file_size", "in_process_only", "is_remote",
           "open_read",
           "parse_storage_options", "read_only", "sha256_file", "signature", "size_or_zero", "upload_atomic"]
