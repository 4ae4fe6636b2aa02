"""Every file pydicom ships in ``pydicom/data/test_files`` (real encodings written by DCMTK,
GDCM and scanners, plus deliberately broken ones): each one opens, or is refused with a clear
reason, within a second or two; none is misread (lossless encodings of one picture decode to
the same pixels)."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import pydicom
import pytest

from thyroid_desktop.core.io.images import ImageLoadError, open_image

TEST_FILES = Path(pydicom.__file__).parent / "data" / "test_files"
SKIP_SUFFIXES = {".py", ".pyc", ".json", ".txt", ".gz", ".bz2", ".zip", ".xz", ".icc", ".dump"}
CORPUS = sorted(
    p
    for p in TEST_FILES.rglob("*")
    if p.is_file() and p.suffix not in SKIP_SUFFIXES and p.name != "README"
)

#: Valid files that must open (DICOM-TIFF style preambles, every compression we decode).
MUST_OPEN = [
    "CT_small.dcm",  # its preamble starts like a TIFF header
    "MR_small.dcm",
    "MR_small_RLE.dcm",
    "MR_small_bigendian.dcm",
    "MR_small_implicit.dcm",
    "examples_rgb_color.dcm",
    "examples_ybr_color.dcm",  # JPEG baseline YBR, 30 frames, ultrasound
    "examples_palette.dcm",
    "examples_jpeg2k.dcm",
    "ExplVR_BigEnd.dcm",
    "GDCMJ2K_TextGBR.dcm",  # JPEG 2000 (pylibjpeg-openjpeg)
    "693_J2KI.dcm",
    "JPEG2000.dcm",
    "MR_small_jp2klossless.dcm",
    "MR_small_jpeg_ls_lossless.dcm",  # JPEG-LS (pylibjpeg-libjpeg)
    "SC_rgb_jls_lossy_line.dcm",
    "JPGExtended.dcm",  # 12-bit JPEG extended
    "SC_rgb_jpeg_gdcm.dcm",  # JPEG lossless
    "SC_rgb_rle.dcm",  # RLE (pylibjpeg-rle)
    "SC_rgb_rle_16bit_2frame.dcm",
]

#: Files that are broken on purpose (or not conformant), and the words of their reason.
MUST_REFUSE = {
    # The 12-bit JPEG stream has invalid SOS parameters (libjpeg and GDCM both refuse it).
    "JPEG-lossy.dcm": "do not follow the standard",
    # The J2K codestream's SIZ segment holds the bytes of a sequence delimiter: not decodable.
    "JPEG2000-embedded-sequence-delimiter.dcm": "do not follow the standard",
    "MR_truncated.dcm": "truncated",
    "rtplan.dcm": "no image",
    "test-SR.dcm": "no image",
    "SC_rgb_small_odd.dcm": "too small",  # 3 x 3 pixels
    "rtdose.dcm": "too small",  # a 10 x 10 dose grid
}

#: Lossless encodings of one picture: (reference, others).
SAME_PIXELS = [
    (
        "MR_small.dcm",
        [
            "MR_small_RLE.dcm",
            "MR_small_jp2klossless.dcm",
            "MR_small_jpeg_ls_lossless.dcm",
            "MR_small_bigendian.dcm",
            "MR_small_expb.dcm",
            "MR_small_implicit.dcm",
            "MR_small_padded.dcm",
        ],
    ),
    ("liver_1frame.dcm", ["liver_expb_1frame.dcm"]),
    (
        "SC_rgb_rle.dcm",
        [
            "SC_rgb_rle_16bit.dcm",
            "SC_rgb_rle_32bit.dcm",
            "SC_rgb_jpeg_gdcm.dcm",
            "SC_rgb_gdcm_KY.dcm",
        ],
    ),
]
#: Lossy encodings of the same picture: mean absolute difference at most this (grey levels).
LOSSY = ["SC_rgb_jpeg_dcmtk.dcm", "SC_rgb_dcmtk_+eb+cr.dcm", "SC_rgb_jls_lossy_line.dcm"]
LOSSY_MEAN_DIFF = 3.0
#: Reasons that would mean the file was taken for something else than DICOM.
NOT_DICOM_WORDS = ("TIFF", "PNG", "BMP", "not a supported image")


def _outcome(path: Path) -> tuple[object, float]:
    t0 = time.perf_counter()
    try:
        result: object = open_image(path)
    except ImageLoadError as err:
        result = err
    return result, time.perf_counter() - t0


def test_the_corpus_is_there():
    assert len(CORPUS) > 80, f"pydicom's test files not found under {TEST_FILES}"


@pytest.mark.parametrize("path", CORPUS, ids=lambda p: str(p.relative_to(TEST_FILES)))
def test_every_pydicom_test_file_opens_or_is_refused_clearly(path):
    result, seconds = _outcome(path)
    assert seconds < 3.0, f"{path.name} took {seconds:.1f} s"
    if isinstance(result, ImageLoadError):
        assert result.reason and path.name in str(result)
        assert "Traceback" not in str(result)
        if path.read_bytes()[128:132] == b"DICM":
            assert not any(w in result.reason for w in NOT_DICOM_WORDS), result.reason
    else:
        assert result.pixels.dtype == np.uint8 and result.pixels.ndim == 3
        assert min(result.width, result.height) >= 32


@pytest.mark.parametrize("name", MUST_OPEN)
def test_valid_encodings_open(name):
    result, _ = _outcome(TEST_FILES / name)
    assert not isinstance(result, ImageLoadError), str(result)


@pytest.mark.parametrize("name,words", MUST_REFUSE.items())
def test_broken_files_are_refused_with_the_reason(name, words):
    result, _ = _outcome(TEST_FILES / name)
    assert isinstance(result, ImageLoadError), f"{name} should be refused"
    assert words in result.reason, result.reason


@pytest.mark.parametrize("reference,others", SAME_PIXELS, ids=[r for r, _ in SAME_PIXELS])
def test_lossless_encodings_decode_to_the_same_pixels(reference, others):
    ref = open_image(TEST_FILES / reference).pixels
    for name in others:
        assert np.array_equal(open_image(TEST_FILES / name).pixels, ref), name


def test_lossy_encodings_stay_close_to_the_lossless_picture():
    ref = open_image(TEST_FILES / "SC_rgb_rle.dcm").pixels.astype(np.int16)
    for name in LOSSY:
        diff = np.abs(open_image(TEST_FILES / name).pixels.astype(np.int16) - ref).mean()
        assert diff <= LOSSY_MEAN_DIFF, f"{name}: mean difference {diff:.1f}"


def test_dicom_tiff_preamble_is_read_as_dicom_with_its_modality():
    image = open_image(TEST_FILES / "CT_small.dcm")
    assert image.metadata["Modality"] == "CT" and image.width == 128
