"""The Brazil Data Cube's two point services as real local HTTP servers, serving the demo cube.

BDC's own servers need their PostgreSQL catalog (bdc-catalog) and, for WLTS, a GeoServer; these
implement the published specifications instead, on a standard-library ThreadingHTTPServer:

- WTSS v2 (brazil-data-cube/wtss-spec): ``GET /`` lists the coverages as ``links`` (``rel: data``),
  ``GET /{coverage}`` describes one (``timeline``, ``bands``, ``extent``...), and
  ``GET|POST /{coverage}/timeseries`` answers ``results[0].timeseries`` (``timeline``, ``values``) for a
  GeoJSON point. One coverage, ``demo-s2-l2a``: the demo Sentinel-2 COGs, each value read with GDAL
  from the item that covers the point on that date (the first tile in name order when both do and it
  has data there), unscaled unless ``applyAttributeScale`` is true.
- WLTS (brazil-data-cube/wlts-spec): ``/list_collections``, ``/describe_collection?collection_id=``
  and ``/trajectory?collections=&longitude=&latitude=``: the demo land-cover map
  (``demo-landcover``, 2023), each pixel's WorldCover code given as its class title.

Both record every request (``requests``), so tests can check what a client sent.
"""

from __future__ import annotations

import json
import math
import threading
from dataclasses import dataclass, field
from datetime import datetime, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

from osgeo import gdal, osr

from .ports import HOST

S2 = "demo-s2-l2a"
LANDCOVER = "demo-landcover"
WTSS_VERSION = "2.0.0"
WLTS_VERSION = "0.8.0"


class ApiError(Exception):
    def __init__(self, status: int, description: str) -> None:
        super().__init__(description)
        self.status, self.description = status, description


@dataclass
class _Item:
    id: str
    when: datetime
    assets: dict[str, dict]
    folder: Path


def _items(collection_dir: Path) -> list[_Item]:
    found = []
    for path in sorted(collection_dir.glob("*/*.json")):
        doc = json.loads(path.read_text())
        props = doc["properties"]
        text = props.get("datetime") or props.get("start_datetime")
        when = datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(timezone.utc)
        found.append(_Item(doc["id"], when, doc["assets"], path.parent))
    return found


_OPEN: dict[str, Any] = {}
_LOCK = threading.Lock()


def read_raw(path: Path, lon: float, lat: float) -> float | None:
    """The stored value of the pixel of ``path`` containing (lon, lat); None outside the raster."""
    with _LOCK:  # one GDAL dataset per file, read by one request at a time
        dataset = _OPEN.get(str(path))
        if dataset is None:
            dataset = _OPEN[str(path)] = gdal.Open(str(path))
        target = osr.SpatialReference(wkt=dataset.GetProjection())
        source = osr.SpatialReference()
        source.ImportFromEPSG(4326)
        for srs in (source, target):
            srs.SetAxisMappingStrategy(osr.OAMS_TRADITIONAL_GIS_ORDER)
        x, y = osr.CoordinateTransformation(source, target).TransformPoint(lon, lat)[:2]
        inverse = gdal.InvGeoTransform(dataset.GetGeoTransform())
        col = math.floor(inverse[0] + inverse[1] * x + inverse[2] * y)
        row = math.floor(inverse[3] + inverse[4] * x + inverse[5] * y)
        if not (0 <= col < dataset.RasterXSize and 0 <= row < dataset.RasterYSize):
            return None
        return float(dataset.GetRasterBand(1).ReadAsArray(col, row, 1, 1)[0][0])


def _iso(when: datetime) -> str:
    return when.astimezone(timezone.utc).isoformat().replace("+00:00", "Z")


def _extent(collection: dict) -> dict:
    west, south, east, north = collection["extent"]["spatial"]["bbox"][0]
    return {"type": "Polygon", "coordinates": [[[west, south], [east, south], [east, north], [west, north],
                                                 [west, south]]]}


class _Service:
    """Routes of one server; `answer` returns (status, JSON document)."""

    def __init__(self) -> None:
        self.url = ""
        self.requests: list[tuple[str, str, dict, Any]] = []

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        raise NotImplementedError


