"""Streaming datasets over cubes and converted shards, PyTorch-ready (torch optional).

    from neuco_io.loader import CubeDataset, ShardDataset
    ds = ShardDataset("shards/", modalities=["s2l2a", "s1"], seasons=2, shuffle=1000, return_id=True)
    loader = torch.utils.data.DataLoader(ds, batch_size=32, num_workers=4)
"""

from neuco_io.loader.assemble import SampleOptions
from neuco_io.loader.datasets import CubeDataset, DoubleShiftWarning, ShardDataset
from neuco_io.loader.indexed import IndexedShardDataset
from neuco_io.loader.mixing import MixedDataset

__all__ = ["CubeDataset", "DoubleShiftWarning", "IndexedShardDataset", "MixedDataset", "SampleOptions",
           "ShardDataset"]
