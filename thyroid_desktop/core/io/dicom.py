"""DICOM specifics: frames, photometric interpretation and ultrasound calibration.

Pure pydicom + NumPy. `images.open_image` is the public entry point; this module turns
DICOM bytes into one decoded frame plus its calibration and a few header fields, and
reports unusable files as `DicomError` (a reason without the file name, which
`open_image` re-raises as `ImageLoadError`).

Needs pydicom >= 3.0 (`pydicom.pixels`); JPEG-compressed transfer syntaxes are decoded by
the pylibjpeg plugins.
"""

from __future__ import annotations

import io
import logging
import math
import os
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pydicom
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import get_frame
from pydicom.pixels import apply_color_lut, pixel_array
from pydicom.uid import (
    UID,
    ExplicitVRBigEndian,
    ExplicitVRLittleEndian,
    ImplicitVRLittleEndian,
    JPEG2000TransferSyntaxes,
    JPEGLSTransferSyntaxes,
    JPEGTransferSyntaxes,
)

from thyroid_desktop.core.io.scale import Scale, ScaleSource

logger = logging.getLogger(__name__)

PREAMBLE_BYTES = 128
DICOM_MAGIC = b"DICM"

#: Photometric interpretations we can turn into RGB (YBR_* are converted by pydicom).
SUPPORTED_PHOTOMETRIC = frozenset(
    {
        "MONOCHROME1",
        "MONOCHROME2",
        "RGB",
        "YBR_FULL",
        "YBR_FULL_422",
        "YBR_PARTIAL_420",
        "YBR_ICT",
        "YBR_RCT",
        "PALETTE COLOR",
    }
)

#: Header fields copied into `UltrasoundImage.metadata` when present and non-empty.
METADATA_KEYWORDS = (
    "PatientName",
    "PatientID",
    "PatientBirthDate",
    "PatientSex",
    "StudyDate",
    "StudyTime",
    "StudyDescription",
    "SeriesDescription",
    "AccessionNumber",
    "StudyID",
    "ReferringPhysicianName",
    "StudyInstanceUID",
    "SeriesInstanceUID",
    "SOPInstanceUID",
    "SOPClassUID",
    "Modality",
    "Manufacturer",
    "ManufacturerModelName",
    "InstitutionName",
    "BodyPartExamined",
    "ProtocolName",
    "PhotometricInterpretation",
    "FrameTime",
    "CineRate",
)

# Compressed syntaxes whose every frame must end with an EOI/EOC marker (FF D9).
_MARKER_TERMINATED = frozenset(
    [*JPEGTransferSyntaxes, *JPEGLSTransferSyntaxes, *JPEG2000TransferSyntaxes]
)
_CM_UNITS = 3  # PhysicalUnitsX/YDirection code for centimetres (PS3.3 C.8.5.5.1.15)
_SPATIAL_2D = 1  # RegionSpatialFormat code for a 2D (tissue or colour-flow) region


class DicomError(Exception):
    """Why a DICOM file cannot be used, in words for a clinician (no file name)."""


@dataclass(frozen=True, eq=False)
class DicomFrame:
    """One decoded DICOM frame with what the header says about it.

    Attributes:
        pixels: H x W (grey) or H x W x 3 (RGB) in the stored bit depth; MONOCHROME1 is
            already inverted and YBR/palette data already converted to RGB.
        n_frames: Number of frames in the file.
        scale: The pixel size the file states (ultrasound regions, else Pixel Spacing),
            or ``Scale.none()``.
        metadata: Selected header fields as strings (see `METADATA_KEYWORDS`).
        notes: What had to be assumed because the header does not say it.
    """

    pixels: np.ndarray
    n_frames: int
    scale: Scale
    metadata: dict[str, str]
    notes: tuple[str, ...] = ()

    @property
    def spacing_mm(self) -> tuple[float, float] | None:
        """(row_mm, col_mm) when the file states a physical calibration, else None."""
        return self.scale.spacing_mm


