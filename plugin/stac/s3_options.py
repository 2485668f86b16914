"""How to reach an S3-compatible object store (endpoint, region, addressing); its own module so that
the href, object-store and source modules can all use it without importing each other."""

from __future__ import annotations

import re
from dataclasses import dataclass


@dataclass(frozen=True)
class S3Options:
    """How to reach an S3-compatible object store; credentials come from the source's authcfg."""

    endpoint: str = ""
    """host or host:port without scheme; empty for AWS itself."""
    region: str = ""
    requester_pays: bool = False
    """The bucket bills the reader (GDAL's AWS_REQUEST_PAYER=requester)."""
    https: bool = True
    virtual_hosting: bool = True
    """bucket.host/key addressing; custom stores (MinIO, DIAS) usually need False (host/bucket/key)."""

    def __post_init__(self) -> None:
        if not isinstance(self.endpoint, str) or re.search(r"://|/|\s", self.endpoint):
            raise ValueError(f"s3.endpoint must be host or host:port without http:// or a path, got {self.endpoint!r}")
        if not isinstance(self.region, str) or re.search(r"\s", self.region):
            raise ValueError(f"s3.region must be a region name like 'eu-central-1', got {self.region!r}")
        for name in ("requester_pays", "https", "virtual_hosting"):
            if not isinstance(getattr(self, name), bool):
                raise ValueError(f"s3.{name} must be true or false, got {getattr(self, name)!r}")
