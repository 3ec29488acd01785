"""The shard format: records and member codecs, tar and Parquet shards, and the manifest that indexes them.

Nothing here imports the converters or the loader: they are built on it.
"""

from neuco_io.shards.codecs import decode_member, decode_sample, webdataset_decoder
from neuco_io.shards.record import FORMAT_VERSION

__all__ = ["FORMAT_VERSION", "decode_member", "decode_sample", "webdataset_decoder"]
