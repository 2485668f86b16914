"""The real QGIS desktop on a throwaway profile: create the profile, run the probe, read its report.

Also a command for the Makefile: ``python tests/qgis_desktop.py profile DIR`` creates the profile
that `make run` and `make screenshots` open.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PROBE = REPO / "tests" / "tools" / "qgis_probe.py"
QGIS_TIMEOUT_S = 240
PROFILE = "cubescope"

SETTINGS = """[PythonPlugins]
cubescope=true

[Plugins]
cubescope=true

[qgis]
checkVersion=false
showTips=false
showTips322=false
allowVersionCheck=false
newProjectDefault=false

[core]
NewsFeed\\httpsfeedqgisorg\\disabled=true

[UI]
UI\\hidePluginInstallNotifier=true
"""


def create_profile(profiles_dir: Path, plugin_source: Path = REPO, copy: bool = False) -> Path:
    """A fresh profile with Cubescope installed (symlinked, or copied as from a ZIP) and enabled."""
    profile = profiles_dir / "profiles" / PROFILE
    if profile.exists():
        shutil.rmtree(profile)
    plugins = profile / "python" / "plugins"
    plugins.mkdir(parents=True)
    target = plugins / "cubescope"
    if copy:
        shutil.copytree(plugin_source, target)
    else:
        target.symlink_to(plugin_source.resolve(), target_is_directory=True)
    settings = profile / "QGIS" / "QGIS3.ini"
    settings.parent.mkdir(parents=True)
    settings.write_text(SETTINGS, encoding="utf-8")
    (profiles_dir / "profiles" / "profiles.ini").write_text(
        f"[core]\ndefaultProfile={PROFILE}\n", encoding="utf-8"
    )
    return profile




def qgis_environment(demo_dir: Path, report: Path, with_venv: bool = True) -> dict[str, str]:
    """The plugin must come from the profile, as for users: never put the repository on PYTHONPATH.

    ``with_venv=False`` gives QGIS only Debian's Python packages, as in a user's fresh QGIS where
    pystac-client, odc-stac, dask and pyqtgraph are missing.
    """
    # The desktop app needs a (virtual) X display; pytest-qgis's QGIS_* settings are for the test process.
    drop = {"PYTHONPATH", "DISPLAY", "QT_QPA_PLATFORM"}
    env = {k: v for k, v in os.environ.items() if k not in drop and not k.startswith("QGIS_")}
    if with_venv:
        env["PYTHONPATH"] = sysconfig.get_paths()["purelib"]
    env.update(
        CUBESCOPE_DEMO_DIR=str(demo_dir),
        CUBESCOPE_PROBE_REPORT=str(report),
        XDG_RUNTIME_DIR=str(report.parent),
    )
    return env


def run_probe(profiles_dir: Path, demo_dir: Path, workdir: Path, with_venv: bool = True) -> dict:
    """Start QGIS with ``profiles_dir``'s cubescope profile, run the probe, return its report."""
    qgis = shutil.which("qgis") or "/usr/bin/qgis"
    report = workdir / "probe.json"
    command = [
        "xvfb-run", "-a", "-s", "-screen 0 1600x1000x24",
        qgis, "--profiles-path", str(profiles_dir), "--profile", "cubescope",
        "--nologo", "--noversioncheck", "--code", str(PROBE),
    ]
    # Own session: on a timeout the whole group (xvfb-run, Xvfb, qgis.bin) is killed, not just xvfb-run.
    process = subprocess.Popen(
        command, env=qgis_environment(demo_dir, report, with_venv), cwd=workdir,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True,
    )
    try:
        stdout, stderr = process.communicate(timeout=QGIS_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, signal.SIGKILL)
        stdout, stderr = process.communicate()
        raise AssertionError(
            f"QGIS did not finish within {QGIS_TIMEOUT_S} s (a modal error dialog?).\n"
            f"stdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}"
        ) from None
    if not report.exists():
        raise AssertionError(
            f"QGIS exited with {process.returncode} without a probe report.\n"
            f"stdout:\n{stdout[-3000:]}\nstderr:\n{stderr[-3000:]}"
        )
    return json.loads(report.read_text(encoding="utf-8"))



def qgis_process(home: Path, *args: str, timeout_s: float = 300) -> subprocess.CompletedProcess:
    """Run ``qgis_process.bin`` (the Debian wrapper passes an option 3.22 rejects) with Cubescope
    installed in ``home``'s default profile, as a user's command line would."""
    plugins = home / ".local" / "share" / "QGIS" / "QGIS3" / "profiles" / "default" / "python" / "plugins"
    plugins.mkdir(parents=True, exist_ok=True)
    if not (plugins / "cubescope").exists():
        (plugins / "cubescope").symlink_to(REPO, target_is_directory=True)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH" and not k.startswith("QGIS_")}
    env.update(HOME=str(home), QT_QPA_PLATFORM="offscreen", PYTHONPATH=sysconfig.get_paths()["purelib"])
    return subprocess.run(
        ["/usr/bin/qgis_process.bin", *args], env=env, cwd=home, capture_output=True, text=True, timeout=timeout_s
    )


if __name__ == "__main__":
    if len(sys.argv) != 3 or sys.argv[1] != "profile":
        sys.exit("usage: qgis_desktop.py profile PROFILES_DIR")
    print(create_profile(Path(sys.argv[2])))
