"""Fuzzing: a few hundred mutated PNG, JPEG, TIFF, BMP and DICOM files (bit flips,
truncations, header edits) go through ``predict`` (open_image + auto-detect + the models) in a
child process with a memory limit. No crash, no traceback, one answer per file, each within a
second or two."""

from __future__ import annotations

import json
import os
import random
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import cv2
import numpy as np
import pytest
from pydicom.dataset import FileMetaDataset
from pydicom.uid import ExplicitVRLittleEndian, JPEGBaseline8Bit, UltrasoundImageStorage

from thyroid_desktop.core.io.phantom import make_phantom

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="uses rlimit")

MUTANTS_PER_SEED = 40
#: Address-space limit of the child: TensorFlow and both models fit in it, a 47 GiB crop not.
MEMORY_LIMIT_BYTES = 4 * 1024**3
#: Seconds one file may take (the machine may be busy in CI; typical is 0.05-0.2 s).
MAX_SECONDS_PER_FILE = 5.0
EXTREME_SIDES = [0, 1, 31, 32, 33, 65535, 100_000, 2**31 - 1, 2**32 - 1]


def _dicom_bytes(pixels: np.ndarray, tmp: Path, jpeg: bool, rng: random.Random) -> bytes:
    from pydicom.dataset import Dataset
    from pydicom.encaps import encapsulate

    grey = cv2.cvtColor(pixels, cv2.COLOR_RGB2GRAY)
    ds = Dataset()
    ds.file_meta = FileMetaDataset()
    ds.file_meta.MediaStorageSOPClassUID = UltrasoundImageStorage
    ds.file_meta.MediaStorageSOPInstanceUID = "1.2.3.4"
    ds.SOPClassUID = UltrasoundImageStorage
    ds.SOPInstanceUID = "1.2.3.4"
    ds.Modality = "US"
    ds.Rows, ds.Columns = grey.shape
    ds.SamplesPerPixel = 1
    ds.PhotometricInterpretation = "MONOCHROME2"
    ds.BitsAllocated, ds.BitsStored, ds.HighBit, ds.PixelRepresentation = 8, 8, 7, 0
    if jpeg:
        ds.file_meta.TransferSyntaxUID = JPEGBaseline8Bit
        ds.PixelData = encapsulate([cv2.imencode(".jpg", grey)[1].tobytes()])
        ds["PixelData"].VR = "OB"
    else:
        ds.file_meta.TransferSyntaxUID = ExplicitVRLittleEndian
        ds.PixelData = grey.tobytes()
    path = tmp / f"seed-{rng.random()}.dcm"
    ds.save_as(path, enforce_file_format=True)
    return path.read_bytes()


def _seeds(tmp: Path, rng: random.Random) -> dict[str, bytes]:
    pixels = np.asarray(make_phantom(seed=3).pixels)
    small = cv2.resize(pixels, (240, 180), interpolation=cv2.INTER_AREA)
    bgr = cv2.cvtColor(small, cv2.COLOR_RGB2BGR)
    return {
        "png": cv2.imencode(".png", bgr)[1].tobytes(),
        "jpg": cv2.imencode(".jpg", bgr)[1].tobytes(),
        "tif": cv2.imencode(".tif", bgr)[1].tobytes(),
        "bmp": cv2.imencode(".bmp", bgr)[1].tobytes(),
        "dcm": _dicom_bytes(small, tmp, jpeg=False, rng=rng),
        "jpeg.dcm": _dicom_bytes(small, tmp, jpeg=True, rng=rng),
    }


def _flip_bits(data: bytes, rng: random.Random) -> bytes:
    out = bytearray(data)
    for _ in range(rng.randint(1, 32)):
        i = rng.randrange(len(out))
        out[i] ^= 1 << rng.randrange(8)
    return bytes(out)


def _truncate(data: bytes, rng: random.Random) -> bytes:
    return data[: rng.randrange(1, len(data))]


