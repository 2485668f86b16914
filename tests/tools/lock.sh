#!/usr/bin/env bash
# `make lock`: every Python package the venvs install, pinned for each Python/numpy generation we test.
#
#   plugin/locks/GEN.txt                  runtime requirements (also the plugin's own installer's pins)
#   tests/requirements/dev-GEN.lock.txt   runtime + test tools, resolved within the runtime lock
#   tests/requirements/servers-pyXY.lock.txt   the test servers' venv (no system packages)
#
# GEN.system.txt names what Debian provides for that generation (compiled against its GDAL/PROJ/GEOS):
# the resolver takes those versions as given and the locks never list them, so pip never replaces them.
# With --upgrade (`make try-newest`) the locks are re-resolved to the newest releases into OUT instead.
set -euo pipefail
cd "$(dirname "$0")/../.."
UV=${UV:?path to uv}
OUT=${OUT:-.}
upgrade=()
[ "${1:-}" = "--upgrade" ] && upgrade=(--upgrade)

declare -A PYTHON=([py311-numpy1]=3.11 [py313-numpy2]=3.13 [py314-numpy2]=3.14)
compile() { "$UV" pip compile --quiet --python-platform x86_64-unknown-linux-gnu --custom-compile-command "make lock" \
	"${upgrade[@]}" "$@"; }

for gen in "${!PYTHON[@]}"; do
	version=${PYTHON[$gen]}
	system=plugin/locks/$gen.system.txt
	no_emit=()
	for name in $(grep -v '^#' "$system" | cut -d= -f1); do no_emit+=(--no-emit-package "$name"); done
	mkdir -p "$OUT/plugin/locks" "$OUT/tests/requirements"
	compile --python-version "$version" -c "$system" "${no_emit[@]}" plugin/requirements.txt \
		-o "$OUT/plugin/locks/$gen.txt"
	compile --python-version "$version" -c "$system" -c "$OUT/plugin/locks/$gen.txt" "${no_emit[@]}" \
		plugin/requirements.txt tests/requirements/dev.txt -o "$OUT/tests/requirements/dev-$gen.lock.txt"
	compile --python-version "$version" tests/requirements/servers.txt \
		-o "$OUT/tests/requirements/servers-py${version/./}.lock.txt"
	echo "$gen: $(grep -c '==' "$OUT/plugin/locks/$gen.txt") runtime, $(grep -c '==' "$OUT/tests/requirements/dev-$gen.lock.txt") with test tools"
done
