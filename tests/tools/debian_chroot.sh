#!/usr/bin/env bash
# Run a command on another Debian suite's QGIS: a debootstrap chroot with a copy of this project.
#
#   tests/tools/debian_chroot.sh SUITE make test      # e.g. SUITE=trixie (QGIS 3.40) or sid (QGIS 3.44)
#
# The chroot is kept under $CUBESCOPE_CHROOTS (default /var/lib/cubescope/chroots/SUITE), so a second
# run reuses its Debian packages and venvs; inside it the project's own `make` targets install
# everything else, exactly as on a fresh host. The project is copied (not bind-mounted) to
# /cubescope, so the chroot's venvs and build/ never meet the host's; ../shared, when present, is
# mounted read-only at /shared beside it. Needs root.
set -euo pipefail

SUITE=${1:?usage: debian_chroot.sh SUITE COMMAND...}
shift
[ $# -gt 0 ] || set -- make test
SRC=$(cd "$(dirname "$0")/../.." && pwd)
ROOT=${CUBESCOPE_CHROOTS:-/var/lib/cubescope/chroots}/$SUITE
SUDO=$([ "$(id -u)" = 0 ] || echo sudo)

# The archive the host itself uses (deb822 or one-line sources), so the chroot sees the same mirror.
mirror() {
	local url
	url=$(grep -h -m1 -oP '^URIs:\s*\K\S+(?=.*)' /etc/apt/sources.list.d/*.sources 2>/dev/null |
		grep -v security | head -n1 || true)
	[ -n "$url" ] || url=$(grep -h -m1 -oP '^deb\s+(\[[^]]*\]\s+)?\K\S+' /etc/apt/sources.list 2>/dev/null || true)
	echo "${url:-http://deb.debian.org/debian}"
}

need_host_tools() {
	local missing=()
	for tool in debootstrap rsync; do command -v "$tool" >/dev/null || missing+=("$tool"); done
	if [ ${#missing[@]} -gt 0 ]; then
		$SUDO apt-get update -qq
		DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
	fi
}

create() {
	local url
	url=$(mirror)
	echo "Creating the $SUITE chroot in $ROOT from $url (about a minute)"
	$SUDO rm -rf "$ROOT.partial"
	$SUDO mkdir -p "$(dirname "$ROOT")"
	$SUDO debootstrap --variant=minbase "$SUITE" "$ROOT.partial" "$url" >"$(dirname "$ROOT")/$SUITE-debootstrap.log" 2>&1 ||
		{ tail -n 20 "$(dirname "$ROOT")/$SUITE-debootstrap.log" >&2; exit 1; }
	# No package may start a service inside the chroot.
	printf '#!/bin/sh\nexit 101\n' | $SUDO tee "$ROOT.partial/usr/sbin/policy-rc.d" >/dev/null
	$SUDO chmod 755 "$ROOT.partial/usr/sbin/policy-rc.d"
	# sid's Release file can be past its Valid-Until date.
	echo 'Acquire::Check-Valid-Until "false";' | $SUDO tee "$ROOT.partial/etc/apt/apt.conf.d/99cubescope" >/dev/null
	$SUDO mv "$ROOT.partial" "$ROOT"
}

# pip inside the chroot needs what the host's pip has: its CA bundle and its configuration.
sync_host_config() {
	$SUDO mkdir -p "$ROOT/usr/local/share/ca-certificates" "$ROOT/etc/ssl/certs"
	if compgen -G "/usr/local/share/ca-certificates/*.crt" >/dev/null; then
		$SUDO cp /usr/local/share/ca-certificates/*.crt "$ROOT/usr/local/share/ca-certificates/"
	fi
	# The host's bundle already holds those certificates; the chroot's ca-certificates package,
	# once installed, rebuilds the same file from them.
	[ -f /etc/ssl/certs/ca-certificates.crt ] && $SUDO cp /etc/ssl/certs/ca-certificates.crt "$ROOT/etc/ssl/certs/"
	[ -f /etc/pip.conf ] && $SUDO cp /etc/pip.conf "$ROOT/etc/pip.conf"
	$SUDO cp /etc/resolv.conf "$ROOT/etc/resolv.conf" 2>/dev/null || true
}

MOUNTS=(proc dev dev/pts sys)
# ../shared (real-world test data) where the project has it: read-only at the same relative place.
SHARED=$(cd "$SRC/.." && pwd)/shared
mount_all() {
	for m in "${MOUNTS[@]}"; do
		mountpoint -q "$ROOT/$m" || $SUDO mount --bind "/$m" "$ROOT/$m"
	done
	if [ -d "$SHARED" ] && ! mountpoint -q "$ROOT/shared"; then
		$SUDO mkdir -p "$ROOT/shared"
		$SUDO mount --bind -o ro "$SHARED" "$ROOT/shared"
	fi
}
unmount_all() {
	mountpoint -q "$ROOT/shared" && $SUDO umount -l "$ROOT/shared" || true
	for ((i = ${#MOUNTS[@]} - 1; i >= 0; i--)); do
		mountpoint -q "$ROOT/${MOUNTS[i]}" && $SUDO umount -l "$ROOT/${MOUNTS[i]}" || true
	done
}

need_host_tools
# One run per chroot at a time: two would share its copy of the project, venvs and mounts.
$SUDO mkdir -p "$(dirname "$ROOT")"
exec 9>"$ROOT.lock"
flock 9
[ -x "$ROOT/usr/bin/apt-get" ] || create
sync_host_config
trap unmount_all EXIT
mount_all

# The project, without the host's venvs, build products or git history.
$SUDO mkdir -p "$ROOT/cubescope"
$SUDO rsync -a --delete --exclude /.git --exclude /.venv --exclude /.venv-servers --exclude /build \
	--exclude /dist --exclude __pycache__ --exclude .pytest_cache --exclude .ruff_cache "$SRC/" "$ROOT/cubescope/"

# What the chroot needs before the project's Makefile can install the rest.
if ! $SUDO chroot "$ROOT" dpkg-query -W -f='${Status}' make ca-certificates 2>/dev/null | grep -q 'ok installed.*ok installed'; then
	$SUDO chroot "$ROOT" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin bash -c \
		'apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends make ca-certificates >/dev/null'
fi

# A clean environment, plus the host's pip settings and what the tests take from the caller.
pass=(PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 TERM=dumb)
for var in $(compgen -e); do
	case $var in PIP_* | CI | PYTEST_ARGS | QT_QPA_PLATFORM) pass+=("$var=${!var}") ;; esac
done
echo "== $SUITE: $* =="
$SUDO chroot "$ROOT" /usr/bin/env -i "${pass[@]}" bash -c 'cd /cubescope && exec "$@"' chroot "$@"
