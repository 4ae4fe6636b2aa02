"""Shared fixtures: the bundled classifier (loaded once) and the real data folder."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def classifier():
    """The real bundled model, as the app loads it."""
    from thyroid_desktop.core.models import load_classifier

    return load_classifier()


@pytest.fixture(scope="session")
def segmenter():
    """The real bundled nodule segmenter."""
    from thyroid_desktop.core.models import load_segmenter

    seg = load_segmenter()
    assert seg is not None, "the model card names no segmenter"
    return seg


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "ddti" / "labels.csv").exists():
        pytest.skip(f"real images not available: {SHARED_DATA} is absent (CI has it)")
    return SHARED_DATA
