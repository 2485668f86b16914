"""Create a bucket and upload files to it; run by `s3.py` with `.venv-servers/bin/python`.

boto3 lives only in the servers' venv, so this is a script rather than a function of the test process.
Usage: s3_upload.py ENDPOINT_URL BUCKET ROOT LIST_FILE, where LIST_FILE holds one path per line,
relative to ROOT, which is also the object key. Credentials come from AWS_* environment variables.
"""

from __future__ import annotations

import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import boto3


def main(endpoint_url: str, bucket: str, root: Path, list_file: Path) -> None:
    s3 = boto3.client("s3", endpoint_url=endpoint_url)
    s3.create_bucket(Bucket=bucket)
    keys = list_file.read_text().split()
    with ThreadPoolExecutor(max_workers=16) as pool:
        # list() re-raises the first failed upload.
        list(pool.map(lambda key: s3.upload_file(str(root / key), bucket, key), keys))
    listed = sum(page.get("KeyCount", 0) for page in s3.get_paginator("list_objects_v2").paginate(Bucket=bucket))
    if listed != len(keys):
        sys.exit(f"uploaded {len(keys)} files but the bucket lists {listed} objects")


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))
