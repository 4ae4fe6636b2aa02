"""The X libraries Qt's xcb plugin needs, for the Linux bundle (used by build.spec).

A minimal desktop install may lack some of them (stock Debian 12 lacks libxcb-icccm4 and
libxcb-keysyms1), and Qt then aborts. The bundle carries them so that the double-click
install works anyway. Libraries found on the build machine are taken from there; missing
ones are fetched as Debian packages (``apt-get download``, no root needed) and unpacked into
``build/xcb-debs``. libxcb.so.1 and libX11 themselves stay the workstation's (they belong to
its X server; PyInstaller leaves libxcb.so.1 out for the same reason).

Run directly to see what would be carried: ``python packaging/xcb_libs.py``.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from thyroid_desktop.ui.preflight import PACKAGES, plugin_path  # noqa: E402

#: Carried in the bundle: the xcb utility and extension libraries and xkbcommon.
CARRIED = tuple(
    lib
    for lib in PACKAGES
    if (lib.startswith("libxcb-") or lib.startswith("libxkbcommon")) and lib != "libxcb-glx.so.0"
)


def _resolved(plugin: Path) -> dict[str, str | None]:
    """soname -> path (None when not found) for every library ldd lists for the plugin."""
    out = subprocess.run(["ldd", str(plugin)], capture_output=True, text=True).stdout
    found: dict[str, str | None] = {}
    for line in out.splitlines():
        parts = line.split()
        if len(parts) >= 3 and parts[1] == "=>":
            found[parts[0]] = None if parts[2] == "not" else parts[2]
    return found


def _fetch(lib: str, cache: Path) -> Path | None:
    """Downloads and unpacks the Debian package that provides ``lib``; its path, or None."""
    package = PACKAGES[lib][0]
    debs = cache / "debs"
    debs.mkdir(parents=True, exist_ok=True)
    hits = list(cache.glob(f"root/**/{lib}"))
    if not hits and shutil.which("apt-get") and shutil.which("dpkg-deb"):
        cmd = ["apt-get", "download", package]
        if subprocess.run(cmd, cwd=debs, capture_output=True).returncode != 0:
            # Stale package lists (a fresh CI machine): refresh them when allowed, try again.
            subprocess.run(["apt-get", "update", "-qq"], capture_output=True)
            subprocess.run(cmd, cwd=debs, capture_output=True)
        for deb in debs.glob(f"{package}_*.deb"):
            subprocess.run(["dpkg-deb", "-x", str(deb), str(cache / "root")], check=False)
        hits = list(cache.glob(f"root/**/{lib}"))
    return hits[0].resolve() if hits else None


def xcb_binaries(cache: Path = ROOT / "build" / "xcb-debs") -> list[tuple[str, str]]:
    """PyInstaller ``binaries`` entries (source path, ".") for every carried library the xcb
    plugin needs; prints the ones that could not be found anywhere."""
    if not sys.platform.startswith("linux"):
        return []
    plugin = plugin_path("xcb")
    if plugin is None or shutil.which("ldd") is None:
        return []
    entries, lost = [], []
    sonames = cache / "sonames"  # each file under the name the loader asks for
    sonames.mkdir(parents=True, exist_ok=True)
    for lib, path in _resolved(plugin).items():
        if lib not in CARRIED:
            continue
        source = Path(path).resolve() if path else _fetch(lib, cache)
        if source is None:
            lost.append(lib)
            continue
        shutil.copyfile(source, sonames / lib)
        entries.append((str(sonames / lib), "."))
    if lost:
        print(f"WARNING: the bundle will lack {', '.join(lost)} (not found, not downloadable)")
    return entries


if __name__ == "__main__":
    for source, _ in xcb_binaries():
        print(source)