MISSING_PHOTOMETRIC_NOTE = (
    "the DICOM file does not say how its pixels are to be shown (no PhotometricInterpretation); "
    "{assumed} was assumed: check that the image does not look inverted"
)


def has_dicom_magic(data: bytes) -> bool:
    """Return True when `data` is a DICOM Part 10 file ("DICM" after the 128-byte preamble)."""
    return data[PREAMBLE_BYTES : PREAMBLE_BYTES + 4] == DICOM_MAGIC


def looks_like_headerless_dicom(data: bytes) -> bool:
    """Return True when `data` plausibly is a bare DICOM data set (no preamble, no "DICM").

    Such files start with a tag of group 0002 or 0008, little-endian followed either by a
    two-letter explicit VR or by an implicit 32-bit length that fits the file, or
    big-endian followed by an explicit VR.
    """
    if len(data) < 8:
        return False
    vr = data[4:6]
    explicit = vr.isalpha() and vr.isupper()
    if int.from_bytes(data[0:2], "big") in (0x0002, 0x0008) and explicit:
        return True
    if int.from_bytes(data[0:2], "little") not in (0x0002, 0x0008):
        return False
    return explicit or int.from_bytes(data[4:8], "little") < len(data)


def read_dicom(
    data: bytes,
    *,
    frame: int = 0,
    max_pixels: int | None = None,
    check_size: Callable[[int, int], None] | None = None,
) -> DicomFrame:
    """Decode one frame of a DICOM file held in memory.

    Args:
        data: The whole file.
        frame: Zero-based frame to decode.
        max_pixels: Refuse frames with more pixels than this, before decoding.
        check_size: Called with (columns, rows) before decoding; raises to refuse the frame.

    Returns:
        The decoded frame, frame count, calibration and metadata.

    Raises:
        DicomError: The file is not usable; the message says why.
    """
    ds = _parse(data)
    _ensure_transfer_syntax(ds)
    _check_has_pixels(ds)
    rows, cols = _check_dimensions(ds, max_pixels)
    if check_size is not None:
        check_size(cols, rows)
    n_frames = number_of_frames(ds)
    check_frame_index(frame, n_frames)
    notes = []
    photometric = _check_photometric(ds, notes)
    _check_frame_complete(ds, frame, n_frames)
    arr = _decode_frame(ds, frame)
    arr = _to_display_values(arr, ds, photometric)
    logger.debug("DICOM frame %d/%d %dx%d %s", frame, n_frames, cols, rows, photometric)
    return DicomFrame(
        pixels=arr,
        n_frames=n_frames,
        scale=pixel_scale(ds),
        metadata=dicom_metadata(ds),
        notes=tuple(notes),
    )


def number_of_frames(ds: Dataset) -> int:
    """Return NumberOfFrames (1 when absent or invalid)."""
    try:
        n = int(ds.get("NumberOfFrames", 1) or 1)
    except (TypeError, ValueError):
        return 1
    return max(n, 1)


def check_frame_index(frame: int, n_frames: int) -> None:
    """Raise DicomError unless 0 <= frame < n_frames."""
    if not 0 <= frame < n_frames:
        plural = "frame" if n_frames == 1 else f"frames, numbered 0 to {n_frames - 1}"
        raise DicomError(f"frame {frame} does not exist (the file has {n_frames} {plural})")


def pixel_scale(ds: Dataset) -> Scale:
    """The pixel size the file states, with where it came from, or ``Scale.none()``.

    The ultrasound regions calibration wins; Pixel Spacing (0028,0030) is the fallback.
    Nothing is ever guessed.
    """
    regions = ultrasound_spacing_mm(ds)
    if regions is not None:
        return Scale.of_spacing(regions, ScaleSource.DICOM_REGIONS)
    return Scale.of_spacing(_tag_pixel_spacing_mm(ds), ScaleSource.DICOM_PIXEL_SPACING)


