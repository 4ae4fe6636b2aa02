"""DICOM reading: synthetic ultrasound files built with pydicom, plus a broken-file corpus.

Every file is generated in tmp_path; no patient data. Each broken file has a test that
expects `ImageLoadError` with a clear phrase, in the spirit of pydicom's test corpus.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
import pytest
from PIL import Image
from pydicom.dataset import Dataset, FileMetaDataset
from pydicom.encaps import encapsulate
from pydicom.uid import (
    ExplicitVRLittleEndian,
    JPEGBaseline8Bit,
    UltrasoundImageStorage,
    generate_uid,
)

from thyroid_desktop.core.io import dicom
from thyroid_desktop.core.io.images import ImageLoadError, open_image, to_rgb8
from thyroid_desktop.core.io.scale import Scale, ScaleSource

US_MULTIFRAME_STORAGE = "1.2.840.10008.5.1.4.1.1.3.1"


# ----------------------------------------------------------------------------- builders


def speckle(shape: tuple[int, ...], seed: int = 0, dtype=np.uint8, high: int = 256) -> np.ndarray:
    """Rayleigh-like speckle, the texture of B-mode ultrasound."""
    rng = np.random.default_rng(seed)
    noise = rng.rayleigh(scale=high / 5, size=shape)
    return np.clip(noise, 0, high - 1).astype(dtype)


def smooth_rgb(h: int = 48, w: int = 64, shift: int = 0) -> np.ndarray:
    """Gentle colour gradients: survive JPEG chroma subsampling almost unchanged."""
    yy, xx = np.mgrid[0:h, 0:w]
    return (
        np.stack([xx * 3 + shift, yy * 4 + shift, (xx + yy) * 2], axis=-1)
        .clip(0, 255)
        .astype(np.uint8)
    )


def us_region(
    delta_x: float = 0.01,
    delta_y: float = 0.01,
    units: int = 3,
    spatial_format: int = 1,
    box: tuple[int, int, int, int] | None = (0, 0, 63, 47),
) -> Dataset:
    """One item of the Sequence of Ultrasound Regions (0018,6011)."""
    region = Dataset()
    region.RegionSpatialFormat = spatial_format
    region.RegionDataType = 1
    region.PhysicalUnitsXDirection = units
    region.PhysicalUnitsYDirection = units
    region.PhysicalDeltaX = delta_x
    region.PhysicalDeltaY = delta_y
    if box is not None:
        (
            region.RegionLocationMinX0,
            region.RegionLocationMinY0,
            region.RegionLocationMaxX1,
            region.RegionLocationMaxY1,
        ) = box
    return region


def make_dataset(
    frames: np.ndarray,
    photometric: str = "MONOCHROME2",
    *,
    bits_stored: int | None = None,
    regions: list[Dataset] | None = None,
    multiframe: bool = False,
    pixel_bytes: bytes | None = None,
) -> Dataset:
    """A synthetic ultrasound data set; `frames` is (n,)H x W(x 3) native pixels."""
    grey = photometric.startswith("MONOCHROME")
    shape = frames.shape[1:] if multiframe else frames.shape
    ds = Dataset()
    ds.SOPClassUID = US_MULTIFRAME_STORAGE if multiframe else UltrasoundImageStorage
    ds.SOPInstanceUID = generate_uid()
    ds.StudyInstanceUID = generate_uid()
    ds.Modality = "US"
    ds.PatientName = "Phantom^Thyroid"
    ds.PatientID = "SYNTH-0001"
    ds.StudyDate = "20240102"
    ds.Manufacturer = "Synthetic"
    ds.Rows, ds.Columns = shape[0], shape[1]
    ds.SamplesPerPixel = 1 if grey else 3
    ds.PhotometricInterpretation = photometric
    if not grey:
        ds.PlanarConfiguration = 0
    ds.BitsAllocated = frames.dtype.itemsize * 8
    ds.BitsStored = bits_stored or ds.BitsAllocated
    ds.HighBit = ds.BitsStored - 1
    ds.PixelRepresentation = 0
    if multiframe:
        ds.NumberOfFrames = frames.shape[0]
    if regions is not None:
        ds.SequenceOfUltrasoundRegions = regions
    ds.PixelData = frames.tobytes() if pixel_bytes is None else pixel_bytes
    return ds


def save(ds: Dataset, path: Path, syntax: str = ExplicitVRLittleEndian, meta: bool = True) -> Path:
    """Write a DICOM Part 10 file (or a bare data set when meta is False)."""
    if meta:
        fm = FileMetaDataset()
        fm.TransferSyntaxUID = syntax
        fm.MediaStorageSOPClassUID = ds.SOPClassUID
        fm.MediaStorageSOPInstanceUID = ds.SOPInstanceUID
        ds.file_meta = fm
        ds.save_as(path, enforce_file_format=True)
    else:
        ds.save_as(path, implicit_vr=False, little_endian=True)
    return path


def jpeg_bytes(arr: np.ndarray) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr).save(buf, format="JPEG", quality=95)
    return buf.getvalue()


def save_jpeg_dicom(
    frames: list[np.ndarray], path: Path, encoded: list[bytes] | None = None
) -> Path:
    """JPEG baseline (1.2.840.10008.1.2.4.50) DICOM; YBR_FULL_422 for colour."""
    stack = np.stack(frames)
    colour = stack.ndim == 4
    encoded = encoded or [jpeg_bytes(f) for f in frames]
    ds = make_dataset(
        stack,
        "YBR_FULL_422" if colour else "MONOCHROME2",
        multiframe=len(frames) > 1,
        pixel_bytes=encapsulate(encoded),
    )
    if len(frames) == 1:
        ds.Rows, ds.Columns = frames[0].shape[:2]
    ds["PixelData"].VR = "OB"
    ds["PixelData"].is_undefined_length = True
    return save(ds, path, syntax=JPEGBaseline8Bit)


def pillow_decode(data: bytes) -> np.ndarray:
    im = Image.open(io.BytesIO(data))
    return np.asarray(im.convert("RGB" if im.mode != "L" else "L"))


# ----------------------------------------------------------------------------- good files


def test_mono2_with_regions_gives_pixels_spacing_and_metadata(tmp_path):
    pixels = speckle((48, 64))
    path = save(make_dataset(pixels, regions=[us_region()]), tmp_path / "mono2.dcm")

    img = open_image(path)

    assert img.pixels.shape == (48, 64, 3)
    np.testing.assert_array_equal(img.pixels[..., 0], pixels)
    np.testing.assert_array_equal(img.pixels[..., 2], pixels)
    assert img.spacing_mm == pytest.approx((0.1, 0.1))
    assert img.scale.source is ScaleSource.DICOM_REGIONS
    assert img.n_frames == 1 and img.frame_index == 0
    assert img.metadata["Modality"] == "US"
    assert img.metadata["PatientName"] == "Phantom^Thyroid"
    assert img.metadata["StudyDate"] == "20240102"
    assert img.metadata["Manufacturer"] == "Synthetic"


def test_spacing_is_row_then_column(tmp_path):
    region = us_region(delta_x=0.01, delta_y=0.02)
    path = save(make_dataset(speckle((48, 64)), regions=[region]), tmp_path / "aniso.dcm")

    assert open_image(path).spacing_mm == pytest.approx((0.2, 0.1))


def test_dicom_detected_by_magic_without_suffix(tmp_path):
    path = save(make_dataset(speckle((48, 64))), tmp_path / "IM000001")

    assert open_image(path).width == 64


def test_multiframe_rgb_selects_frame(tmp_path):
    frames = np.stack([speckle((48, 64, 3), seed=i) for i in range(3)])
    path = save(make_dataset(frames, "RGB", multiframe=True), tmp_path / "cine.dcm")

    img = open_image(path, frame=1)

    assert img.n_frames == 3 and img.frame_index == 1
    np.testing.assert_array_equal(img.pixels, frames[1])


def test_ybr_full_is_converted_to_rgb(tmp_path):
    rgb = smooth_rgb()
    r, g, b = (rgb[..., i].astype(np.float64) for i in range(3))
    y = 0.299 * r + 0.587 * g + 0.114 * b
    cb = 128 - 0.168736 * r - 0.331264 * g + 0.5 * b
    cr = 128 + 0.5 * r - 0.418688 * g - 0.081312 * b
    ybr = np.rint(np.stack([y, cb, cr], axis=-1)).clip(0, 255).astype(np.uint8)
    path = save(make_dataset(ybr, "YBR_FULL"), tmp_path / "ybr.dcm")

    img = open_image(path)

    assert np.abs(img.pixels.astype(int) - rgb).max() <= 2


def test_monochrome1_is_inverted(tmp_path):
    pixels = speckle((48, 64))
    path = save(make_dataset(pixels, "MONOCHROME1"), tmp_path / "mono1.dcm")

    img = open_image(path)

    np.testing.assert_array_equal(img.pixels[..., 1], 255 - pixels)


def test_monochrome1_16bit_inverts_over_stored_bits(tmp_path):
    pixels = speckle((48, 64), dtype=np.uint16, high=4096)
    path = save(make_dataset(pixels, "MONOCHROME1", bits_stored=12), tmp_path / "mono1_16.dcm")

    img = open_image(path)

    np.testing.assert_array_equal(img.pixels, to_rgb8(4095 - pixels))


def test_16bit_monochrome2_scaled_min_to_max(tmp_path):
    pixels = speckle((48, 64), dtype=np.uint16, high=4096)
    path = save(make_dataset(pixels, bits_stored=12), tmp_path / "mono16.dcm")

    img = open_image(path)

    assert img.pixels.min() == 0 and img.pixels.max() == 255
    np.testing.assert_array_equal(img.pixels, to_rgb8(pixels))


def test_8bit_values_in_16bit_words_are_not_stretched(tmp_path):
    pixels = (speckle((48, 64)) // 2).astype(np.uint16)  # 0..127
    path = save(make_dataset(pixels, bits_stored=8), tmp_path / "b8in16.dcm")

    np.testing.assert_array_equal(open_image(path).pixels[..., 0], pixels)


def test_jpeg_baseline_colour_multiframe(tmp_path):
    frames = [smooth_rgb(shift=10 * i) for i in range(3)]
    encoded = [jpeg_bytes(f) for f in frames]
    path = save_jpeg_dicom(frames, tmp_path / "jpeg_ybr.dcm", encoded)

    img = open_image(path, frame=2)

    assert img.n_frames == 3
    assert np.abs(img.pixels.astype(int) - pillow_decode(encoded[2])).mean() < 1.0
    assert np.abs(img.pixels.astype(int) - frames[2]).mean() < 3.0


def test_jpeg_baseline_grey(tmp_path):
    frame = smooth_rgb()[..., 0]
    path = save_jpeg_dicom([frame], tmp_path / "jpeg_grey.dcm")

    img = open_image(path)

    assert np.abs(img.pixels[..., 0].astype(int) - frame).mean() < 2.0


def test_headerless_dicom_with_pixels_is_accepted(tmp_path):
    pixels = speckle((48, 64))
    path = save(make_dataset(pixels), tmp_path / "bare.dcm", meta=False)
    assert path.read_bytes()[128:132] != b"DICM"

    np.testing.assert_array_equal(open_image(path).pixels[..., 0], pixels)


def test_dicom_sha256_is_of_file_bytes(tmp_path):
    import hashlib

    path = save(make_dataset(speckle((48, 64))), tmp_path / "hash.dcm")

    assert open_image(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- calibration


def test_no_calibration_gives_none(tmp_path):
    path = save(make_dataset(speckle((48, 64))), tmp_path / "nocal.dcm")

    image = open_image(path)
    assert image.spacing_mm is None and image.scale == Scale.none()
    assert not image.scale.calibrated


@pytest.mark.parametrize("units", [0, 4, 7])  # none, seconds, cm/s
def test_non_cm_units_give_none(tmp_path, units):
    path = save(
        make_dataset(speckle((48, 64)), regions=[us_region(units=units)]), tmp_path / "u.dcm"
    )

    assert open_image(path).spacing_mm is None


@pytest.mark.parametrize("delta", [0.0, -0.01])
def test_non_positive_delta_gives_none(tmp_path, delta):
    region = us_region(delta_x=delta)
    path = save(make_dataset(speckle((48, 64)), regions=[region]), tmp_path / "d.dcm")

    assert open_image(path).spacing_mm is None


def test_missing_delta_gives_none():
    region = us_region()
    del region.PhysicalDeltaY
    ds = make_dataset(speckle((8, 8)), regions=[region])

    assert dicom.ultrasound_spacing_mm(ds) is None


def test_largest_2d_region_wins_and_spectral_is_ignored():
    small = us_region(delta_x=0.05, delta_y=0.05, box=(0, 0, 9, 9))
    large = us_region(delta_x=0.01, delta_y=0.01, box=(0, 0, 63, 47))
    doppler = us_region(delta_x=0.2, delta_y=0.2, spatial_format=3, box=(0, 0, 999, 999))
    ds = make_dataset(speckle((8, 8)), regions=[doppler, small, large])

    assert dicom.pixel_spacing_mm(ds) == pytest.approx((0.1, 0.1))


def test_first_2d_region_when_sizes_unknown():
    first = us_region(delta_x=0.02, delta_y=0.02, box=None)
    second = us_region(delta_x=0.01, delta_y=0.01, box=None)
    ds = make_dataset(speckle((8, 8)), regions=[first, second])

    assert dicom.ultrasound_spacing_mm(ds) == pytest.approx((0.2, 0.2))


def test_pixel_spacing_tag_is_the_fallback(tmp_path):
    ds = make_dataset(speckle((48, 64)))
    ds.PixelSpacing = [0.2, 0.3]
    path = save(ds, tmp_path / "ps.dcm")

    scale = open_image(path).scale
    assert scale.spacing_mm == pytest.approx((0.2, 0.3))
    assert scale.source is ScaleSource.DICOM_PIXEL_SPACING


def test_regions_win_over_pixel_spacing():
    ds = make_dataset(speckle((8, 8)), regions=[us_region()])
    ds.PixelSpacing = [0.5, 0.5]

    assert dicom.pixel_spacing_mm(ds) == pytest.approx((0.1, 0.1))
    assert dicom.pixel_scale(ds).source is ScaleSource.DICOM_REGIONS


# ----------------------------------------------------------------------------- broken corpus


def expect_error(path: Path, phrase: str, **kwargs) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        open_image(path, **kwargs)
    message = str(info.value)
    assert message.startswith(path.name + ":"), message
    assert phrase in message.lower(), message
    return info.value


def test_truncated_pixel_data(tmp_path):
    pixels = speckle((48, 64))
    ds = make_dataset(pixels, pixel_bytes=pixels.tobytes()[:1000])
    expect_error(save(ds, tmp_path / "short_pixels.dcm"), "truncated")


def test_file_cut_in_half(tmp_path):
    path = save(make_dataset(speckle((48, 64))), tmp_path / "cut.dcm")
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    expect_error(path, "truncated")


def test_missing_pixel_data(tmp_path):
    ds = make_dataset(speckle((48, 64)))
    del ds.PixelData
    expect_error(save(ds, tmp_path / "no_pixels.dcm"), "no pixel data")


def test_headerless_without_pixels_is_refused(tmp_path):
    ds = make_dataset(speckle((48, 64)))
    del ds.PixelData
    expect_error(save(ds, tmp_path / "bare_no_pixels.dcm", meta=False), "no pixel data")


@pytest.mark.parametrize("frame", [3, -1])
def test_bad_frame_index(tmp_path, frame):
    frames = np.stack([speckle((48, 64), seed=i) for i in range(3)])
    path = save(make_dataset(frames, multiframe=True), tmp_path / "frames.dcm")
    expect_error(path, f"frame {frame} does not exist", frame=frame)


def test_frame_index_on_single_frame(tmp_path):
    path = save(make_dataset(speckle((48, 64))), tmp_path / "single.dcm")
    expect_error(path, "has 1 frame", frame=1)


def test_multiframe_with_too_few_frames_of_data(tmp_path):
    frames = np.stack([speckle((48, 64), seed=i) for i in range(3)])
    ds = make_dataset(frames, multiframe=True, pixel_bytes=frames[:2].tobytes())
    expect_error(save(ds, tmp_path / "missing_frame.dcm"), "truncated", frame=2)


def test_truncated_jpeg_frame(tmp_path):
    frame = smooth_rgb()
    encoded = jpeg_bytes(frame)
    path = save_jpeg_dicom([frame], tmp_path / "jpeg_cut.dcm", [encoded[: len(encoded) // 2]])
    expect_error(path, "truncated")


def test_zero_rows(tmp_path):
    ds = make_dataset(speckle((48, 64)))
    ds.Rows = 0
    expect_error(save(ds, tmp_path / "zero.dcm"), "zero width or height")


def test_missing_rows(tmp_path):
    ds = make_dataset(speckle((48, 64)))
    del ds.Rows
    expect_error(save(ds, tmp_path / "norows.dcm"), "rows/columns missing")


def test_too_large_is_refused_before_decoding(tmp_path):
    ds = make_dataset(speckle((48, 64)))
    ds.Rows, ds.Columns = 20000, 20000
    expect_error(save(ds, tmp_path / "huge.dcm"), "too large")


def test_unsupported_photometric(tmp_path):
    ds = make_dataset(speckle((48, 64, 3)), "RGB")
    ds.PhotometricInterpretation = "CMYK"
    expect_error(save(ds, tmp_path / "cmyk.dcm"), "photometric interpretation")


def test_text_named_dcm_is_not_dicom(tmp_path):
    path = tmp_path / "notes.dcm"
    path.write_text("Patient seen, nodule 12 mm, see report.\n")
    expect_error(path, "not a dicom file")


def test_preamble_only_is_corrupt(tmp_path):
    path = tmp_path / "preamble.dcm"
    path.write_bytes(b"\x00" * 128 + b"DICM" + b"\x02\x00\x10\x00UI")
    err = expect_error(path, "dicom")
    assert err.path == path


def test_missing_photometric_interpretation_opens_with_a_note(tmp_path):
    ds = make_dataset(speckle((48, 64)))
    del ds.PhotometricInterpretation
    image = open_image(save(ds, tmp_path / "no_pi.dcm"))
    assert len(image.notes) == 1
    assert "PhotometricInterpretation" in image.notes[0] and "MONOCHROME2" in image.notes[0]


def test_stated_photometric_interpretation_gives_no_note(tmp_path):
    assert open_image(save(make_dataset(speckle((48, 64))), tmp_path / "pi.dcm")).notes == ()


def test_tiff_magic_in_the_preamble_does_not_hide_dicom(tmp_path):
    path = save(make_dataset(speckle((48, 64))), tmp_path / "dual.dcm")
    data = bytearray(path.read_bytes())
    data[:4] = b"II*\x00"  # a DICOM-TIFF dual-format preamble
    path.write_bytes(bytes(data))
    image = open_image(path)
    assert image.metadata["Modality"] == "US" and image.width == 64


def test_elongated_dicom_refused_before_decoding(tmp_path):
    ds = make_dataset(speckle((40, 1000)))
    with pytest.raises(ImageLoadError, match="long and narrow"):
        open_image(save(ds, tmp_path / "strip.dcm"))


def test_unknown_transfer_syntax_is_named(tmp_path):
    path = save(make_dataset(speckle((48, 64))), tmp_path / "ts.dcm")
    path.write_bytes(path.read_bytes().replace(b"1.2.840.10008.1.2.1", b"1.2.840.10008.9.9.9", 1))
    with pytest.raises(ImageLoadError, match="unknown transfer syntax"):
        open_image(path)


@pytest.mark.parametrize("share", [0.3, 0.9, 0.99])
def test_a_compressed_cine_cut_inside_its_pixel_data_is_called_truncated(tmp_path, share):
    """Cut inside its encapsulated (undefined-length) pixel data, pydicom keeps only the
    file meta header: the file is truncated, not "no Pixel Data" (found in a trial)."""
    from tests.conftest import write_cine_dicom

    whole = write_cine_dicom(tmp_path / "cine.dcm")
    cut = tmp_path / "cut.dcm"
    cut.write_bytes(whole.read_bytes()[: int(whole.stat().st_size * share)])
    expect_error(cut, "truncated")
