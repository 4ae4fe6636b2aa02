"""Writing files so that a crash or a full disk never leaves half a file behind."""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

#: Overrides the user data folder (tests, a portable install).
USER_DATA_ENV = "THYROID_USER_DATA"


def user_data_dir() -> Path:
    """The app's user data folder: site profiles, saved sessions, validation reports, the
    audit log (``THYROID_USER_DATA`` overrides it)."""
    if os.environ.get(USER_DATA_ENV):
        return Path(os.environ[USER_DATA_ENV])
    from platformdirs import user_data_dir as platform_dir

    return Path(platform_dir("ThyroidReview", appauthor=False))


def write_atomically(path: str | os.PathLike[str], write: Callable[[Path], object]) -> Path:
    """Calls ``write(tmp_path)`` on a temporary file beside ``path``, flushes it to disk, then
    renames it over ``path`` (atomic on one file system). On any error the temporary file is
    removed and the old ``path``, if any, is left untouched."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp{os.getpid()}{path.suffix}")
    try:
        write(tmp)
        fd = os.open(tmp, os.O_RDONLY)
        try:
            os.fsync(fd)  # the data is on disk before the name points at it
        finally:
            os.close(fd)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()
    return path