def pixel_spacing_mm(ds: Dataset) -> tuple[float, float] | None:
    """Return the (row_mm, col_mm) pixel size the file states, or None (see `pixel_scale`)."""
    return pixel_scale(ds).spacing_mm


def ultrasound_spacing_mm(ds: Dataset) -> tuple[float, float] | None:
    """Return (row_mm, col_mm) from the Sequence of Ultrasound Regions (0018,6011), or None.

    Uses the largest 2D region (RegionSpatialFormat 1; the first one when sizes are
    unknown). Only centimetre units (code 3) with positive, finite deltas count.
    """
    regions = _get(ds, "SequenceOfUltrasoundRegions") or []
    two_d = [r for r in regions if _as_int(_get(r, "RegionSpatialFormat")) == _SPATIAL_2D]
    if not two_d:
        return None
    region = max(two_d, key=_region_area)  # max() keeps the first of equal areas
    units = (
        _as_int(_get(region, "PhysicalUnitsXDirection")),
        _as_int(_get(region, "PhysicalUnitsYDirection")),
    )
    if units != (_CM_UNITS, _CM_UNITS):
        logger.debug("Ultrasound region units %s are not centimetres; no spacing", units)
        return None
    dx = _positive_float(_get(region, "PhysicalDeltaX"))
    dy = _positive_float(_get(region, "PhysicalDeltaY"))
    if dx is None or dy is None:
        return None
    return (dy * 10.0, dx * 10.0)


def dicom_metadata(ds: Dataset) -> dict[str, str]:
    """Return the `METADATA_KEYWORDS` fields that are present and non-empty, as strings."""
    out: dict[str, str] = {}
    for keyword in METADATA_KEYWORDS:
        value = _get(ds, keyword)
        text = "" if value is None else str(value).strip()
        if text:
            out[keyword] = text
    region = _get(ds, "AnatomicRegionSequence")
    meanings = [str(getattr(item, "CodeMeaning", "")).strip() for item in (region or [])]
    if any(meanings):
        out["AnatomicRegion"] = "; ".join(m for m in meanings if m)
    return out


def read_header(path: str | os.PathLike[str]) -> dict[str, str]:
    """The `METADATA_KEYWORDS` fields of a DICOM file, read without its pixel data (cheap
    enough to ask of every file opened); {} for any other file, or one that cannot be read."""
    try:
        with open(path, "rb") as fh:
            head = fh.read(PREAMBLE_BYTES + 4)
            if not (has_dicom_magic(head) or looks_like_headerless_dicom(head)):
                return {}
            fh.seek(0)
            ds = pydicom.dcmread(fh, force=True, stop_before_pixels=True)
    except Exception:  # a damaged header: opening the file says why
        logger.debug("DICOM header not read", exc_info=True)
        return {}
    return dicom_metadata(ds)


def _parse(data: bytes) -> Dataset:
    try:
        ds = pydicom.dcmread(io.BytesIO(data), force=True)
    except Exception as exc:  # pydicom raises many types on damaged headers
        logger.debug("dcmread failed", exc_info=True)
        raise DicomError(f"the DICOM file is truncated or corrupt ({_short(exc)})") from exc
    meta_end = _meta_end(data)
    if len(ds) == 0 and 0 < meta_end < len(data):
        # bytes after the file meta header but no element read from them: cut inside an
        # element of undefined length (e.g. compressed pixel data), which pydicom drops
        raise DicomError("the DICOM file is truncated or corrupt (it ends inside its data)")
    return ds


def _meta_end(data: bytes) -> int:
    """Where the file meta group of a Part 10 file ends (0 when it cannot be told)."""
    group = data[PREAMBLE_BYTES + 4 : PREAMBLE_BYTES + 16]
    if len(group) < 12 or group[:4] != b"\x02\x00\x00\x00":  # (0002,0000) group length
        return 0
    return PREAMBLE_BYTES + 4 + 12 + int.from_bytes(group[8:12], "little")


