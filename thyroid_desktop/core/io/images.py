"""Open and validate any supported file as an `UltrasoundImage`.

The format is detected from the file's content (magic bytes), never from its suffix.
Every file that cannot be used raises `ImageLoadError` with a message naming the file and
the reason, worded for a clinician. All pixel data goes through `to_rgb8`, so files and
in-memory arrays are normalised the same way.

Truncation policy: PNG, JPEG, BMP and TIFF are decoded by Pillow with its default
``ImageFile.LOAD_TRUNCATED_IMAGES = False``, so a file whose data ends early is refused
rather than shown half grey (OpenCV can return such partial JPEGs silently). A JPEG that
lacks only its final end-of-image marker counts as truncated too. Do not set
``LOAD_TRUNCATED_IMAGES`` anywhere in the application.
"""

from __future__ import annotations

import hashlib
import logging
import os
import warnings
from dataclasses import dataclass, field
from functools import cached_property
from io import BytesIO
from pathlib import Path

import cv2
import numpy as np
from PIL import Image, UnidentifiedImageError

from thyroid_desktop.core.io import dicom
from thyroid_desktop.core.io.scale import Scale, ScaleSource

logger = logging.getLogger(__name__)

SUPPORTED_SUFFIXES: tuple[str, ...] = (
    ".png",
    ".jpg",
    ".jpeg",
    ".bmp",
    ".tif",
    ".tiff",
    ".dcm",
    ".dicom",
)
#: Frames with more pixels are refused before decoding; every buffer the analysis makes is
#: bounded by a small multiple of this (see `roi.crop_square`, `inference.heatmap_to_image`).
MAX_PIXELS = 100_000_000
MAX_FILE_BYTES = 2 * 1024**3
#: A side shorter than this holds no nodule the models could see (their inputs are 224-256 px).
MIN_SIDE = 32
#: Ultrasound frames are at most about 3:1 (two panels side by side); beyond this a file is a
#: strip, a line profile or damaged header dimensions, never a scan.
MAX_ASPECT = 20.0

SUPPORTED_FORMATS_TEXT = "PNG, JPEG, BMP, TIFF or DICOM"

_PILLOW_FORMAT = {"png": "PNG", "jpeg": "JPEG", "bmp": "BMP", "tiff": "TIFF"}
_BMP_INFO_HEADER_SIZES = frozenset({12, 40, 52, 56, 64, 108, 124})
# Formats we recognise only to name them in the error message.
_KNOWN_UNSUPPORTED = (
    (b"GIF87a", "a GIF image"),
    (b"GIF89a", "a GIF image"),
    (b"%PDF", "a PDF document"),
    (b"PK\x03\x04", "a ZIP archive"),
    (b"\x00\x00\x00\x0cjP  ", "a JPEG 2000 image"),
    (b"\xff\x4f\xff\x51", "a JPEG 2000 codestream"),
)


class ImageLoadError(Exception):
    """A file (or array) that cannot be used; str(e) is a message for a clinician.

    Attributes:
        path: The file concerned, or None for in-memory data.
        reason: The message without the file name.
    """

    def __init__(self, message: str, *, path: Path | None = None, reason: str | None = None):
        super().__init__(message)
        self.path = path
        self.reason = reason if reason is not None else message


class _Unusable(ValueError):
    """Internal: why data cannot be used, before the file name is known to the message."""


