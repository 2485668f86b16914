"""Real servers on 127.0.0.1 for the test suite, started as subprocesses and exposed as pytest fixtures.

Each module starts one kind of server and knows nothing of pytest; `fixtures.py` turns them into
session fixtures. Server programs come from `.venv-servers` (kept apart from QGIS's Python) and from
Debian packages (nginx, PostgreSQL/PostGIS).
"""
