"""Reading pixels: COG stacks as VRTs, Zarr cubes, GDAL options per thread. Pure: no QGIS imports."""
