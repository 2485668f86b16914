# Cubescope: one-command setup, run and test on Debian/Ubuntu.
# `make run` opens QGIS with the plugin on the offline demo cube; `make test` runs the suite headless.
# Every target installs what it needs first and is quick when everything is already there.

SHELL := /bin/bash
.DEFAULT_GOAL := help

SYS_PYTHON := /usr/bin/python3
VENV := .venv
SERVERS_VENV := .venv-servers
BUILD := build
PY := $(VENV)/bin/python
SITE := $(shell [ -x $(PY) ] && $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# The repository root is the plugin package `cubescope`; tests import it through this symlink.
PKG_ROOT := $(BUILD)/pkg
DEMO_DIR := $(BUILD)/cache/demo-cube
PROFILE_DIR := $(BUILD)/profile
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages: QGIS and the libraries compiled against its GDAL/PROJ/GEOS (never pip wheels of these),
# a virtual display, and the real servers the tests start (nginx, PostgreSQL with PostGIS).
APT_PACKAGES := qgis python3-qgis qgis-providers python3-rasterio python3-xarray python3-zarr \
	python3-pyproj python3-scipy proj-data python3-venv python3-pip libgeos-dev build-essential python3-dev \
	xvfb xauth nginx-light postgresql postgresql-15-postgis-3

export QT_QPA_PLATFORM ?= offscreen
export PYTHONDONTWRITEBYTECODE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup apt venv servers-venv run test bench lint package screenshots demo clean

help:
	@echo "make run          open QGIS with Cubescope on the offline demo cube"
	@echo "make test         run the whole test suite headless"
	@echo "make bench        run the benchmarks (tests/bench)"
	@echo "make package      build dist/cubescope-<version>.zip for 'Install from ZIP'"
	@echo "make screenshots  real QGIS windows under Xvfb saved as resources/screenshots/*.png"
	@echo "make lint         ruff"
	@echo "make setup        install everything the above need (apt + venvs); idempotent"

setup: apt venv servers-venv

apt:
	@missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	if [ -n "$$missing" ]; then \
		echo "Installing Debian packages: $$missing"; \
		$(SUDO) apt-get update -qq && \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing; \
	fi

venv: apt $(VENV)/.stamp $(PKG_ROOT)/cubescope

# The QGIS venv sees Debian's numpy/GDAL/rasterio (system site packages) and pins them so pip never
# replaces them; the pins come from the same code the plugin uses to install into a user's QGIS.
$(VENV)/.stamp: plugin/requirements.txt plugin/dependencies.py tests/requirements/dev.txt
	@[ -x $(PY) ] || $(SYS_PYTHON) -m venv --system-site-packages $(VENV)
	@# Debian's pyproj looks for PROJ's data under sys.prefix, which in a venv is the venv itself.
	@mkdir -p $(VENV)/share && ln -sfn /usr/share/proj $(VENV)/share/proj
	@mkdir -p $(BUILD)
	@$(PY) plugin/dependencies.py constraints > $(BUILD)/constraints.txt
	@# shapely is compiled against the system GEOS that QGIS itself loads: a wheel's bundled GEOS
	@# gets its symbols bound to QGIS's older one inside QGIS, and geometry operations go wrong.
	$(PY) -m pip install -q --no-binary shapely -c $(BUILD)/constraints.txt -r plugin/requirements.txt \
		-r tests/requirements/dev.txt 2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
	@[ "$$($(PY) -c 'import shapely; print(shapely.geos_version_string)')" = "$$(geos-config --version)" ] || \
		$(PY) -m pip install -q --force-reinstall --no-deps --no-binary shapely -c $(BUILD)/constraints.txt \
		"$$(grep -o '^shapely[^ ]*' plugin/requirements.txt)" 2> >(grep -v 'is ignored' >&2)
	@$(PY) -c 'import numpy, rasterio, osgeo.gdal_array; assert numpy.__file__.startswith("/usr/lib"), numpy.__file__'
	@touch $@

$(PKG_ROOT)/cubescope:
	@mkdir -p $(PKG_ROOT)
	@ln -sfn ../.. $@

servers-venv: apt $(SERVERS_VENV)/.stamp

$(SERVERS_VENV)/.stamp: tests/requirements/servers.txt
	@[ -x $(SERVERS_VENV)/bin/python ] || $(SYS_PYTHON) -m venv $(SERVERS_VENV)
	$(SERVERS_VENV)/bin/pip install -q -r tests/requirements/servers.txt \
		2> >(grep -v 'is ignored: it is neither a file nor a directory' >&2)
	@touch $@

demo: venv
	@$(PY) -m cubescope.plugin.demo $(DEMO_DIR)

PYENV := PYTHONPATH=$(abspath $(PKG_ROOT)):$(SITE) CUBESCOPE_DEMO_DIR=$(abspath $(DEMO_DIR))

run: setup
	@PYTHONPATH=$(abspath $(PKG_ROOT)) $(PY) -m cubescope.plugin.demo $(DEMO_DIR)
	@$(PY) tests/qgis_desktop.py profile $(PROFILE_DIR)
	@if [ -n "$$DISPLAY" ]; then launch=""; else launch="xvfb-run -a -s '-screen 0 1600x1000x24'"; \
		echo "No DISPLAY: running QGIS under Xvfb"; fi; \
	eval $$launch env -u QT_QPA_PLATFORM $(PYENV) qgis --profiles-path $(abspath $(PROFILE_DIR)) \
		--profile cubescope --nologo --noversioncheck

test: setup
	@$(PYENV) $(PY) -m pytest -c tests/pytest.ini --rootdir . tests $(PYTEST_ARGS) < /dev/null

bench: setup
	@$(PYENV) $(PY) -m pytest -c tests/pytest.ini --rootdir . tests/bench -s $(PYTEST_ARGS)

lint: venv
	@$(PY) -m ruff check --config tests/ruff.toml .

package: venv
	@$(PY) tests/tools/package.py dist

screenshots: setup
	@PYTHONPATH=$(abspath $(PKG_ROOT)) $(PY) -m cubescope.plugin.demo $(DEMO_DIR)
	@$(PY) tests/qgis_desktop.py profile $(PROFILE_DIR)
	@env -u QT_QPA_PLATFORM $(PYENV) xvfb-run -a -s '-screen 0 1600x1000x24' \
		qgis --profiles-path $(abspath $(PROFILE_DIR)) --profile cubescope --nologo --noversioncheck \
		--code tests/tools/screenshots.py
	@ls -1 resources/screenshots/*.png 2>/dev/null || true

clean:
	rm -rf $(BUILD) dist
