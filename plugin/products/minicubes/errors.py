"""The one error every minicube module raises.

It lives alone so that the request types (:mod:`.minicube`), the time aggregation
(:mod:`.minicube_time`), the Zarr-source regridding (:mod:`.zarr_regrid`) and the writing
(:mod:`.minicube_store`) can all raise it without importing one another.
"""

from __future__ import annotations


class MinicubeError(ValueError):
    """A minicube that cannot be made as asked; the message says what to change."""
