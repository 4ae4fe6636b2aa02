"""Opening PNG/JPEG/BMP/TIFF files and in-memory arrays, and the broken-file corpus.

All files are generated in tmp_path from synthetic speckle; nothing is shipped.
"""

from __future__ import annotations

import hashlib
import struct
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from PIL import Image

from thyroid_desktop.core.io import images
from thyroid_desktop.core.io.images import (
    MAX_PIXELS,
    SUPPORTED_SUFFIXES,
    ImageLoadError,
    UltrasoundImage,
    detect_format,
    from_array,
    open_image,
    to_rgb8,
)


def speckle(shape: tuple[int, ...], seed: int = 0, dtype=np.uint8, high: int = 256) -> np.ndarray:
    """Rayleigh-like speckle, the texture of B-mode ultrasound."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.rayleigh(scale=high / 5, size=shape), 0, high - 1).astype(dtype)


def cv2_write(path: Path, rgb: np.ndarray) -> Path:
    """Write an RGB(A)/grey array with OpenCV (which expects BGR(A))."""
    if rgb.ndim == 3:
        code = cv2.COLOR_RGB2BGR if rgb.shape[2] == 3 else cv2.COLOR_RGBA2BGRA
        rgb = cv2.cvtColor(rgb, code)
    assert cv2.imwrite(str(path), rgb)
    return path


def png_chunk(kind: bytes, body: bytes) -> bytes:
    crc = zlib.crc32(kind + body) & 0xFFFFFFFF
    return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", crc)


def forged_png(width: int, height: int) -> bytes:
    """A PNG whose header claims width x height but holds almost no data."""
    header = struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(b"\x00" * 16))
        + png_chunk(b"IEND", b"")
    )


def expect_error(path: Path, phrase: str, **kwargs) -> ImageLoadError:
    with pytest.raises(ImageLoadError) as info:
        open_image(path, **kwargs)
    message = str(info.value)
    assert message.startswith(path.name + ":"), message
    assert phrase in message.lower(), message
    return info.value


def assert_well_formed(img: UltrasoundImage, h: int, w: int) -> None:
    assert img.pixels.shape == (h, w, 3)
    assert img.pixels.dtype == np.uint8
    assert img.pixels.flags.c_contiguous
    assert not img.pixels.flags.writeable
    assert (img.height, img.width) == (h, w)


# ----------------------------------------------------------------------------- 8-bit files

LOSSLESS = [".png", ".bmp", ".tif"]


@pytest.mark.parametrize("suffix", LOSSLESS)
def test_grey_lossless_round_trip(tmp_path, suffix):
    grey = speckle((40, 56))
    path = cv2_write(tmp_path / f"grey{suffix}", grey)

    img = open_image(path)

    assert_well_formed(img, 40, 56)
    for channel in range(3):
        np.testing.assert_array_equal(img.pixels[..., channel], grey)
    assert img.spacing_mm is None and img.metadata == {}
    assert img.source == path and img.n_frames == 1 and img.frame_index == 0


@pytest.mark.parametrize("suffix", LOSSLESS)
def test_rgb_lossless_keeps_channel_order(tmp_path, suffix):
    rgb = speckle((40, 56, 3))
    path = cv2_write(tmp_path / f"rgb{suffix}", rgb)

    np.testing.assert_array_equal(open_image(path).pixels, rgb)


@pytest.mark.parametrize("suffix", [".png", ".tif"])
def test_rgba_opaque_drops_alpha(tmp_path, suffix):
    rgba = speckle((40, 56, 4))
    rgba[..., 3] = 255
    path = cv2_write(tmp_path / f"rgba{suffix}", rgba)

    np.testing.assert_array_equal(open_image(path).pixels, rgba[..., :3])


def test_rgba_transparent_pixels_become_black(tmp_path):
    rgba = np.full((40, 48, 4), 200, np.uint8)
    rgba[..., 3] = 255
    rgba[:5, :, 3] = 0
    path = tmp_path / "half_transparent.png"
    Image.fromarray(rgba, "RGBA").save(path)

    img = open_image(path)

    assert (img.pixels[:5] == 0).all()
    assert (img.pixels[5:] == 200).all()


@pytest.mark.parametrize("mode", ["L", "RGB"])
def test_jpeg_opens_close_to_original(tmp_path, mode):
    yy, xx = np.mgrid[0:40, 0:56]
    arr = (
        (xx * 4).astype(np.uint8)
        if mode == "L"
        else np.stack([xx * 4, yy * 5, xx + yy], -1).astype(np.uint8)
    )
    path = tmp_path / "scan.jpg"
    Image.fromarray(arr).save(path, quality=95)

    img = open_image(path)

    assert_well_formed(img, 40, 56)
    expected = to_rgb8(arr)
    assert np.abs(img.pixels.astype(int) - expected).mean() < 3


def test_palette_png(tmp_path):
    grey = speckle((40, 60))
    path = tmp_path / "palette.png"
    Image.fromarray(grey).convert("P").save(path)

    assert_well_formed(open_image(path), 40, 60)


def test_sha256_is_of_file_bytes(tmp_path):
    path = cv2_write(tmp_path / "hash.png", speckle((40, 60)))

    assert open_image(path).sha256 == hashlib.sha256(path.read_bytes()).hexdigest()


# ----------------------------------------------------------------------------- 16-bit files


@pytest.mark.parametrize("suffix", [".png", ".tif"])
@pytest.mark.parametrize("channels", [1, 3, 4])
def test_16bit_scaled_like_from_array(tmp_path, suffix, channels):
    shape = (40, 56) if channels == 1 else (40, 56, channels)
    arr = speckle(shape, dtype=np.uint16, high=4096) + 100
    if channels == 4:
        arr[..., 3] = 65535  # opaque
    path = cv2_write(tmp_path / f"deep{channels}{suffix}", arr)

    img = open_image(path)

    np.testing.assert_array_equal(img.pixels, to_rgb8(arr))
    assert img.pixels.min() == 0 and img.pixels.max() == 255


def test_16bit_constant_image_is_black(tmp_path):
    path = cv2_write(tmp_path / "flat16.png", np.full((32, 32), 1234, np.uint16))

    assert (open_image(path).pixels == 0).all()


def test_16bit_colour_multipage_tiff_frame(tmp_path):
    pages = [speckle((40, 48, 3), seed=i, dtype=np.uint16, high=4096) for i in range(3)]
    path = tmp_path / "deep_pages.tif"
    assert cv2.imwritemulti(str(path), [cv2.cvtColor(p, cv2.COLOR_RGB2BGR) for p in pages])

    img = open_image(path, frame=1)

    assert img.n_frames == 3
    np.testing.assert_array_equal(img.pixels, to_rgb8(pages[1]))


# ----------------------------------------------------------------------------- detection


def test_png_named_jpg_opens(tmp_path):
    grey = speckle((40, 60))
    path = tmp_path / "actually_png.jpg"
    path.write_bytes(cv2.imencode(".png", grey)[1].tobytes())

    np.testing.assert_array_equal(open_image(path).pixels[..., 0], grey)


def test_png_without_suffix_opens(tmp_path):
    path = tmp_path / "export_0001"
    path.write_bytes(cv2.imencode(".png", speckle((40, 60)))[1].tobytes())

    assert open_image(str(path)).width == 60


def test_detect_format():
    assert detect_format(cv2.imencode(".png", speckle((4, 4)))[1].tobytes()) == "png"
    assert detect_format(cv2.imencode(".jpg", speckle((4, 4)))[1].tobytes()) == "jpeg"
    assert detect_format(cv2.imencode(".bmp", speckle((4, 4)))[1].tobytes()) == "bmp"
    assert detect_format(cv2.imencode(".tif", speckle((4, 4)))[1].tobytes()) == "tiff"
    assert detect_format(b"\x00" * 128 + b"DICM") == "dicom"
    assert detect_format(b"BMW service record") is None
    assert detect_format(b"hello") is None


def test_supported_suffixes():
    assert {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm", ".dicom"} == set(
        SUPPORTED_SUFFIXES
    )


def test_multipage_tiff_frames(tmp_path):
    pages = [Image.fromarray(np.full((40, 48), 40 * i, np.uint8)) for i in range(3)]
    path = tmp_path / "pages.tif"
    pages[0].save(path, save_all=True, append_images=pages[1:])

    img = open_image(path, frame=2)

    assert img.n_frames == 3 and img.frame_index == 2
    assert (img.pixels == 80).all()
    expect_error(path, "frame 3 does not exist", frame=3)


# ----------------------------------------------------------------------------- broken corpus


def test_text_named_png(tmp_path):
    path = tmp_path / "notes.png"
    path.write_text("not an image\n")
    expect_error(path, "not a supported image")


def test_gif_is_named(tmp_path):
    path = tmp_path / "loop.gif"
    Image.fromarray(speckle((8, 8))).save(path, format="GIF")
    expect_error(path, "gif image")


def test_file_not_found(tmp_path):
    err = expect_error(tmp_path / "missing.png", "file not found")
    assert err.path == tmp_path / "missing.png"
    assert err.reason == "file not found"


def test_directory(tmp_path):
    folder = tmp_path / "study.png"
    folder.mkdir()
    expect_error(folder, "folder")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.png"
    path.write_bytes(b"")
    expect_error(path, "empty (0 bytes)")


def test_file_over_byte_limit(tmp_path, monkeypatch):
    path = cv2_write(tmp_path / "big.png", speckle((40, 60)))
    monkeypatch.setattr(images, "MAX_FILE_BYTES", 100)
    expect_error(path, "too large")


@pytest.mark.parametrize("size", [(12_000, 9_000), (20_000, 20_000)])
def test_dimensions_over_max_pixels_refused_from_header(tmp_path, size):
    path = tmp_path / "huge.png"
    path.write_bytes(forged_png(*size))
    assert size[0] * size[1] > MAX_PIXELS
    expect_error(path, "too large")


def test_max_pixels_is_read_at_call_time(tmp_path, monkeypatch):
    path = cv2_write(tmp_path / "small.png", speckle((40, 60)))
    monkeypatch.setattr(images, "MAX_PIXELS", 500)
    expect_error(path, "too large")


def test_zero_width_png(tmp_path):
    path = tmp_path / "zero.png"
    path.write_bytes(forged_png(0, 10))
    expect_error(path, "corrupt")


@pytest.mark.parametrize("suffix", [".png", ".jpg", ".bmp", ".tif"])
def test_cut_in_half(tmp_path, suffix):
    data = cv2.imencode(suffix, speckle((64, 80, 3)))[1].tobytes()
    path = tmp_path / f"cut{suffix}"
    path.write_bytes(data[: len(data) // 2])
    expect_error(path, "truncated or corrupt")


def test_truncated_jpeg_is_not_shown_half_grey(tmp_path):
    data = cv2.imencode(".jpg", speckle((64, 80)))[1].tobytes()
    path = tmp_path / "nearly.jpg"
    path.write_bytes(data[: int(len(data) * 0.9)])
    expect_error(path, "ended early")


def test_pillow_tiff_cut_in_half(tmp_path):
    path = tmp_path / "pil.tif"
    Image.fromarray(speckle((64, 80))).save(path)
    path.write_bytes(path.read_bytes()[: path.stat().st_size // 2])
    expect_error(path, "truncated")


def test_png_with_damaged_data(tmp_path):
    data = bytearray(cv2.imencode(".png", speckle((64, 80)))[1].tobytes())
    data[100] ^= 0xFF
    path = tmp_path / "damaged.png"
    path.write_bytes(bytes(data))
    expect_error(path, "corrupt")


def test_unexpected_exception_becomes_image_load_error(tmp_path, monkeypatch):
    path = cv2_write(tmp_path / "ok.png", speckle((8, 8)))

    def boom(*args, **kwargs):
        raise RuntimeError("decoder exploded")

    monkeypatch.setattr(images, "_decode_raster", boom)
    err = expect_error(path, "decoder exploded")
    assert isinstance(err.__cause__, RuntimeError)


def test_keyboard_interrupt_is_not_swallowed(tmp_path, monkeypatch):
    path = cv2_write(tmp_path / "ok.png", speckle((8, 8)))

    def interrupt(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(images, "_decode_raster", interrupt)
    with pytest.raises(KeyboardInterrupt):
        open_image(path)


# ----------------------------------------------------------------------------- to_rgb8


def test_to_rgb8_grey_shapes():
    grey = speckle((4, 5))
    for arr in (grey, grey[..., None]):
        out = to_rgb8(arr)
        assert out.shape == (4, 5, 3) and out.dtype == np.uint8
        np.testing.assert_array_equal(out[..., 1], grey)


def test_to_rgb8_uint16_min_max():
    arr = np.array([[100, 200], [300, 1100]], np.uint16)
    np.testing.assert_array_equal(to_rgb8(arr)[..., 0], [[0, 26], [51, 255]])


@pytest.mark.parametrize("dtype", [np.uint16, np.int16, np.int32, np.float32])
def test_to_rgb8_constant_non_uint8_is_black(dtype):
    assert (to_rgb8(np.full((3, 3), 7000, dtype)) == 0).all()


def test_to_rgb8_uint8_untouched():
    rgb = speckle((4, 5, 3))
    out = to_rgb8(rgb)
    np.testing.assert_array_equal(out, rgb)
    assert out.flags.c_contiguous


def test_to_rgb8_floats():
    np.testing.assert_array_equal(to_rgb8(np.array([[0.0, 0.5, 1.0]]))[..., 0], [[0, 128, 255]])
    np.testing.assert_array_equal(to_rgb8(np.array([[0.0, 12.4, 200.0]]))[..., 0], [[0, 12, 200]])
    np.testing.assert_array_equal(to_rgb8(np.array([[-1.0, 0.0, 1.0]]))[..., 0], [[0, 128, 255]])
    np.testing.assert_array_equal(
        to_rgb8(np.array([[np.nan, 0.0, np.inf, 1.0]]))[..., 0], [[0, 0, 255, 255]]
    )
    assert (to_rgb8(np.full((2, 2), np.nan)) == 0).all()


def test_to_rgb8_rgba_and_grey_alpha_composite_on_black():
    rgba = np.zeros((1, 2, 4), np.uint8)
    rgba[..., :3] = 200
    rgba[0, 0, 3] = 255
    rgba[0, 1, 3] = 0
    np.testing.assert_array_equal(to_rgb8(rgba)[0], [[200, 200, 200], [0, 0, 0]])
    grey_alpha = np.array([[[100, 255], [100, 128]]], np.uint8)
    np.testing.assert_array_equal(to_rgb8(grey_alpha)[0, :, 0], [100, 50])


def test_to_rgb8_bool():
    np.testing.assert_array_equal(to_rgb8(np.array([[True, False]]))[0, :, 0], [255, 0])


@pytest.mark.parametrize(
    "arr",
    [
        np.zeros((3, 4, 5)),
        np.zeros((2, 3, 4, 3)),
        np.zeros(5),
        np.zeros((0, 4)),
        np.zeros((2, 2), complex),
    ],
)
def test_to_rgb8_rejects_bad_input(arr):
    with pytest.raises(ValueError):
        to_rgb8(arr)


# ----------------------------------------------------------------------------- from_array


def test_from_array_normalises_and_hashes_pixels():
    arr = speckle((40, 60), dtype=np.uint16, high=4096)

    img = from_array(arr, spacing_mm=(0.1, 0.2), metadata={"Modality": "US"})

    assert_well_formed(img, 40, 60)
    np.testing.assert_array_equal(img.pixels, to_rgb8(arr))
    assert img.sha256 == hashlib.sha256(img.pixels.tobytes()).hexdigest()
    assert img.source is None
    assert img.spacing_mm == (0.1, 0.2)
    assert img.scale.source == "given with the image"
    assert img.metadata == {"Modality": "US"}


def test_from_array_does_not_alias_input():
    arr = speckle((40, 40, 3))
    img = from_array(arr)
    arr[:] = 0
    assert img.pixels.any()
    assert arr.flags.writeable


def test_from_array_rejects_unusable_arrays():
    with pytest.raises(ImageLoadError, match="in-memory image"):
        from_array(np.zeros((0, 5)))


def test_from_array_rejects_bad_spacing():
    with pytest.raises(ValueError):
        from_array(speckle((40, 40)), spacing_mm=(0.0, 0.1))
    with pytest.raises(ValueError):
        from_array(speckle((40, 40)), spacing_mm=(float("nan"), 0.1))


def test_from_array_takes_a_scale_with_its_source():
    from thyroid_desktop.core.io.scale import Scale, ScaleSource

    scale = Scale(0.2, 0.1, ScaleSource.DICOM_REGIONS)
    assert from_array(speckle((40, 40)), scale=scale).scale == scale
    assert not from_array(speckle((40, 40))).scale.calibrated
    with pytest.raises(ValueError, match="not both"):
        from_array(speckle((40, 40)), spacing_mm=(0.1, 0.1), scale=scale)


def test_from_array_matches_file(tmp_path):
    arr = speckle((40, 60), dtype=np.uint16, high=4096)
    path = cv2_write(tmp_path / "same.png", arr)

    np.testing.assert_array_equal(open_image(path).pixels, from_array(arr).pixels)


# ----------------------------------------------------------------------------- the value type


def test_pixels_are_read_only(tmp_path):
    img = from_array(speckle((40, 50, 3)))
    with pytest.raises(ValueError):
        img.pixels[0, 0, 0] = 1


def test_direct_construction_copies_writable_pixels():
    px = speckle((4, 5, 3))
    img = UltrasoundImage(pixels=px, source=None, sha256="x", metadata={})
    assert not img.pixels.flags.writeable
    assert px.flags.writeable


def test_direct_construction_validates_shape():
    with pytest.raises(ValueError):
        UltrasoundImage(pixels=np.zeros((4, 5), np.uint8), source=None, sha256="x", metadata={})


def test_gray_matches_opencv():
    rgb = speckle((36, 37, 3))
    img = from_array(rgb)

    np.testing.assert_array_equal(img.gray, cv2.cvtColor(rgb, cv2.COLOR_RGB2GRAY))
    assert img.gray.shape == (36, 37) and not img.gray.flags.writeable


def test_frozen_and_hashable():
    img = from_array(speckle((40, 40)))
    with pytest.raises(AttributeError):
        img.sha256 = "changed"
    assert img == img and {img: 1}[img] == 1


@pytest.mark.parametrize(
    "shape,words",
    [
        ((1, 100_000), "long and narrow"),
        ((40, 900), "long and narrow"),
        ((20, 200), "too small"),
        ((31, 64), "too small"),
    ],
)
def test_odd_geometry_refused_with_a_clear_message(tmp_path, shape, words):
    path = tmp_path / "odd.png"
    assert cv2.imwrite(str(path), speckle(shape))
    with pytest.raises(ImageLoadError, match=words):
        open_image(path)
    with pytest.raises(ImageLoadError, match=words):
        from_array(speckle(shape))


def test_limits_of_geometry_are_accepted():
    assert from_array(speckle((32, 640))).width == 640  # 20:1, 32 px