@dataclass(frozen=True, eq=False)
class UltrasoundImage:
    """One decoded frame, ready for display and analysis.

    Attributes:
        pixels: H x W x 3 uint8 RGB, C-contiguous and read-only.
        source: File it came from; None for in-memory images.
        sha256: Hex digest of the file bytes (of `pixels` bytes for in-memory images).
        scale: The pixel size the file states and where it came from (DICOM ultrasound
            regions or Pixel Spacing), else ``Scale.none()``; ``spacing_mm`` is its
            (row_mm, col_mm) or None. A user's scale line is not part of the image: see
            ``core.clinical.measure.effective_scale``.
        metadata: Header fields such as PatientName or Modality (DICOM); empty otherwise.
        frame_index: Which frame of the file this is.
        n_frames: How many frames the file has.
        notes: What the reader had to assume about a file that does not say (e.g. a DICOM
            file without PhotometricInterpretation), in words for a clinician; shown with
            every result of this image.

    Compared by identity (``eq=False``): NumPy arrays have no single truth value.
    """

    pixels: np.ndarray
    source: Path | None
    sha256: str
    scale: Scale = field(default_factory=Scale.none)
    metadata: dict[str, str] = field(default_factory=dict)
    frame_index: int = 0
    n_frames: int = 1
    notes: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        px = self.pixels
        if (
            not isinstance(px, np.ndarray)
            or px.dtype != np.uint8
            or px.ndim != 3
            or px.shape[2] != 3
        ):
            raise ValueError("pixels must be an H x W x 3 uint8 array (use to_rgb8 first)")
        if px.shape[0] == 0 or px.shape[1] == 0:
            raise ValueError("pixels must have non-zero width and height")
        if px.flags.writeable or not px.flags.c_contiguous:
            px = np.array(px, dtype=np.uint8, order="C", copy=True)
            px.flags.writeable = False
            object.__setattr__(self, "pixels", px)
        object.__setattr__(self, "metadata", {str(k): str(v) for k, v in self.metadata.items()})
        if not isinstance(self.scale, Scale):
            raise ValueError(f"scale must be a Scale, got {self.scale!r}")

    @property
    def spacing_mm(self) -> tuple[float, float] | None:
        """(row_mm, col_mm) per pixel when the file states a physical calibration, else None."""
        return self.scale.spacing_mm

    @property
    def height(self) -> int:
        """Rows of pixels."""
        return int(self.pixels.shape[0])

    @property
    def width(self) -> int:
        """Columns of pixels."""
        return int(self.pixels.shape[1])

    @cached_property
    def gray(self) -> np.ndarray:
        """H x W uint8 luminance (cv2 RGB2GRAY), read-only, computed once."""
        grey = cv2.cvtColor(self.pixels, cv2.COLOR_RGB2GRAY)
        grey.flags.writeable = False
        return grey


@dataclass(frozen=True)
class _Decoded:
    pixels: np.ndarray
    n_frames: int = 1
    scale: Scale = field(default_factory=Scale.none)
    metadata: dict[str, str] = field(default_factory=dict)
    notes: tuple[str, ...] = ()


def open_image(path: str | os.PathLike[str], *, frame: int = 0) -> UltrasoundImage:
    """Read, validate and decode one frame of an image file.

    Args:
        path: PNG, JPEG, BMP, TIFF or DICOM file; the suffix does not matter.
        frame: Zero-based frame (DICOM multi-frame, multi-page TIFF).

    Returns:
        The frame as an `UltrasoundImage`.

    Raises:
        ImageLoadError: The file cannot be used; str(e) names it and says why.
    """
    p = Path(path)
    try:
        data = _read_file(p)
        decoded = _decode(data, p, frame)
        pixels = _normalise(decoded.pixels)
    except (_Unusable, dicom.DicomError) as exc:
        raise _load_error(p, str(exc)) from None
    except MemoryError as exc:
        raise _load_error(p, "there is not enough memory to open this image") from exc
    except Exception as exc:  # never leak a decoder traceback to the user
        logger.debug("Unexpected failure opening %s", p, exc_info=True)
        reason = f"the file is truncated or corrupt ({type(exc).__name__}: {_short(exc)})"
        raise _load_error(p, reason) from exc
    image = UltrasoundImage(
        pixels=pixels,
        source=p,
        sha256=hashlib.sha256(data).hexdigest(),
        scale=decoded.scale,
        metadata=decoded.metadata,
        frame_index=frame,
        n_frames=decoded.n_frames,
        notes=decoded.notes,
    )
    logger.debug(
        "Opened %s: %dx%d, frame %d of %d, scale %s",
        p.name,
        image.width,
        image.height,
        frame,
        image.n_frames,
        image.scale,
    )
    return image


