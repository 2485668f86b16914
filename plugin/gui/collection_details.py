"""A collection's description as safe HTML: every string escaped, nothing fetched, no scripts."""

from __future__ import annotations

import html

from ..stac.static_catalog import CollectionSummary


def collection_html(collection: CollectionSummary) -> str:
    """Rich text for a QTextBrowser; STAC descriptions are Markdown/HTML from strangers, so escape all."""
    e = html.escape
    rows = [f"<h3>{e(collection.title)}</h3>", f"<p><code>{e(collection.id)}</code></p>"]
    if collection.description:
        paragraphs = [p for p in collection.description.split("\n\n") if p.strip()]
        rows += [f"<p>{e(p)}</p>" for p in paragraphs]
    facts = []
    if collection.license:
        facts.append(("License", collection.license))
    if collection.bbox:
        west, south, east, north = collection.bbox
        facts.append(("Extent", f"{west:.4f}, {south:.4f} – {east:.4f}, {north:.4f} (lon/lat)"))
    start, end = collection.interval
    if start or end:
        facts.append(("Time", f"{(start or '…')[:10]} – {(end or 'open')[:10]}"))
    if facts:
        rows.append("<table>")
        rows += [f"<tr><td><b>{e(k)}</b>&nbsp;</td><td>{e(v)}</td></tr>" for k, v in facts]
        rows.append("</table>")
    return "\n".join(rows)