class WtssService(_Service):
    def __init__(self, stac_root: Path) -> None:
        super().__init__()
        self.collection = json.loads((stac_root / S2 / "collection.json").read_text())
        self.items = _items(stac_root / S2)
        self.dates = sorted({item.when for item in self.items})
        sample = self.items[0].assets
        self.bands = []
        for key, asset in sample.items():
            raster = (asset.get("raster:bands") or [{}])[0]
            if "data" in (asset.get("roles") or []) or "nodata" in raster:
                eo = (asset.get("eo:bands") or [{}])[0]
                band = {"name": key, "common_name": eo.get("common_name", ""), "scale": raster.get("scale", 1),
                        "nodata": raster.get("nodata"), "data_type": raster.get("data_type", ""),
                        "resolution_x": raster.get("spatial_resolution"),
                        "resolution_y": raster.get("spatial_resolution"), "min_value": 0,
                        "max_value": 10000 if raster.get("scale") else 255}
                if raster.get("offset"):
                    band["offset"] = raster["offset"]  # as STAC raster:bands write it (see wtss_reader)
                self.bands.append({k: v for k, v in band.items() if v is not None})
        self.band_names = [b["name"] for b in self.bands]

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        parts = [p for p in path.split("/") if p]
        if not parts:
            return {"wtss_version": WTSS_VERSION, "links": [
                {"rel": "self", "href": f"{self.url}/", "title": "Web Time Series Service"},
                {"rel": "data", "href": f"{self.url}/{S2}", "title": self.collection["title"]}]}
        if parts[0] != S2:
            raise ApiError(404, f"Coverage {parts[0]} not found")
        if len(parts) == 1:
            return self.describe()
        if len(parts) == 2 and parts[1] == "timeseries":
            params = body if method == "POST" else self._from_query(query)
            return self.timeseries(params if isinstance(params, dict) else {})
        raise ApiError(404, f"No such resource {path}")

    def describe(self) -> dict:
        return {"name": S2, "version": 1, "fullname": S2, "title": self.collection["title"],
                "description": self.collection["description"], "timeline": [_iso(d) for d in self.dates],
                "bands": self.bands, "extent": _extent(self.collection), "bdc:crs": "EPSG:32634",
                "grs_name": "MGRS", "raster_size": {"x": 0, "y": 0}}

    @staticmethod
    def _from_query(query: dict[str, str]) -> dict:
        params: dict[str, Any] = dict(query)
        if "attributes" in params:
            params["attributes"] = [a for a in params["attributes"].split(",") if a]
        if "geom" in params:
            try:
                params["geom"] = json.loads(params["geom"])
            except ValueError:
                raise ApiError(400, "geom must be a GeoJSON geometry") from None
        params["applyAttributeScale"] = str(params.get("applyAttributeScale", "false")).lower() == "true"
        return params

    def timeseries(self, params: dict) -> dict:
        geom, attributes = params.get("geom"), params.get("attributes")
        if not isinstance(geom, dict) or geom.get("type") != "Point":
            raise ApiError(400, "geom must be a GeoJSON Point")
        if not isinstance(attributes, list) or not attributes:
            raise ApiError(400, "attributes are required")
        unknown = [a for a in attributes if a not in self.band_names]
        if unknown:
            raise ApiError(400, f"Attributes {', '.join(unknown)} not in coverage {S2}")
        lon, lat = (float(v) for v in geom["coordinates"][:2])
        start = self._time(params.get("start_datetime"), self.dates[0])
        end = self._time(params.get("end_datetime"), self.dates[-1])
        west, south, east, north = self.collection["extent"]["spatial"]["bbox"][0]
        if not (west <= lon <= east and south <= lat <= north):
            raise ApiError(400, f"Point ({lon}, {lat}) is outside coverage {S2}")
        scale = bool(params.get("applyAttributeScale"))
        dates = [d for d in self.dates if start <= d <= end]
        values: dict[str, list] = {a: [] for a in attributes}
        for when in dates:
            for name in attributes:
                values[name].append(self._value(when, name, lon, lat, scale))
        return {"results": [{"pixel_center": {"type": "Point", "coordinates": [lon, lat]},
                             "timeseries": {"timeline": [_iso(d) for d in dates], "values": values}}],
                "query": {"geom": geom, "attributes": attributes, "start_datetime": _iso(start),
                          "end_datetime": _iso(end), "applyAttributeScale": scale,
                          "pixelCollisionType": "center"}}

    @staticmethod
    def _time(text: Any, default: datetime) -> datetime:
        if not text:
            return default
        try:
            when = datetime.fromisoformat(str(text).replace("Z", "+00:00"))
        except ValueError:
            raise ApiError(400, f"{text} is not a datetime") from None
        return when.replace(tzinfo=timezone.utc) if when.tzinfo is None else when

    def _value(self, when: datetime, name: str, lon: float, lat: float, scale: bool) -> float | None:
        band = next(b for b in self.bands if b["name"] == name)
        nodata = band.get("nodata")
        found = None
        for item in self.items:
            if item.when != when or name not in item.assets:
                continue
            raw = read_raw(item.folder / item.assets[name]["href"], lon, lat)
            if raw is None:
                continue
            found = raw
            if raw != nodata:
                break
        if found is None:
            found = nodata
        if found is None or not scale or found == nodata:
            return found if found is None else (int(found) if float(found).is_integer() else found)
        return found * band.get("scale", 1) + band.get("offset", 0)


