"""Entry point of the PyInstaller bundle (``ThyroidReview``): the same as
``python -m thyroid_desktop``."""

import sys

from thyroid_desktop.__main__ import main

if __name__ == "__main__":
    sys.exit(main())