def _edit_header(kind: str, data: bytes, rng: random.Random) -> bytes:
    """Puts extreme values where the format keeps the image size."""
    out = bytearray(data)
    side = rng.choice(EXTREME_SIDES)
    if kind == "png":  # IHDR width/height, with a valid CRC so the decoder believes it
        field = rng.choice([16, 20])
        out[field : field + 4] = struct.pack(">I", side & 0xFFFFFFFF)
        out[29:33] = struct.pack(">I", zlib.crc32(bytes(out[12:29])) & 0xFFFFFFFF)
    elif kind == "bmp":
        field = rng.choice([18, 22])
        out[field : field + 4] = struct.pack("<i", min(side, 2**31 - 1))
    elif kind == "jpg":
        sof = data.find(b"\xff\xc0")
        if sof > 0:
            field = sof + 5 + rng.choice([0, 2])
            out[field : field + 2] = struct.pack(">H", side & 0xFFFF)
    elif kind.endswith("dcm"):
        tag = rng.choice([b"\x28\x00\x10\x00", b"\x28\x00\x11\x00"])  # Rows, Columns (US)
        at = data.find(tag)
        if at > 0:
            out[at + 8 : at + 10] = struct.pack("<H", side & 0xFFFF)
    elif kind == "tif":  # ImageWidth / ImageLength entries of the first IFD
        for tag in (256, 257):
            at = data.find(struct.pack("<H", tag), 8)
            if at > 0 and rng.random() < 0.7:
                out[at + 8 : at + 12] = struct.pack("<I", side & 0xFFFFFFFF)
    return bytes(out)


def _mutants(tmp: Path) -> list[Path]:
    rng = random.Random(20261129)
    files = []
    for kind, data in _seeds(tmp, rng).items():
        for i in range(MUTANTS_PER_SEED):
            how = ("flip", "truncate", "header")[i % 3]
            if how == "flip":
                mutated = _flip_bits(data, rng)
            elif how == "truncate":
                mutated = _truncate(data, rng)
            else:
                mutated = _edit_header(kind, data, rng)
            path = tmp / f"{kind.replace('.', '_')}_{how}_{i:02d}.{kind.split('.')[-1]}"
            path.write_bytes(mutated)
            files.append(path)
    return files


def _limit_memory() -> None:
    import resource

    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_LIMIT_BYTES, MEMORY_LIMIT_BYTES))


def test_mutated_files_never_crash_predict(tmp_path):
    files = _mutants(tmp_path)
    assert len(files) >= 200
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    proc = subprocess.Popen(
        [sys.executable, "-m", "thyroid_desktop", "predict", "--json", *map(str, files)],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        preexec_fn=_limit_memory,
    )
    records, gaps, last = [], [], None
    assert proc.stdout is not None
    for line in proc.stdout:  # one line per file, flushed as soon as it is answered
        now = time.perf_counter()
        if last is not None:
            gaps.append(now - last)
        last = now
        records.append(json.loads(line))
    stderr = proc.stderr.read() if proc.stderr else ""
    code = proc.wait(timeout=600)
    assert code in (0, 1), f"exit {code}: {stderr[-3000:]}"
    assert "Traceback" not in stderr, stderr[-3000:]
    assert [r["file"] for r in records] == [str(f) for f in files]
    for r in records:
        assert ("error" in r) != ("probability" in r), r
        if "error" in r:
            assert Path(r["file"]).name in r["error"] and "Traceback" not in r["error"]
    worst = max(gaps)
    errors = sum("error" in r for r in records)
    print(
        f"\nfuzz: {len(files)} files, {errors} refused, {len(files) - errors} analysed; "
        f"per file median {1000 * float(np.median(gaps)):.0f} ms, worst {1000 * worst:.0f} ms"
    )
    assert worst < MAX_SECONDS_PER_FILE, f"one file took {worst:.1f} s"
