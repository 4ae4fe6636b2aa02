"""``python -m thyroid_desktop [FILES...]`` starts the app; ``python -m thyroid_desktop predict
...`` (and ``validate``, ``recalibrate``, ``profile``) runs the same core headless;
``--selftest [FILES...]`` checks an installation."""

from __future__ import annotations

import sys
from collections.abc import Sequence

CLI_COMMANDS = {"predict", "validate", "recalibrate", "profile", "-h", "--help"}


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if "--selftest-gui" in argv:
        from thyroid_desktop.selftest import gui_child

        return gui_child()
    if "--selftest" in argv:
        from thyroid_desktop.selftest import main as selftest_main

        return selftest_main(argv)
    if argv and argv[0] in CLI_COMMANDS:
        from thyroid_desktop.cli import main as cli_main

        return cli_main(argv)
    from thyroid_desktop.ui.app import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
