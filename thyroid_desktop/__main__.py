"""``python -m thyroid_desktop [FILES...]`` starts the app; ``python -m thyroid_desktop predict
...`` (and ``validate``, ``recalibrate``, ``profile``) runs the same core headless;
``--selftest [FILES...]`` checks an installation."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

#: The headless commands (``thyroid_desktop.cli``); anything else names files for the window.
COMMANDS = ("predict", "validate", "recalibrate", "profile", "report", "outbox")
CLI_COMMANDS = {*COMMANDS, "-h", "--help"}
#: Exit code of a first word that is neither a command, an option nor a file (argparse's).
USAGE_ERROR = 2


def unknown_word(argv: Sequence[str]) -> str | None:
    """The first argument when it is neither a command, an option nor an existing file or
    folder (a mistyped or missing command); None when the window may open ``argv``."""
    if not argv:
        return None
    first = argv[0]
    if first in CLI_COMMANDS or first.startswith("-") or Path(first).exists():
        return None
    return first


def usage_error(word: str) -> str:
    """What to say about ``word``: it is not a command nor a file, and what the commands are."""
    from thyroid_desktop.cli.main import commands  # argparse only: no Qt, no models

    lines = [f"thyroid-review: {word!r} is neither a command nor a file.", "commands:"]
    lines += [f"  {name:12s} {text}" for name, text in commands().items()]
    lines += [
        "  --selftest   check this installation",
        "or give image files or folders to open them in the window",
        "(python -m thyroid_desktop COMMAND --help for a command's options)",
    ]
    return "\n".join(lines)


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
    if (word := unknown_word(argv)) is not None:
        print(usage_error(word), file=sys.stderr)
        return USAGE_ERROR
    from thyroid_desktop.ui.app import run

    return run(argv)


if __name__ == "__main__":
    sys.exit(main())
