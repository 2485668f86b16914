"""rustac's in-memory STAC API: core item search in ~0.1 s, for tests that need a real API quickly.

It answers bbox/datetime/collections/ids/intersects/limit with next-link paging, and silently returns
nothing for `filter`/`query`/`sortby`: tests of those use the full pgstac API instead.
"""

from __future__ import annotations

import json
import shutil
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .catalog import iter_collections, write_ndjson
from .ports import HOST, free_port, http_ok
from .process import ServerProcess, server_env, servers_bin, temp_dir


@dataclass
class StacLightServer:
    """A running rustac API: `url` is its landing page."""

    url: str
    process: ServerProcess
    tmp: Path

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def start_stac_light(catalog: Path, root: Path, asset_base: str) -> StacLightServer:
    """Serve every collection of the static `catalog`, asset hrefs rebased from `root` onto `asset_base`."""
    with ExitStack() as cleanup:
        tmp = temp_dir("rustac", cleanup)
        hrefs: list[Path] = []
        items = []
        for collection, collection_items in iter_collections(catalog, root, asset_base):
            path = tmp / f"{collection['id']}.json"
            path.write_text(json.dumps(collection))
            hrefs.append(path)
            items.extend(collection_items)
        # Collections first: items are attached to collections that already exist.
        hrefs.append(write_ndjson(items, tmp / "items.ndjson"))
        port = free_port()
        url = f"http://{HOST}:{port}"
        argv = [servers_bin("rustac"), "serve", "-a", f"{HOST}:{port}", *hrefs]
        process = ServerProcess.start("rustac serve", argv, tmp / "rustac.log", env=server_env(), cwd=tmp)
        cleanup.callback(process.stop)
        process.wait_ready(lambda: http_ok(f"{url}/collections"))
        cleanup.pop_all()
    return StacLightServer(url, process, tmp)
