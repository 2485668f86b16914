# Cubescope: one-command setup, run and test on Debian/Ubuntu.
# `make run` opens QGIS with the plugin on the offline demo cube; `make test` runs the suite headless.
# Every target installs what it needs first and is quick when everything is already there.

SHELL := /bin/bash
.DEFAULT_GOAL := help

SYS_PYTHON := /usr/bin/python3
VENV ?= .venv
SERVERS_VENV ?= .venv-servers
BUILD := build
PY := $(VENV)/bin/python
SITE = $(shell [ -x $(PY) ] && $(PY) -c 'import sysconfig; print(sysconfig.get_paths()["purelib"])')
# The repository root is the plugin package `cubescope`; tests import it through this symlink.
PKG_ROOT := $(BUILD)/pkg
DEMO_DIR := $(BUILD)/cache/demo-cube
PROFILE_DIR := $(BUILD)/profile
SUDO := $(shell [ "$$(id -u)" = 0 ] || echo sudo)

# Debian packages: QGIS and the libraries compiled against its GDAL/PROJ/GEOS (never pip wheels of these),
# a virtual display, and the real servers the tests start (nginx, PostgreSQL with PostGIS). The suite
# decides QGIS's origin and PostgreSQL's version: Debian 12 takes QGIS 3.40 from bookworm-backports;
# Debian 13 (trixie) and sid (the chroots of `make test-trixie` / `make test-sid`) take their own.
DEBIAN_SUITE := $(shell grep -qs sid /etc/debian_version && echo sid || (. /etc/os-release && echo $$VERSION_CODENAME))
PG_VERSION := $(or $(word 2,$(subst :, ,$(filter $(DEBIAN_SUITE):%,bookworm:15 trixie:17 sid:18))),15)
QGIS_MIN_VERSION := 3.40
QGIS_PACKAGES := qgis python3-qgis qgis-providers
APT_PACKAGES := $(QGIS_PACKAGES) python3-rasterio python3-pyproj python3-scipy python3-pandas \
	proj-data python3-venv python3-pip libgeos-dev build-essential python3-dev pkg-config python3-pyqt6 pyqt6-dev-tools \
	fonts-open-sans xvfb xauth nginx-light postgresql postgresql-$(PG_VERSION)-postgis-3
# Debian 13 and sid ship shapely 2 built against their GEOS; Debian 12's 1.8 is too old, so there the
# lock's shapely is compiled against the system GEOS instead (see the venv target).
ifneq ($(filter trixie sid,$(DEBIAN_SUITE)),)
APT_PACKAGES += python3-shapely
endif
BACKPORTS_SOURCES := /etc/apt/sources.list.d/cubescope-bookworm-backports.sources

export QT_QPA_PLATFORM ?= offscreen
export PYTHONDONTWRITEBYTECODE := 1
export PIP_DISABLE_PIP_VERSION_CHECK := 1

.PHONY: help setup apt venv servers-venv run test test-trixie test-sid test-all bench lint \
	lock try-newest package screenshots demo clean

help:
	@echo "make run          open QGIS with Cubescope on the offline demo cube"
	@echo "make test         run the whole test suite headless on this machine's QGIS"
	@echo "make test-trixie  the same inside a Debian 13 chroot (QGIS 3.40, Python 3.13, numpy 2.2)"
	@echo "make test-sid     the same inside a Debian sid chroot (QGIS 3.44, Python 3.14, numpy 2.4, zarr 3)"
	@echo "make bench        run the benchmarks (tests/bench)"
	@echo "make package      build dist/cubescope-<version>.zip for 'Install from ZIP'"
	@echo "make screenshots  real QGIS windows under Xvfb saved as resources/screenshots/*.png"
	@echo "make lint         ruff, the Qt6/QGIS 4 check, the layer contracts, import cycles, private names"
	@echo "make lock         re-resolve the pinned Python packages (plugin/locks, tests/requirements/*.lock.txt)"
	@echo "make try-newest   run the suite on the newest releases of everything (not in CI)"
	@echo "make setup        install everything the above need (apt + venvs); idempotent"

setup: apt venv servers-venv

