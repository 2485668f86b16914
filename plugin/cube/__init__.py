"""Reading pixels for layers and map clicks: COG stacks as VRTs, point reads of many COGs at once, Zarr cubes.

May import `stac` only. Pure: no QGIS imports.
"""