class WltsService(_Service):
    def __init__(self, stac_root: Path) -> None:
        super().__init__()
        self.collection = json.loads((stac_root / LANDCOVER / "collection.json").read_text())
        self.items = _items(stac_root / LANDCOVER)
        classes = self.collection["item_assets"]["data"]["classification:classes"]
        self.titles = {c["value"]: c["description"] for c in classes}

    def answer(self, method: str, path: str, query: dict[str, str], body: Any) -> Any:
        name = path.strip("/")
        if name == "":
            return {"wlts_version": WLTS_VERSION}
        if name == "list_collections":
            return {"collections": [LANDCOVER]}
        if name == "describe_collection":
            if query.get("collection_id") != LANDCOVER:
                raise ApiError(404, f"Collection {query.get('collection_id')} not found!")
            return self.describe()
        if name == "trajectory":
            return self.trajectory(query)
        raise ApiError(404, f"No such resource {path}")

    def describe(self) -> dict:
        start, end = self.collection["extent"]["temporal"]["interval"][0]
        west, south, east, north = self.collection["extent"]["spatial"]["bbox"][0]
        return {"name": LANDCOVER, "description": self.collection["description"], "detail": "",
                "collection_type": "Image", "resolution_unit": {"unit": "Y", "value": 1},
                "period": {"start_date": start[:10], "end_date": end[:10]},
                "classification_system": {"classification_system_id": "worldcover",
                                          "classification_system_name": "ESA WorldCover",
                                          "classification_system_version": "1"},
                "spatial_extent": {"xmin": west, "xmax": east, "ymin": south, "ymax": north}}

    def trajectory(self, query: dict[str, str]) -> dict:
        try:
            lon, lat = float(query["longitude"]), float(query["latitude"])
        except (KeyError, ValueError):
            raise ApiError(400, "longitude and latitude are required numbers") from None
        collections = [c for c in query.get("collections", "").split(",") if c]
        if not collections:
            raise ApiError(400, "collections is required")
        for name in collections:
            if name != LANDCOVER:
                raise ApiError(404, f"Collection {name} not found!")
        start, end = query.get("start_date", ""), query.get("end_date", "")
        steps = []
        for item in self.items:
            year = str(item.when.year)
            if (start and year < start[:4]) or (end and year > end[:4]):
                continue
            raw = read_raw(item.folder / item.assets["data"]["href"], lon, lat)
            if raw is None or int(raw) not in self.titles:
                continue
            steps.append({"class": self.titles[int(raw)], "collection": LANDCOVER, "date": year})
            break  # the tiles are one map: the first that covers the point has its class
        return {"query": {"collections": collections, "longitude": lon, "latitude": lat,
                          "start_date": start, "end_date": end},
                "result": {"trajectory": sorted(steps, key=lambda s: s["date"])}}


@dataclass
class BdcServer:
    """One running service: ``url`` is its root (no trailing slash)."""

    service: _Service
    httpd: ThreadingHTTPServer
    thread: threading.Thread
    url: str = ""
    requests: list = field(default_factory=list)

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()
        self.thread.join()


def _handler(service: _Service) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _reply(self, method: str) -> None:
            parts = urlsplit(self.path)
            query = {k: v[-1] for k, v in parse_qs(parts.query).items()}
            length = int(self.headers.get("Content-Length") or 0)
            raw = self.rfile.read(length) if length else b""
            status, document = 200, None
            try:
                body = json.loads(raw) if raw else None
            except ValueError:
                status, document = 400, {"code": "400", "description": "the body is not JSON"}
            if document is None:
                service.requests.append((method, parts.path, query, body))
                try:
                    document = service.answer(method, parts.path, query, body)
                except ApiError as error:
                    status, document = error.status, {"code": str(error.status), "description": error.description}
            payload = json.dumps(document).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(payload)))
            self.end_headers()
            self.wfile.write(payload)

        def do_GET(self) -> None:
            self._reply("GET")

        def do_POST(self) -> None:
            self._reply("POST")

    return Handler


def _serve(service: _Service, name: str) -> BdcServer:
    httpd = ThreadingHTTPServer((HOST, 0), _handler(service))
    httpd.daemon_threads = True
    service.url = f"http://{HOST}:{httpd.server_address[1]}"
    thread = threading.Thread(target=httpd.serve_forever, name=name, daemon=True)
    thread.start()
    return BdcServer(service, httpd, thread, service.url, service.requests)


def start_wtss(stac_root: Path) -> BdcServer:
    """WTSS v2 on the demo cube's Sentinel-2 COGs (``stac_root``: the demo cube's ``stac`` folder)."""
    return _serve(WtssService(stac_root), "wtss-server")


def start_wlts(stac_root: Path) -> BdcServer:
    """WLTS on the demo cube's land-cover map."""
    return _serve(WltsService(stac_root), "wlts-server")


