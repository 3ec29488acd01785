"""One data cube (`.zarr.zip`): zip members, Zarr v2 metadata, the reader, the writer, and raster sources.

`members` confines and bounds what is read from the zip, `zarrv2` parses and checks the metadata,
`reader` decodes arrays and selections (`Cube`, `open_cube`), `times` decodes CF times, `passthrough`
hands the converter a sample's stored chunks, `view` is the xarray view through zarr, `pool` keeps the
cubes convert, verify and the loader have open, `writer` writes cubes the way the original stack did,
`rasters` reads GeoTIFF and array sources for `task import`.
"""

from neuco_io.cube.reader import ArrayInfo, Cube, CubeInfo, open_cube, read_cube_info
from neuco_io.cube.writer import CubeWriter, write_cube

__all__ = ["ArrayInfo", "Cube", "CubeInfo", "CubeWriter", "open_cube", "read_cube_info", "write_cube"]