apt:
	@if [ "$(DEBIAN_SUITE)" = bookworm ] && [ ! -f $(BACKPORTS_SOURCES) ]; then \
		url=$$(grep -h -m1 -oP '^URIs:\s*\K\S+' /etc/apt/sources.list.d/*.sources 2>/dev/null | grep -v security | head -n1); \
		[ -n "$$url" ] || url=$$(grep -h -m1 -oP '^deb\s+(\[[^]]*\]\s+)?\K\S+' /etc/apt/sources.list 2>/dev/null | head -n1); \
		printf 'Types: deb\nURIs: %s\nSuites: bookworm-backports\nComponents: main\nSigned-By: /usr/share/keyrings/debian-archive-keyring.gpg\n' \
			"$${url:-http://deb.debian.org/debian}" | $(SUDO) tee $(BACKPORTS_SOURCES) >/dev/null; \
		$(SUDO) rm -f /var/lib/apt/periodic/cubescope-updated; \
	fi
	@qgis_version=$$(dpkg-query -W -f='$${Version}' qgis 2>/dev/null || true); \
	missing=$$(for p in $(APT_PACKAGES); do \
		dpkg-query -W -f='$${Status}' $$p 2>/dev/null | grep -q 'ok installed' || echo $$p; done); \
	old_qgis=; dpkg --compare-versions "$${qgis_version:-0}" ge $(QGIS_MIN_VERSION) || old_qgis="$(QGIS_PACKAGES)"; \
	if [ -n "$$missing$$old_qgis" ]; then \
		echo "Installing Debian packages: $$missing $$old_qgis"; \
		$(SUDO) apt-get update -qq; \
		if [ -n "$$old_qgis" ] && [ "$(DEBIAN_SUITE)" = bookworm ]; then \
			DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends \
				-t bookworm-backports $(QGIS_PACKAGES) || exit 1; \
		fi; \
		DEBIAN_FRONTEND=noninteractive $(SUDO) apt-get install -y -qq --no-install-recommends $$missing $$old_qgis || exit 1; \
		qgis_version=$$(dpkg-query -W -f='$${Version}' qgis); \
		dpkg --compare-versions "$$qgis_version" ge $(QGIS_MIN_VERSION) || \
			{ echo "QGIS $$qgis_version is older than $(QGIS_MIN_VERSION)" >&2; exit 1; }; \
	fi

venv: apt $(VENV)/.stamp $(PKG_ROOT)/cubescope

# The Python/numpy generation of Debian's Python decides the lock (plugin/locks/GEN.txt and the test
# tools' tests/requirements/dev-GEN.lock.txt). Evaluated when used, after apt installed numpy.
GEN = $(shell $(SYS_PYTHON) -c 'import sys, numpy; print("py%d%d-numpy%s" % (*sys.version_info[:2], numpy.__version__.split(".")[0]))')
PYV = $(shell $(SYS_PYTHON) -c 'import sys; print("py%d%d" % sys.version_info[:2])')
LOCKS_ROOT ?= .
DEV_LOCK = $(LOCKS_ROOT)/tests/requirements/dev-$(GEN).lock.txt
SERVERS_LOCK = $(LOCKS_ROOT)/tests/requirements/servers-$(PYV).lock.txt

# The QGIS venv sees Debian's numpy/GDAL/rasterio (system site packages); the lock lists everything
# else at exact versions and never those (plugin/locks/GEN.system.txt), so pip cannot replace them.
# --no-deps: the lock is the whole resolution, and pip must not second-guess Debian's packages.
$(VENV)/.stamp: $(wildcard $(LOCKS_ROOT)/tests/requirements/dev-*.lock.txt)
	@[ -x $(PY) ] || $(SYS_PYTHON) -m venv --system-site-packages $(VENV)
	@# Debian's pyproj looks for PROJ's data under sys.prefix, which in a venv is the venv itself.
	@mkdir -p $(VENV)/share && ln -sfn /usr/share/proj $(VENV)/share/proj
	@[ -f $(DEV_LOCK) ] || { echo "No lock for $(GEN): $(DEV_LOCK) (make lock)" >&2; exit 1; }
	@# shapely, where the lock has it (Debian 12), is compiled against the system GEOS that QGIS itself
	@# loads: a wheel's bundled GEOS gets its symbols bound to QGIS's older one inside QGIS, and
	@# geometry operations go wrong.
	$(PY) -m pip install -q --no-deps --no-binary shapely -r $(DEV_LOCK) \
		2> >(grep -v 'is ignored' >&2)
	@if grep -q '^shapely==' $(DEV_LOCK) && [ "$$($(PY) -c 'import shapely; print(shapely.geos_version_string)')" != "$$(geos-config --version)" ]; then \
		$(PY) -m pip install -q --force-reinstall --no-deps --no-binary shapely \
		"$$(grep -o '^shapely==[^ ]*' $(DEV_LOCK))" 2> >(grep -v 'is ignored' >&2); fi
	@$(PY) -c 'import numpy, rasterio, osgeo.gdal_array; assert numpy.__file__.startswith("/usr/lib"), numpy.__file__'
	@touch $@

$(PKG_ROOT)/cubescope:
	@mkdir -p $(PKG_ROOT)
	@ln -sfn $(CURDIR) $@

servers-venv: apt $(SERVERS_VENV)/.stamp

$(SERVERS_VENV)/.stamp: $(wildcard $(LOCKS_ROOT)/tests/requirements/servers-*.lock.txt)
	@[ -x $(SERVERS_VENV)/bin/python ] || $(SYS_PYTHON) -m venv $(SERVERS_VENV)
	$(SERVERS_VENV)/bin/pip install -q -r $(SERVERS_LOCK) \
		2> >(grep -v 'is ignored' >&2)
	@touch $@

demo: venv
	@$(PY) -m cubescope.plugin.demo $(DEMO_DIR)

PYENV = PYTHONPATH=$(abspath $(PKG_ROOT)):$(SITE) CUBESCOPE_DEMO_DIR=$(abspath $(DEMO_DIR))

run: setup
	@PYTHONPATH=$(abspath $(PKG_ROOT)) $(PY) -m cubescope.plugin.demo $(DEMO_DIR)
	@$(PY) tests/qgis_desktop.py profile $(PROFILE_DIR)
	@if [ -n "$$DISPLAY" ]; then launch=""; else launch="xvfb-run -a -s '-screen 0 1600x1000x24'"; \
		echo "No DISPLAY: running QGIS under Xvfb"; fi; \
	eval $$launch env -u QT_QPA_PLATFORM $(PYENV) qgis --profiles-path $(abspath $(PROFILE_DIR)) \
		--profile cubescope --nologo --noversioncheck

test: setup
	@echo "QGIS $$(dpkg-query -W -f='$${Version}' qgis), $(GEN), Debian $(DEBIAN_SUITE)"
	@$(PYENV) $(PY) -m pytest -c tests/pytest.ini --rootdir . $(if $(filter tests/%,$(PYTEST_ARGS)),,tests) \
		$(PYTEST_ARGS) < /dev/null

# The same suite on the other Debian QGIS users run, each in a debootstrap chroot that keeps its
# packages and venvs between runs (tests/tools/debian_chroot.sh); inside, `make test` sets it up.
test-trixie test-sid: test-%:
	@tests/tools/debian_chroot.sh $* make test PYTEST_ARGS="$(PYTEST_ARGS)"

test-all: test test-trixie test-sid

bench: setup
	@$(PYENV) $(PY) -m pytest -c tests/pytest.ini --rootdir . tests/bench -s $(PYTEST_ARGS)

lint: venv
	@$(PY) -m ruff check --config tests/ruff.toml .
	@$(PY) tests/tools/qt6_check.py
	@PYTHONPATH=$(abspath $(PKG_ROOT)) $(VENV)/bin/lint-imports --no-logo --no-cache tests/importlinter.ini
	@PYTHONPATH=$(abspath $(PKG_ROOT)) $(PY) tests/tools/import_cycles.py
	@$(PY) tests/tools/private_names.py

# Re-resolves the locks, keeping every pin that still fits the requirements (uv prefers the versions
# already in the output file); delete a lock line, or run with UPGRADE=--upgrade, to move it.
lock: venv
	@UV=$(abspath $(VENV))/bin/uv tests/tools/lock.sh $(UPGRADE)

# Not in CI: the newest release of everything the locks pin, resolved into build/newest and tested in
# a venv of its own, so the next upstream break shows here before it reaches a user.
try-newest: apt
	@$(MAKE) --no-print-directory venv
	@rm -rf $(BUILD)/newest && UV=$(abspath $(VENV))/bin/uv OUT=$(BUILD)/newest tests/tools/lock.sh --upgrade
	@diff -u tests/requirements/dev-$(GEN).lock.txt $(BUILD)/newest/tests/requirements/dev-$(GEN).lock.txt | grep '^[-+][a-z]' || true
	@$(MAKE) --no-print-directory test VENV=$(BUILD)/venv-newest LOCKS_ROOT=$(BUILD)/newest

package: venv
	@$(PY) tests/tools/package.py dist

screenshots: setup
	@PYTHONPATH=$(abspath $(PKG_ROOT)) $(PY) -m cubescope.plugin.demo $(DEMO_DIR)
	@$(PY) tests/qgis_desktop.py profile $(PROFILE_DIR)
	@for script in screenshots screenshot_bdc_services; do \
		env -u QT_QPA_PLATFORM $(PYENV) PYTHONPATH=$(abspath $(PKG_ROOT)):$(SITE):$(abspath tests):$(abspath tests/tools) \
		xvfb-run -a -s '-screen 0 1600x1000x24' \
		qgis --profiles-path $(abspath $(PROFILE_DIR)) --profile cubescope --nologo --noversioncheck \
		--code tests/tools/$$script.py || exit 1; done
	@ls -1 resources/screenshots/*.png 2>/dev/null || true

clean:
	rm -rf $(BUILD) dist
