"""An S3 endpoint (moto) holding a copy of the demo cube, for the `/vsis3/` and `s3://` code paths.

Only what tests read is uploaded (the catalog JSON, a few Sentinel-2 items per tile with their COGs,
the Zarr stores) so the server is ready in a couple of seconds.
"""

from __future__ import annotations

import shutil
from collections import defaultdict
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

from .catalog import link_paths, read_json
from .ports import HOST, free_port, http_ok
from .process import ServerProcess, run_checked, server_env, servers_bin, temp_dir

UPLOADER = Path(__file__).resolve().with_name("s3_upload.py")


@dataclass
class S3Server:
    """A running moto S3 server with `bucket` holding `keys` (paths relative to the demo root)."""

    endpoint: str
    bucket: str
    keys: list[str]
    process: ServerProcess
    tmp: Path
    access_key: str = "cubescope-test"
    secret_key: str = "cubescope-secret"
    region: str = "us-east-1"

    @property
    def url(self) -> str:
        return f"http://{self.endpoint}"

    def gdal_config(self) -> dict[str, str]:
        """GDAL config options that make `/vsis3/<bucket>/<key>` read from this server."""
        return {
            "AWS_S3_ENDPOINT": self.endpoint,
            "AWS_HTTPS": "NO",
            "AWS_VIRTUAL_HOSTING": "FALSE",
            "AWS_ACCESS_KEY_ID": self.access_key,
            "AWS_SECRET_ACCESS_KEY": self.secret_key,
            "AWS_REGION": self.region,
            "AWS_NO_SIGN_REQUEST": "NO",
            # Otherwise GDAL writes .aux.xml statistics files into the bucket.
            "GDAL_PAM_ENABLED": "NO",
            "GDAL_DISABLE_READDIR_ON_OPEN": "EMPTY_DIR",
        }

    def aws_env(self) -> dict[str, str]:
        """The same credentials as environment variables, for boto3 and the server."""
        return {"AWS_ACCESS_KEY_ID": self.access_key, "AWS_SECRET_ACCESS_KEY": self.secret_key,
                "AWS_DEFAULT_REGION": self.region}

    def stop(self) -> None:
        self.process.stop()
        shutil.rmtree(self.tmp, ignore_errors=True)


def demo_subset(root: Path, catalog: Path, collection_id: str = "demo-s2-l2a", per_tile: int = 4) -> list[Path]:
    """Catalog and collection JSON, the first `per_tile` items of each tile with their local assets,
    and every file of the Zarr stores under `root/zarr`."""
    files = [catalog]
    for collection_path in link_paths(read_json(catalog), catalog, "child"):
        files.append(collection_path)
        collection = read_json(collection_path)
        if collection["id"] != collection_id:
            continue
        by_tile: dict[str, list[tuple[str, Path, dict]]] = defaultdict(list)
        for item_path in link_paths(collection, collection_path, "item"):
            item = read_json(item_path)
            by_tile[item["properties"].get("grid:code", "")].append((item["properties"]["datetime"], item_path, item))
        for entries in by_tile.values():
            for _, item_path, item in sorted(entries, key=lambda e: e[0])[:per_tile]:
                files.append(item_path)
                files += [(item_path.parent / a["href"]).resolve() for a in item["assets"].values()
                          if "://" not in a["href"]]
    files += sorted(p for p in (root / "zarr").rglob("*") if p.is_file())
    return files


def start_s3(root: Path, files: list[Path], bucket: str = "cubescope-demo") -> S3Server:
    """Start moto on a random port, create `bucket` and upload `files` under their paths below `root`."""
    with ExitStack() as cleanup:
        tmp = temp_dir("s3", cleanup)
        port = free_port()
        keys = [f.resolve().relative_to(root.resolve()).as_posix() for f in files]
        argv = [servers_bin("moto_server"), "-H", HOST, "-p", str(port)]
        process = ServerProcess.start("moto_server", argv, tmp / "moto.log", env=server_env(), cwd=tmp)
        cleanup.callback(process.stop)
        server = S3Server(f"{HOST}:{port}", bucket, keys, process, tmp)
        process.wait_ready(lambda: http_ok(f"{server.url}/"))
        list_file = tmp / "keys.txt"
        list_file.write_text("\n".join(keys) + "\n")
        run_checked([servers_bin("python"), UPLOADER, server.url, bucket, root.resolve(), list_file],
                    "uploading the demo cube to moto", env=server_env(**server.aws_env()), cwd=tmp)
        cleanup.pop_all()
    return server