def _ensure_transfer_syntax(ds: Dataset) -> None:
    """Give a file without file meta the transfer syntax it was actually read with."""
    meta = getattr(ds, "file_meta", None)
    if meta is not None and "TransferSyntaxUID" in meta:
        syntax = UID(str(meta.TransferSyntaxUID))
        if not syntax.is_valid or not syntax.is_transfer_syntax:
            raise DicomError(
                f"the DICOM file states an unknown transfer syntax ({_short_text(syntax)})"
            )
        return
    implicit, little = ds.original_encoding
    if "PixelData" in ds and ds["PixelData"].is_undefined_length:
        raise DicomError(
            "the DICOM file has no file meta header and its pixel data is compressed, "
            "so the compression type is unknown"
        )
    if implicit:
        syntax = ImplicitVRLittleEndian
    else:
        syntax = ExplicitVRLittleEndian if little is not False else ExplicitVRBigEndian
    logger.debug("No file meta; assuming %s", syntax.name)
    if meta is None:
        meta = FileMetaDataset()
        ds.file_meta = meta
    meta.TransferSyntaxUID = syntax


def _check_has_pixels(ds: Dataset) -> None:
    if "PixelData" in ds:
        return
    if "FloatPixelData" in ds or "DoubleFloatPixelData" in ds:
        raise DicomError("the DICOM file holds floating-point pixel data, which is not supported")
    raise DicomError("the DICOM file contains no image (it has no Pixel Data)")


def _check_dimensions(ds: Dataset, max_pixels: int | None) -> tuple[int, int]:
    rows, cols = _as_int(_get(ds, "Rows")), _as_int(_get(ds, "Columns"))
    if rows is None or cols is None:
        raise DicomError("the DICOM file does not state the image size (Rows/Columns missing)")
    if rows <= 0 or cols <= 0:
        raise DicomError(f"the image has zero width or height ({cols} x {rows} pixels)")
    if max_pixels is not None and rows * cols > max_pixels:
        raise DicomError(
            f"the image is too large ({cols} x {rows} pixels; the limit is {max_pixels:,} pixels)"
        )
    return rows, cols


def _check_photometric(ds: Dataset, notes: list[str]) -> str:
    """The frame's photometric interpretation; when the file states none, the usual one for
    its samples per pixel, with a note saying so (appended to ``notes``)."""
    photometric = str(_get(ds, "PhotometricInterpretation") or "").strip().upper()
    samples = _as_int(_get(ds, "SamplesPerPixel")) or 1
    if not photometric:
        photometric = "MONOCHROME2" if samples == 1 else "RGB"
        assumed = "MONOCHROME2 (black is zero)" if samples == 1 else "RGB"
        ds.PhotometricInterpretation = photometric
        notes.append(MISSING_PHOTOMETRIC_NOTE.format(assumed=assumed))
        logger.info("No PhotometricInterpretation; assuming %s", photometric)
    if photometric not in SUPPORTED_PHOTOMETRIC:
        raise DicomError(f"the photometric interpretation {photometric!r} is not supported")
    if samples not in (1, 3):
        raise DicomError(f"{samples} samples per pixel is not supported (expected 1 or 3)")
    return photometric


def _check_frame_complete(ds: Dataset, frame: int, n_frames: int) -> None:
    """Catch truncated JPEG-family frames, which decoders may silently half-decode."""
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if syntax not in _MARKER_TERMINATED:
        return
    try:
        encoded = get_frame(ds.PixelData, frame, number_of_frames=n_frames)
    except Exception as exc:
        raise DicomError(
            f"the compressed pixel data is truncated or corrupt ({_short(exc)})"
        ) from exc
    if b"\xff\xd9" not in encoded[-8:]:
        raise DicomError(
            f"the compressed pixel data of frame {frame} is truncated (no end-of-image marker)"
        )


def _decode_frame(ds: Dataset, frame: int) -> np.ndarray:
    try:
        return pixel_array(ds, index=frame, as_rgb=True)
    except Exception as exc:
        logger.debug("pixel decoding failed", exc_info=True)
        raise DicomError(_decode_failure_reason(ds, exc)) from exc


