"""Can Qt show a window here? Checked before Qt starts, because Qt aborts the whole process
(SIGABRT, exit 134) when its platform plugin cannot load, and its message then names the wrong
package (``libxcb-cursor0``) whatever is missing.

On Linux the xcb plugin needs a dozen small X libraries that a minimal desktop install may
lack. ``ldd`` on the plugin lists every library the loader cannot find; each is mapped to the
package to install on Debian/Ubuntu and on Fedora. This module imports no Qt.
"""

from __future__ import annotations

import logging
import os
import re
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger(__name__)

#: Library (soname) -> (Debian/Ubuntu package, Fedora package).
PACKAGES: dict[str, tuple[str, str]] = {
    "libxcb-icccm.so.4": ("libxcb-icccm4", "xcb-util-wm"),
    "libxcb-keysyms.so.1": ("libxcb-keysyms1", "xcb-util-keysyms"),
    "libxcb-cursor.so.0": ("libxcb-cursor0", "xcb-util-cursor"),
    "libxcb-image.so.0": ("libxcb-image0", "xcb-util-image"),
    "libxcb-render-util.so.0": ("libxcb-render-util0", "xcb-util-renderutil"),
    "libxcb-util.so.1": ("libxcb-util1", "xcb-util"),
    "libxkbcommon-x11.so.0": ("libxkbcommon-x11-0", "libxkbcommon-x11"),
    "libxkbcommon.so.0": ("libxkbcommon0", "libxkbcommon"),
    "libxcb-xkb.so.1": ("libxcb-xkb1", "libxcb"),
    "libxcb-randr.so.0": ("libxcb-randr0", "libxcb"),
    "libxcb-shape.so.0": ("libxcb-shape0", "libxcb"),
    "libxcb-shm.so.0": ("libxcb-shm0", "libxcb"),
    "libxcb-sync.so.1": ("libxcb-sync1", "libxcb"),
    "libxcb-xfixes.so.0": ("libxcb-xfixes0", "libxcb"),
    "libxcb-render.so.0": ("libxcb-render0", "libxcb"),
    "libxcb-glx.so.0": ("libxcb-glx0", "libxcb"),
    "libxcb.so.1": ("libxcb1", "libxcb"),
    "libX11-xcb.so.1": ("libx11-xcb1", "libX11-xcb"),
    "libX11.so.6": ("libx11-6", "libX11"),
    "libSM.so.6": ("libsm6", "libSM"),
    "libICE.so.6": ("libice6", "libICE"),
    "libEGL.so.1": ("libegl1", "libglvnd-egl"),
    "libGL.so.1": ("libgl1", "libglvnd-glx"),
    "libOpenGL.so.0": ("libopengl0", "libglvnd-opengl"),
    "libGLX.so.0": ("libglx0", "libglvnd-glx"),
    "libfontconfig.so.1": ("libfontconfig1", "fontconfig"),
    "libfreetype.so.6": ("libfreetype6", "freetype"),
    "libdbus-1.so.3": ("libdbus-1-3", "dbus-libs"),
    "libglib-2.0.so.0": ("libglib2.0-0", "glib2"),
}

_NOT_FOUND = re.compile(r"^\s*(\S+)\s+=>\s+not found", re.MULTILINE)


@dataclass(frozen=True)
class PlatformProblem:
    """Why Qt cannot start a window here, with what to do about it.

    Attributes:
        reason: One line for the self-test and the log.
        missing: Libraries the platform plugin needs and the loader cannot find.
    """

    reason: str
    missing: tuple[str, ...] = ()

    def install_lines(self) -> list[str]:
        """The exact install commands for Debian/Ubuntu and Fedora (empty when nothing is missing)."""
        if not self.missing:
            return []
        debian = sorted({PACKAGES.get(lib, (_guess_package(lib), ""))[0] for lib in self.missing})
        fedora = sorted(
            {PACKAGES.get(lib, ("", _guess_package(lib)))[1] for lib in self.missing} - {""}
        )
        lines = [f"  Debian/Ubuntu:  sudo apt install {' '.join(debian)}"]
        if fedora:
            lines.append(f"  Fedora:         sudo dnf install {' '.join(fedora)}")
        return lines

    def message(self) -> str:
        """The text printed instead of a Qt abort."""
        text = [f"Thyroid Review cannot open its window: {self.reason}."]
        if self.missing:
            text.append("Install the missing system libraries, then start it again:")
            text.extend(self.install_lines())
        text.append(
            "(To check the installation without a screen: "
            "QT_QPA_PLATFORM=offscreen ThyroidReview --selftest)"
        )
        return "\n".join(text)


def _guess_package(lib: str) -> str:
    return f"<the package providing {lib}>"


def platform_plugin_name(environ: dict[str, str] | None = None) -> str | None:
    """The Qt platform plugin this process would use on Linux ("xcb", "wayland", ...),
    or None on other systems (whose plugins are part of every install)."""
    env = os.environ if environ is None else environ
    if not sys.platform.startswith("linux"):
        return None
    requested = env.get("QT_QPA_PLATFORM", "").split(";")[0].split(":")[0].strip()
    if requested:
        return requested
    if env.get("WAYLAND_DISPLAY"):
        return "wayland"  # Qt 6 tries Wayland first in a Wayland session
    return "xcb"


def plugin_path(name: str) -> Path | None:
    """The platform plugin's shared library inside PySide6 (or the bundle), if present."""
    try:
        import PySide6  # the package only: no Qt library is loaded
    except ImportError:
        return None
    base = Path(PySide6.__file__).resolve().parent
    for folder in (base / "Qt" / "plugins" / "platforms", base / "plugins" / "platforms"):
        candidate = folder / f"libq{name}.so"
        if candidate.is_file():
            return candidate
    return None


def missing_libraries(library: Path) -> tuple[str, ...] | None:
    """Libraries ``library`` needs that the dynamic loader cannot find (via ``ldd``), or None
    when ldd is not available. Inside a PyInstaller bundle the bundle's folder is searched
    first, as the running app does."""
    ldd = shutil.which("ldd")
    if ldd is None:
        return None
    env = dict(os.environ)
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (bundle, env.get("LD_LIBRARY_PATH", "")) if p
        )
    try:
        out = subprocess.run(
            [ldd, str(library)], capture_output=True, text=True, timeout=20, env=env
        ).stdout
    except (OSError, subprocess.SubprocessError) as err:
        log.debug("ldd failed: %s", err)
        return None
    return parse_ldd_missing(out)


def parse_ldd_missing(ldd_output: str) -> tuple[str, ...]:
    """The sonames ldd reports as "not found", each once, in order."""
    return tuple(dict.fromkeys(_NOT_FOUND.findall(ldd_output)))


def check_platform(environ: dict[str, str] | None = None) -> PlatformProblem | None:
    """None when Qt should be able to open a window here; otherwise what stands in the way."""
    env = os.environ if environ is None else environ
    name = platform_plugin_name(env)
    if name is None or name in ("offscreen", "minimal", "vnc"):
        return None
    if name == "xcb" and not env.get("DISPLAY"):
        return PlatformProblem(
            "no display was found (DISPLAY is not set); start it from a desktop session"
        )
    plugin = plugin_path(name)
    if plugin is None:
        return None  # Qt will say which plugins it has; nothing better to add
    missing = missing_libraries(plugin)
    if missing:
        return PlatformProblem(
            f"Qt's '{name}' display plugin needs system libraries that are not installed "
            f"({', '.join(missing)})",
            missing,
        )
    return None