def from_array(
    pixels: np.ndarray,
    *,
    spacing_mm: tuple[float, float] | None = None,
    metadata: dict[str, str] | None = None,
    scale: Scale | None = None,
) -> UltrasoundImage:
    """Wrap an in-memory array, normalised exactly as files are (see `to_rgb8`).

    Args:
        pixels: H x W, H x W x 1/2/3/4; bool, integer or float.
        spacing_mm: Optional (row_mm, col_mm) calibration (source "given with the image").
        metadata: Optional header-like fields.
        scale: Optional calibration with its source (instead of ``spacing_mm``).

    Returns:
        An `UltrasoundImage` with no source; sha256 is of the normalised pixel bytes.

    Raises:
        ImageLoadError: The array cannot be used as an image.
    """
    try:
        rgb = to_rgb8(pixels)
        check_geometry(rgb.shape[1], rgb.shape[0])
    except (ValueError, _Unusable) as exc:
        raise ImageLoadError(f"in-memory image: {exc}", reason=str(exc)) from None
    if scale is None:
        scale = Scale.of_spacing(spacing_mm, ScaleSource.GIVEN)
    elif spacing_mm is not None:
        raise ValueError("give the calibration as spacing_mm or as scale, not both")
    rgb.flags.writeable = False
    return UltrasoundImage(
        pixels=rgb,
        source=None,
        sha256=hashlib.sha256(rgb.tobytes()).hexdigest(),
        scale=scale,
        metadata=dict(metadata or {}),
    )


def to_rgb8(arr: np.ndarray) -> np.ndarray:
    """Normalise any image array to H x W x 3 uint8 RGB (a new, writable array).

    Channels: grey is repeated to 3; grey+alpha and RGBA are composited on black.
    Values: uint8 as is; bool to 0/255; other integers (e.g. uint16) scaled linearly from
    their actual min..max to 0..255 (a constant image gives zeros); floats within [0, 1]
    are multiplied by 255, floats within [0, 255] are rounded, other floats are scaled
    from min..max; NaN and infinities are replaced by the finite min/max.

    Raises:
        ValueError: Unsupported shape or dtype, or zero width/height.
    """
    src = np.asarray(arr)
    a = _channels_last(src)
    if a.dtype == np.bool_:
        a = a.astype(np.uint8) * 255
    if a.dtype.kind not in "uif":
        raise ValueError(f"pixel type {a.dtype} is not supported")
    if a.dtype.kind == "f":
        a = _finite(a)
    if a.shape[2] in (2, 4):
        a = _composite_on_black(a)
    out = _scale_to_uint8(a)
    if out.shape[2] == 1:
        out = np.repeat(out, 3, axis=2)
    if np.may_share_memory(out, src):
        return np.array(out, order="C", copy=True)
    return np.ascontiguousarray(out)


def detect_format(data: bytes) -> str | None:
    """Return 'png', 'jpeg', 'bmp', 'tiff' or 'dicom' from magic bytes, else None.

    "DICM" after the 128-byte preamble wins over any magic at the start: the preamble is free
    for applications, and DICOM-TIFF dual-format files put a TIFF header there. Bare DICOM
    data sets without the "DICM" marker are not reported here.
    """
    if dicom.has_dicom_magic(data):
        return "dicom"
    if data.startswith(b"\x89PNG\r\n\x1a\n"):
        return "png"
    if data.startswith(b"\xff\xd8\xff"):
        return "jpeg"
    if data[:4] in (b"II*\x00", b"MM\x00*", b"II+\x00", b"MM\x00+"):
        return "tiff"
    if data.startswith(b"BM") and int.from_bytes(data[14:18], "little") in _BMP_INFO_HEADER_SIZES:
        return "bmp"
    return None


def _read_file(p: Path) -> bytes:
    try:
        st = p.stat()
    except FileNotFoundError:
        raise _Unusable("file not found") from None
    except PermissionError:
        raise _Unusable("permission denied: the file cannot be read") from None
    except OSError as exc:
        raise _Unusable(f"the file cannot be read ({_short(exc)})") from None
    if p.is_dir():
        raise _Unusable("this is a folder, not an image file")
    if st.st_size > MAX_FILE_BYTES:
        raise _Unusable(
            f"the file is too large ({_human_bytes(st.st_size)}; "
            f"the limit is {_human_bytes(MAX_FILE_BYTES)})"
        )
    try:
        data = p.read_bytes()
    except PermissionError:
        raise _Unusable("permission denied: the file cannot be read") from None
    except OSError as exc:
        raise _Unusable(f"the file cannot be read ({_short(exc)})") from None
    if not data:
        raise _Unusable("the file is empty (0 bytes)")
    return data


def _decode(data: bytes, p: Path, frame: int) -> _Decoded:
    fmt = detect_format(data)
    if fmt in _PILLOW_FORMAT:
        return _decode_raster(data, fmt, frame)
    if fmt == "dicom" or dicom.looks_like_headerless_dicom(data):
        return _decode_dicom(data, frame)
    raise _Unusable(_unsupported_reason(data, p))


