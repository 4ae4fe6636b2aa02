"""Shared fixtures: the bundled classifier (loaded once) and the real data folder."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

import pytest

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
# QSettings (window layout, recent files) go to a throw-away folder, never the user's.
os.environ["XDG_CONFIG_HOME"] = tempfile.mkdtemp(prefix="thyroid-test-config-")


@pytest.fixture(autouse=True)
def _audit_log_in_tmp(tmp_path, monkeypatch):
    """Tests never write into the user's real audit log."""
    monkeypatch.setenv("THYROID_AUDIT_LOG", str(tmp_path / "audit.jsonl"))


@pytest.fixture(autouse=True)
def _user_data_in_tmp(tmp_path, monkeypatch):
    """Site profiles and validation reports go to a throw-away folder, never the user's."""
    monkeypatch.setenv("THYROID_USER_DATA", str(tmp_path / "user-data"))


SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"


@pytest.fixture(scope="session")
def classifier():
    """The real bundled model, as the app loads it."""
    from thyroid_desktop.core.models.shipped import load_classifier

    return load_classifier()


@pytest.fixture(scope="session")
def segmenter():
    """The real bundled nodule segmenter."""
    from thyroid_desktop.core.models.shipped import load_segmenter

    seg = load_segmenter()
    assert seg is not None, "the model card names no segmenter"
    return seg


@pytest.fixture(scope="session")
def shared_data() -> Path:
    if not (SHARED_DATA / "ddti" / "labels.csv").exists():
        pytest.skip(f"real images not available: {SHARED_DATA} is absent (CI has it)")
    return SHARED_DATA


def write_cine_dicom(path: Path, n_frames: int = 12, appears_at: int = 2) -> Path:
    """A realistic cine loop: JPEG-baseline multi-frame ultrasound DICOM of the phantom sweep
    (no nodule before frame ``appears_at``), with region calibration and patient fields."""
    import numpy as np
    from pydicom.encaps import encapsulate
    from pydicom.uid import JPEGBaseline8Bit

    from tests.core.test_dicom import jpeg_bytes, make_dataset, save, us_region
    from thyroid_desktop.core.io.phantom import make_cine_phantom

    frames = np.stack([p.pixels[:, :, 0] for p in make_cine_phantom(n_frames, appears_at)])
    h, w = frames.shape[1:]
    ds = make_dataset(
        frames,
        regions=[us_region(0.01, 0.01, box=(0, 0, w - 1, h - 1))],  # 0.1 mm per pixel
        multiframe=True,
        pixel_bytes=encapsulate([jpeg_bytes(np.ascontiguousarray(f)) for f in frames]),
    )
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    ds.PatientName = "Testperson^Anna^Maria"
    ds.PatientID = "CINE-0001"
    ds.PatientBirthDate = "19610304"
    ds.PatientSex = "F"
    ds.StudyDate = "20261120"
    ds.StudyTime = "101500"
    ds.InstitutionName = "Example Hospital"
    ds.FrameTime = 40.0
    return save(ds, path, syntax=JPEGBaseline8Bit)


@pytest.fixture
def cine_dicom(tmp_path) -> Path:
    return write_cine_dicom(tmp_path / "cine.dcm")


def full_suggestion():
    """AI TI-RADS suggestions for every group: solid, hypoechoic, wider-than-tall, smooth,
    punctate foci (7 points, TR5)."""
    from thyroid_desktop.core.clinical.tirads import (
        Composition,
        EchogenicFoci,
        Echogenicity,
        Margin,
        Shape,
    )
    from thyroid_desktop.core.pipeline.tirads_ai import Suggestion, TiradsSuggestion

    return TiradsSuggestion(
        {
            "composition": Suggestion(Composition.SOLID, 0.8, "image features"),
            "echogenicity": Suggestion(Echogenicity.HYPO, 0.6, "image features"),
            "shape": Suggestion(Shape.WIDER, None, "mask geometry"),
            "margin": Suggestion(Margin.SMOOTH, 0.7, "image features"),
            "echogenic_foci": Suggestion(EchogenicFoci.PUNCTATE, 0.55, "image features"),
        }
    )
