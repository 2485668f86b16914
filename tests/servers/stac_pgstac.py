"""The full STAC API (stac-fastapi-pgstac) on a throwaway PostgreSQL/PostGIS cluster.

This is the server that really implements CQL2 `filter`, `query`, `sortby` and token paging, as the
public catalogs (Planetary Computer, Earth Search) do. The cluster lives in a temp dir, listens on a
random loopback port and is thrown away in teardown; fsync is off because nothing needs to survive.
"""

from __future__ import annotations

import os
import shutil
import signal
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .catalog import iter_collections, write_ndjson
from .ports import HOST, free_port, http_ok
from .process import ServerProcess, ServerStartError, run_checked, server_env, servers_bin, temp_dir

EXTENSIONS = "query,sort,fields,filter,pagination,collection_search"
DATABASE = "pgstac"
# initdb and postgres refuse to run as root.
PG_USER = "postgres"


def pg_bin(name: str) -> Path:
    """A PostgreSQL server program from Debian's versioned directory (newest version wins)."""
    found = sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), key=lambda p: int(p.parts[-3]))
    if not found:
        raise ServerStartError(f"no /usr/lib/postgresql/*/bin/{name}: install postgresql and postgis")
    return found[-1]


@dataclass
class PostgresCluster:
    """A running postmaster whose data and socket dirs are under `tmp`."""

    port: int
    process: ServerProcess
    tmp: Path

    def env(self) -> dict[str, str]:
        """libpq variables that pypgstac, psql and stac-fastapi-pgstac all read."""
        return server_env(PGHOST=HOST, PGPORT=str(self.port), PGUSER=PG_USER, PGPASSWORD=PG_USER,
                          PGDATABASE=DATABASE)

    def stop(self) -> None:
        # SIGQUIT is what `pg_ctl stop -m immediate` sends: no checkpoint for a cluster we delete.
        self.process.stop(signal.SIGQUIT)
        shutil.rmtree(self.tmp, ignore_errors=True)


def start_postgres() -> PostgresCluster:
    """initdb a fresh cluster and start postgres on a random loopback port with an empty `pgstac` db."""
    user = PG_USER if os.geteuid() == 0 else None
    with ExitStack() as cleanup:
        tmp = temp_dir("pg", cleanup)
        data, sockets = tmp / "data", tmp / "sockets"
        sockets.mkdir()
        if user:
            for path in (tmp, sockets):
                shutil.chown(path, user, user)
        run_checked([pg_bin("initdb"), "-D", data, "-U", PG_USER, "-A", "trust", "-E", "UTF8", "--locale=C",
                     "--no-sync"], "initdb", cwd=tmp, user=user)
        port = free_port()
        argv = [pg_bin("postgres"), "-D", data, "-p", port, "-h", HOST, "-k", sockets,
                "-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off"]
        process = ServerProcess.start("postgres", argv, tmp / "postgres.log", cwd=tmp, user=user)
        cluster = PostgresCluster(port, process, tmp)
        cleanup.callback(process.stop, signal.SIGQUIT)
        isready = [pg_bin("pg_isready"), "-q", "-h", HOST, "-p", str(port), "-U", PG_USER]
        process.wait_ready(lambda: _succeeds(isready))
        run_checked([pg_bin("psql"), "-X", "-q", "-d", "postgres", "-c", f"CREATE DATABASE {DATABASE}"],
                    "CREATE DATABASE", env=cluster.env())
        cleanup.pop_all()
    return cluster


def _succeeds(argv: list[str | Path]) -> bool:
    try:
        run_checked(argv, str(argv[0]), timeout=5)
    except ServerStartError:
        return False
    return True


# One interpreter for the schema migration and both loads: each `pypgstac` CLI call spends ~0.6 s
# importing, which is most of the load time for a catalog of demo size.
_LOAD_SCRIPT = """
import sys
from pypgstac.db import PgstacDB
from pypgstac.load import Loader, Methods
from pypgstac.migrate import Migrate
with PgstacDB() as db:
    Migrate(db).run_migration()
    loader = Loader(db)
    loader.load_collections(sys.argv[1], Methods.insert_ignore)
    loader.load_items(sys.argv[2], Methods.insert_ignore)
"""


def load_catalog(cluster: PostgresCluster, catalog: Path, root: Path, asset_base: str) -> None:
    """Create the pgstac schema (it installs postgis itself) and load the static catalog into it."""
    collections, items = [], []
    for collection, collection_items in iter_collections(catalog, root, asset_base):
        collections.append(collection)
        items.extend(collection_items)
    paths = [write_ndjson(records, cluster.tmp / f"{name}.ndjson")
             for name, records in (("collections", collections), ("items", items))]
    run_checked([servers_bin("python"), "-c", _LOAD_SCRIPT, *paths], "pypgstac migrate + load",
                env=cluster.env(), cwd=cluster.tmp)


@dataclass
class StacFullServer:
    """stac-fastapi-pgstac served by uvicorn: `url` is its landing page."""

    url: str
    api: ServerProcess
    cluster: PostgresCluster

    def stop(self) -> None:
        try:
            self.api.stop()
        finally:
            self.cluster.stop()


def start_stac_full(catalog: Path, root: Path, asset_base: str) -> StacFullServer:
    """Start PostgreSQL, load the catalog, then serve it with uvicorn on a random port."""
    with ExitStack() as cleanup:
        cluster = start_postgres()
        cleanup.callback(cluster.stop)
        load_catalog(cluster, catalog, root, asset_base)
        port = free_port()
        url = f"http://{HOST}:{port}"
        env = {**cluster.env(), "ENABLED_EXTENSIONS": EXTENSIONS, "DB_MIN_CONN_SIZE": "1"}
        argv = [servers_bin("uvicorn"), "stac_fastapi.pgstac.app:create_app", "--factory",
                "--host", HOST, "--port", str(port), "--log-level", "warning"]
        api = ServerProcess.start("stac-fastapi-pgstac", argv, cluster.tmp / "uvicorn.log", env=env,
                                  cwd=cluster.tmp, extra_logs=(cluster.tmp / "postgres.log",))
        cleanup.callback(api.stop)
        api.wait_ready(lambda: http_ok(f"{url}/collections"))
        cleanup.pop_all()
    return StacFullServer(url, api, cluster)