def _decode_failure_reason(ds: Dataset, exc: Exception) -> str:
    text = str(exc)
    if "less than expected" in text or "insufficient pixel data" in text:
        sizes = re.search(r"\((\d+) vs (\d+) bytes\)", text)
        detail = f" (only {sizes[1]} of {sizes[2]} bytes present)" if sizes else ""
        return f"the pixel data is truncated{detail}"
    if "broadcast" in text or "cannot reshape" in text:
        return "the pixel data does not match the image size and format the header states"
    syntax = UID(ds.file_meta.TransferSyntaxUID)
    if syntax.is_compressed and "missing dependencies" in text:
        return f"no decoder for pixels compressed as {syntax.name!r} is installed"
    if syntax.is_compressed and ("plugin" in text.lower() or "decoder" in text.lower()):
        first = next((ln.strip() for ln in text.splitlines()[1:] if ln.strip()), text)
        return (
            f"the pixels, compressed as {syntax.name!r}, are damaged or do not follow the "
            f"standard: no decoder can read them ({_short(first)})"
        )
    return f"the pixel data cannot be decoded ({_short(exc)})"


def _to_display_values(arr: np.ndarray, ds: Dataset, photometric: str) -> np.ndarray:
    """Apply palette and MONOCHROME1 inversion; narrow 8-bit-stored data to uint8."""
    if photometric == "PALETTE COLOR":
        try:
            arr = apply_color_lut(arr, ds)
        except Exception as exc:
            raise DicomError(f"the colour palette cannot be applied ({_short(exc)})") from exc
    elif photometric == "MONOCHROME1":
        arr = _invert(arr, _as_int(_get(ds, "BitsStored")))
    bits = _as_int(_get(ds, "BitsStored")) or 16
    if (
        arr.dtype.kind == "u"
        and arr.dtype.itemsize > 1
        and bits <= 8
        and photometric != "PALETTE COLOR"
    ):
        arr = arr.astype(np.uint8)
    return arr


def _invert(arr: np.ndarray, bits_stored: int | None) -> np.ndarray:
    """MONOCHROME1 -> MONOCHROME2 over the stored bit range (min is white in MONOCHROME1)."""
    if arr.dtype.kind == "u":
        bits = bits_stored or arr.dtype.itemsize * 8
        top = np.array((1 << bits) - 1, dtype=arr.dtype)
        return top - np.minimum(arr, top)
    if arr.dtype.kind == "i":
        return ~arr
    return arr.max() + arr.min() - arr


def _tag_pixel_spacing_mm(ds: Dataset) -> tuple[float, float] | None:
    value = _get(ds, "PixelSpacing")
    if not isinstance(value, Sequence) or isinstance(value, str) or len(value) != 2:
        return None
    row, col = _positive_float(value[0]), _positive_float(value[1])
    if row is None or col is None:
        return None
    return (row, col)


def _region_area(region: Dataset) -> int:
    coords = [
        _as_int(_get(region, k))
        for k in (
            "RegionLocationMinX0",
            "RegionLocationMinY0",
            "RegionLocationMaxX1",
            "RegionLocationMaxY1",
        )
    ]
    if any(c is None for c in coords):
        return 0
    x0, y0, x1, y1 = coords
    return max(x1 - x0 + 1, 0) * max(y1 - y0 + 1, 0)


def _get(ds: Dataset, keyword: str) -> Any:
    """Return ds.<keyword> or None, also when the stored element cannot be parsed."""
    try:
        return ds.get(keyword)
    except Exception:
        logger.debug("Unreadable DICOM element %s", keyword, exc_info=True)
        return None


def _as_int(value: Any) -> int | None:
    try:
        return None if value is None or value == "" else int(value)
    except (TypeError, ValueError):
        return None


def _positive_float(value: Any) -> float | None:
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and number > 0 else None


def _short_text(text: str, limit: int = 80) -> str:
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _short(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
