"""The lazy side of a job: odc-stac datasets per period, the result as a dask array of blocks.

The result array is ``(bands, y, x)`` with one chunk per spatial block (all bands, all dates of the
block inside); :func:`block_tasks` cuts it into one small graph per block for the runner. Failures
while reading come back as :class:`ReadFailed` naming the file when odc-stac said which.
"""

from __future__ import annotations

import itertools
import logging
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import replace
from functools import partial
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import numpy as np

from ...stac.unreadable import StopAtFirstBadInputError
from ..ops import composite
from ..ops.blocks import BlockSpec, clear_counts, clear_dates, compute_block, reads_only_clear, spec_variables
from .cog_writer import WriteError
from .executor import BlockRunner, ByValue, Canceled, SchedulerUnreachable
from .load import gdal_items, load_lazy

if TYPE_CHECKING:
    from .grid import OutputGrid
    from .planning import PeriodPlan


class ReadFailed(RuntimeError):  # noqa: N818 (public API name)
    """Reading or computing the pixels failed (a broken or unreachable file); nothing was written."""


class _LoaderLog(logging.Handler):
    """Keeps odc-stac's error messages, which name the file that failed."""

    def __init__(self) -> None:
        super().__init__(logging.ERROR)
        self.messages: list[str] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.messages.append(record.getMessage())


@contextmanager
def reading_errors() -> Iterator[None]:
    """Turn a failure inside the block computations into ReadFailed naming the file when known."""
    handler = _LoaderLog()
    logger = logging.getLogger("odc.loader")
    logger.addHandler(handler)
    try:
        yield
    except (Canceled, WriteError, SchedulerUnreachable, MemoryError):
        raise
    except StopAtFirstBadInputError as error:
        raise ReadFailed(str(error)) from error
    except Exception as error:  # any reader error, from odc-stac, rasterio or GDAL
        detail = handler.messages[-1] if handler.messages else f"{type(error).__name__}: {error}"
        raise ReadFailed(f"Reading the data failed: {detail}") from error
    finally:
        logger.removeHandler(handler)


#: Whether a block leaves unread the dates its quality band shows no clear pixel for, when the result
#: cannot use them (:func:`.blocks.reads_only_clear`). The benchmark turns it off for its baseline.
SKIP_CLOUDY_DATES = True


def load_periods(periods: Sequence[PeriodPlan], grid: OutputGrid, chunk: int, resampling: str,
                 gdal_options: Mapping[str, str], signer: Callable[[str], str] | None = None, s3: Any = None,
                 credentials: Mapping[str, str] | None = None, *, auth_headers: Mapping[str, str] | None = None,
                 auth_scope: str = "") -> list[Any]:
    """One lazy odc-stac Dataset per period, on the common grid (asset hrefs signed when needed)."""
    datasets = []
    for period in periods:
        items, options = gdal_items(period.items, period.asset_keys, signer=signer, options=gdal_options, s3=s3,
                                    credentials=credentials, auth_headers=auth_headers, auth_scope=auth_scope)
        spec = period.spec
        only_where = None
        if SKIP_CLOUDY_DATES and spec.quality_var is not None and reads_only_clear(spec):
            only_where = (spec.quality_var, ByValue(partial(clear_dates, rule=spec.quality_rule)))
        datasets.append(load_lazy(items, period.slices, period.asset_keys, grid, chunk, resampling,
                                  nearest=period.nearest, float_bands=period.float_bands, gdal_options=options,
                                  only_where=only_where))
    return datasets


def reads_per_block(periods: Sequence[PeriodPlan]) -> int:
    """The time slices a block reads at most: every loaded variable of every date of every period
    (fewer when cloudy dates are left unread); the runner's progress within a block."""
    return sum(len(period.slices) * len(period.asset_keys) for period in periods)


def _stacks(spec: BlockSpec, dataset: Any, variables: tuple[str, ...]) -> list[Any]:
    return [arg for var in variables for arg in (dataset[var].data, "tyx")]


def result_array(periods: Sequence[PeriodPlan], datasets: Sequence[Any], subtract: bool = False) -> Any:
    """The (bands, y, x) result: each period's block function, or period B minus period A."""
    import dask.array as da

    results = []
    for period, dataset in zip(periods, datasets):
        spec = replace(period.spec, variables=spec_variables(period.spec))
        function = ByValue(partial(compute_block, spec=spec))
        results.append(da.blockwise(function, "byx", *_stacks(spec, dataset, spec.variables),
                                    new_axes={"b": len(spec.output_names)}, dtype="float32", concatenate=False,
                                    meta=np.empty((0, 0, 0), dtype=np.float32), name=f"cubescope-{uuid4().hex}"))
    return results[1] - results[0] if subtract else results[0]


def block_tasks(array: Any) -> list[tuple[tuple[int, int], Any]]:
    """((row, col), delayed block) for every spatial block of a (bands, y, x) dask array, in Z order."""
    delayed = array.to_delayed(optimize_graph=True)
    rows = np.cumsum((0, *array.chunks[1]))[:-1]
    cols = np.cumsum((0, *array.chunks[2]))[:-1]
    order = sorted(itertools.product(range(len(rows)), range(len(cols))), key=lambda ij: _morton(*ij))
    return [((int(rows[i]), int(cols[j])), delayed[0, i, j]) for i, j in order]


def _morton(row: int, col: int) -> int:
    """The block's place on a Z-order curve: blocks that follow each other lie close together, so the
    files a block reads are mostly still open from the one before (one tile's files fit in the
    reader's cache, a row of blocks across several tiles does not)."""
    key = 0
    for bit in range(16):
        key |= ((row >> bit) & 1) << (2 * bit + 1) | ((col >> bit) & 1) << (2 * bit)
    return key


def order_scenes(runner: BlockRunner, periods: Sequence[PeriodPlan], datasets: Sequence[Any],
                 is_canceled: Callable[[], bool], progress: Callable[[float], None]) -> None:
    """Give each period's spec its best-pixel order: clear pixels per scene over the whole grid."""
    import dask.array as da

    for number, (period, dataset) in enumerate(zip(periods, datasets)):
        variables = spec_variables(period.spec, for_counts=True)
        spec = replace(period.spec, variables=variables)
        counts = da.blockwise(ByValue(partial(clear_counts, spec=spec)), "tyx", *_stacks(spec, dataset, variables),
                              dtype="int64", concatenate=False, adjust_chunks={"y": 1, "x": 1},
                              meta=np.empty((0, 0, 0), dtype=np.int64), name=f"cubescope-counts-{uuid4().hex}")
        total = np.zeros(counts.shape[0], dtype=np.int64)

        def add(_key: Any, block: np.ndarray, total: np.ndarray = total) -> None:
            total[:] += block.reshape(block.shape[0], -1).sum(axis=1)

        with reading_errors():
            runner.run(block_tasks(counts), add, is_canceled,
                       lambda done, count, n=number: progress((n + done / count) / len(periods)),
                       len(period.slices) * len(variables))
        period.spec = replace(period.spec, order=tuple(int(i) for i in composite.scene_order(total)))