def _unsupported_reason(data: bytes, p: Path) -> str:
    for magic, what in _KNOWN_UNSUPPORTED:
        if data.startswith(magic):
            return f"this is {what}, not a supported image (expected {SUPPORTED_FORMATS_TEXT})"
    if p.suffix.lower() in (".dcm", ".dicom"):
        return "this is not a DICOM file (no 'DICM' marker and no readable DICOM data)"
    return f"this is not a supported image (expected {SUPPORTED_FORMATS_TEXT})"


def _decode_dicom(data: bytes, frame: int) -> _Decoded:
    result = dicom.read_dicom(data, frame=frame, check_size=check_geometry)
    return _Decoded(result.pixels, result.n_frames, result.scale, result.metadata, result.notes)


def _decode_raster(data: bytes, fmt: str, frame: int) -> _Decoded:
    name = _PILLOW_FORMAT[fmt]
    try:
        im = _pillow_open(data, name)
        n_frames = int(getattr(im, "n_frames", 1) or 1)
        dicom.check_frame_index(frame, n_frames)
        if frame:
            im.seek(frame)
        check_geometry(im.width, im.height)
        deep_colour = _is_deep_colour(im)
        im.load()  # full decode; raises on truncated data (see module docstring)
        pixels = _decode_deep_colour(data, frame, n_frames) if deep_colour else _pillow_array(im)
    except _Unusable:
        raise
    except Image.DecompressionBombError:
        raise _Unusable(f"the image is too large (over {MAX_PIXELS:,} pixels)") from None
    except UnidentifiedImageError:
        raise _Unusable(
            f"the file is truncated or corrupt (the {name} header cannot be read)"
        ) from None
    except (OSError, SyntaxError, ValueError) as exc:
        raise _Unusable(_corrupt_reason(name, exc)) from None
    return _Decoded(pixels, n_frames)


def _pillow_open(data: bytes, pillow_format: str) -> Image.Image:
    """Parse the header only; Pillow's warnings (e.g. its lower pixel-count threshold,
    which MAX_PIXELS supersedes, or damaged EXIF) are logged rather than shown."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        im = Image.open(BytesIO(data), formats=[pillow_format])
    for warning in caught:
        logger.debug("Pillow: %s", warning.message)
    return im


def _corrupt_reason(pillow_format: str, exc: BaseException) -> str:
    text = str(exc)
    if "truncated" in text or "ended" in text:
        return f"the file is truncated or corrupt ({pillow_format} data ended early)"
    return f"the file is truncated or corrupt ({pillow_format} data is damaged: {_short(exc)})"


def _is_deep_colour(im: Image.Image) -> bool:
    """True for 16-bit-per-sample RGB(A), which Pillow would cut to 8 bits on load."""
    if im.mode not in ("RGB", "RGBA"):
        return False
    return any(";16" in str(tile.args) for tile in im.tile)


def _decode_deep_colour(data: bytes, frame: int, n_frames: int) -> np.ndarray:
    """Decode 16-bit colour PNG/TIFF with OpenCV, keeping all bits; returns RGB(A)."""
    buf = np.frombuffer(data, np.uint8)
    if n_frames == 1:
        bgr = cv2.imdecode(buf, cv2.IMREAD_UNCHANGED)
    else:
        ok, pages = cv2.imdecodemulti(buf, cv2.IMREAD_UNCHANGED)
        bgr = pages[frame] if ok and frame < len(pages) else None
    if bgr is None:
        raise _Unusable("the file is truncated or corrupt (16-bit colour data cannot be decoded)")
    if bgr.ndim == 3 and bgr.shape[2] in (3, 4):
        order = [2, 1, 0, 3][: bgr.shape[2]]
        return bgr[..., order]
    return bgr


def _pillow_array(im: Image.Image) -> np.ndarray:
    """Pillow image -> array in a layout `to_rgb8` understands."""
    mode = im.mode
    if mode == "P":
        im = im.convert("RGBA" if "transparency" in im.info else "RGB")
    elif mode == "PA":
        im = im.convert("RGBA")
    elif mode == "1":
        im = im.convert("L")
    elif mode == "RGBa":
        im = im.convert("RGBA")
    elif mode not in ("L", "LA", "RGB", "RGBA", "I", "F") and not mode.startswith("I;16"):
        im = im.convert("RGB")  # CMYK, YCbCr, LAB, HSV, RGBX, La ...
    return np.asarray(im)


def _normalise(pixels: np.ndarray) -> np.ndarray:
    try:
        rgb = to_rgb8(pixels)
    except ValueError as exc:
        raise _Unusable(f"the image cannot be used ({exc})") from None
    rgb.flags.writeable = False
    return rgb


def check_geometry(width: int, height: int) -> None:
    """Refuses frames that cannot be a scan, from their header size, before any decoding.

    Raises:
        ValueError: zero, too small, too large (`MAX_PIXELS`) or too elongated (`MAX_ASPECT`).
    """
    if width <= 0 or height <= 0:
        raise _Unusable(f"the image has zero width or height ({width} x {height} pixels)")
    if width * height > MAX_PIXELS:
        raise _Unusable(
            f"the image is too large ({width} x {height} pixels; the limit is {MAX_PIXELS:,} pixels)"
        )
    if max(width, height) > MAX_ASPECT * min(width, height):
        raise _Unusable(
            f"the image is {width} x {height} pixels: far too long and narrow for an "
            f"ultrasound frame (more than {MAX_ASPECT:.0f}:1)"
        )
    if min(width, height) < MIN_SIDE:
        raise _Unusable(
            f"the image is too small to analyse ({width} x {height} pixels; "
            f"at least {MIN_SIDE} pixels are needed on each side)"
        )


def _channels_last(a: np.ndarray) -> np.ndarray:
    if a.ndim == 2:
        a = a[:, :, np.newaxis]
    if a.ndim != 3 or a.shape[2] not in (1, 2, 3, 4):
        raise ValueError(
            f"expected an H x W or H x W x C array with C = 1 to 4, got shape {a.shape}"
        )
    if a.shape[0] == 0 or a.shape[1] == 0:
        raise ValueError(f"the image has zero width or height (shape {a.shape})")
    return a


def _finite(a: np.ndarray) -> np.ndarray:
    """Replace NaN by the finite minimum and +/-inf by the finite maximum/minimum."""
    ok = np.isfinite(a)
    if ok.all():
        return a
    if not ok.any():
        return np.zeros_like(a)
    lo, hi = a[ok].min(), a[ok].max()
    return np.nan_to_num(a, nan=lo, posinf=hi, neginf=lo)


def _composite_on_black(a: np.ndarray) -> np.ndarray:
    """Drop the last (alpha) channel after multiplying the colour by it; keeps the dtype."""
    colour, alpha = a[..., :-1], a[..., -1:]
    if a.dtype.kind == "f":
        full = 1.0 if alpha.max() <= 1.0 else 255.0
    else:
        full = float(np.iinfo(a.dtype).max)
    if np.all(alpha == full):
        return colour
    weight = np.clip(alpha.astype(np.float64) / full, 0.0, 1.0)
    mixed = colour * weight
    return mixed.astype(a.dtype) if a.dtype.kind == "f" else np.rint(mixed).astype(a.dtype)


def _scale_to_uint8(a: np.ndarray) -> np.ndarray:
    if a.dtype == np.uint8:
        return a
    if a.dtype.kind == "f":
        lo, hi = float(a.min()), float(a.max())
        if lo >= 0.0 and hi <= 1.0:
            return np.rint(a * 255.0).astype(np.uint8)
        if lo >= 0.0 and hi <= 255.0:
            return np.rint(a).astype(np.uint8)
    return _min_max_to_uint8(a)


def _min_max_to_uint8(a: np.ndarray) -> np.ndarray:
    work = np.float32 if a.dtype.itemsize <= 2 else np.float64
    lo, hi = a.min(), a.max()
    if hi == lo:
        return np.zeros(a.shape, np.uint8)
    span = float(hi) - float(lo)
    scaled = (a.astype(work) - work(lo)) * work(255.0 / span)
    return np.rint(np.clip(scaled, 0, 255)).astype(np.uint8)


def _load_error(p: Path, reason: str) -> ImageLoadError:
    return ImageLoadError(f"{p.name or p}: {reason}", path=p, reason=reason)


def _human_bytes(n: int) -> str:
    for unit, size in (("GiB", 1024**3), ("MiB", 1024**2), ("KiB", 1024)):
        if n >= size:
            return f"{n / size:.1f} {unit}"
    return f"{n} bytes"


def _short(exc: BaseException, limit: int = 160) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text if len(text) <= limit else text[: limit - 3] + "..."
