"""Makes ``inscope_bmode.png``: a synthetic B-mode image (no patient data) that the shipped
models analyse in scope (an estimate, a heat map, TI-RADS suggestions), so the UI tests'
in-scope path runs in CI without ../shared/data.

The image is random-phase noise shaped by aggregate statistics of 150 DDTI images (the mean
radial amplitude spectrum of the frames, the lateral/axial anisotropy of the speckle, and
the mean grey-level deciles inside and outside the nodule masks), with one elliptical nodule
drawn in. No pixel of any image is kept: only the 60 numbers below, measured once with
``--measure`` on ../shared/data. ``--check`` prints what the shipped models say of it::

    python tests/assets/make_inscope_image.py            # writes the committed PNG
    python tests/assets/make_inscope_image.py --check    # novelty, scope, box, suggestion
"""

from __future__ import annotations

import argparse
from pathlib import Path
from statistics import NormalDist

import cv2
import numpy as np

OUT = Path(__file__).with_name("inscope_bmode.png")
SEED = 3
HEIGHT, WIDTH = 360, 560
#: The nodule's box (x, y, w, h) in the image: the box the tests analyse.
NODULE = (220, 120, 130, 100)
#: Mean radial amplitude spectrum of the frames (40 bins from 0 to 0.5 cycles per pixel,
#: relative to the second bin).
PROFILE = (
    3.6667, 1.0, 0.6034, 0.3872, 0.2843, 0.2391, 0.1833, 0.1484, 0.1339, 0.1223,
    0.1181, 0.11, 0.0966, 0.09, 0.0893, 0.0839, 0.0798, 0.0768, 0.0708, 0.0661,
    0.0654, 0.0628, 0.0614, 0.0603, 0.0595, 0.0596, 0.0569, 0.0516, 0.0458, 0.0444,
    0.0418, 0.04, 0.0413, 0.0406, 0.04, 0.0405, 0.0403, 0.039, 0.0397, 0.0397,
)  # fmt: skip
#: Lateral over axial amplitude at the same frequency (speckle is longer sideways).
ANISOTROPY = 0.6
#: Mean grey-level deciles (5 %, 15 %, ... 95 %) inside the nodule masks and in the tissue.
DECILES_NODULE = (39.7, 50.5, 57.9, 64.2, 70.1, 76.1, 82.6, 90.0, 99.7, 117.4)
DECILES_TISSUE = (19.7, 29.6, 38.6, 48.3, 58.5, 69.4, 81.0, 94.4, 111.4, 144.4)


def make_image(seed: int = SEED) -> np.ndarray:
    """The grey image (HEIGHT x WIDTH uint8), the same for the same seed."""
    rng = np.random.default_rng(seed)
    fy = np.fft.fftfreq(HEIGHT)[:, None]
    fx = np.fft.fftfreq(WIDTH)[None, :]
    rad = np.sqrt(fx**2 + fy**2)
    amp = np.interp(rad, np.linspace(0.00625, 0.49375, len(PROFILE)), PROFILE)
    amp *= 1 - (1 - ANISOTROPY) * (np.abs(fx) / (rad + 1e-9)) ** 2
    amp[0, 0] = 0
    phase = np.exp(2j * np.pi * rng.random((HEIGHT, WIDTH)))
    field = np.real(np.fft.ifft2(amp * phase))
    z = (field - field.mean()) / field.std()
    normal = [NormalDist().inv_cdf(p) for p in np.linspace(0.05, 0.95, 10)]
    tissue, nodule = np.interp(z, normal, DECILES_TISSUE), np.interp(z, normal, DECILES_NODULE)
    y, x = np.mgrid[0:HEIGHT, 0:WIDTH].astype(np.float32)
    nx, ny, nw, nh = NODULE
    r = np.hypot((x - nx - nw / 2) / (nw / 2), (y - ny - nh / 2) / (nh / 2))
    inside = np.clip((1.05 - r) / 0.1, 0, 1)
    img = np.clip((1 - inside) * tissue + inside * nodule, 0, 255).astype(np.uint8)
    img[:, :30], img[:, -40:], img[:15] = 0, 0, 0  # the scanner's dark margins
    return img


def measure(data: Path, n: int = 150) -> None:
    """Prints the statistics above, measured on ``data``/ddti (the first ``n`` masked)."""
    import csv

    with open(data / "ddti" / "metadata.csv", newline="") as fh:
        rows = [r for r in csv.DictReader(fh) if r["mask"]][:n]
    spec, inside_q, tissue_q = np.zeros((HEIGHT, WIDTH)), [], []
    for r in rows:
        g = cv2.imread(str(data / "ddti" / r["file"]), cv2.IMREAD_GRAYSCALE)
        m = cv2.imread(str(data / "ddti" / r["mask"]), cv2.IMREAD_GRAYSCALE)
        if g is None or m is None or g.shape != (HEIGHT, WIDTH):
            continue
        spec += np.abs(np.fft.fft2(g - g.mean()))
        deciles = np.linspace(0.05, 0.95, 10)
        inside_q.append(np.quantile(g[m > 127], deciles))
        tissue_q.append(np.quantile(g[(g > 5) & (m <= 127)], deciles))
    rad = np.hypot(np.fft.fftfreq(HEIGHT)[:, None], np.fft.fftfreq(WIDTH)[None, :])
    bins = np.linspace(0, 0.5, 41)
    prof = [spec[(rad >= a) & (rad < b)].mean() for a, b in zip(bins[:-1], bins[1:], strict=True)]
    print("PROFILE", [round(v / prof[1], 4) for v in prof])
    print("DECILES_NODULE", np.round(np.mean(inside_q, 0), 1).tolist())
    print("DECILES_TISSUE", np.round(np.mean(tissue_q, 0), 1).tolist())


def check() -> None:
    from thyroid_desktop.core.analysis import AnalysisService
    from thyroid_desktop.core.io.images import open_image
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter
    from thyroid_desktop.core.pipeline.roi import ROI

    service = AnalysisService(load_classifier(), load_segmenter(), None)
    image = open_image(OUT)
    for name, box in (("drawn", ROI(*NODULE)), ("auto", None)):
        f = service.analyse(image, box).finding
        print(name, f.roi, f.roi_source, f"novelty {f.novelty:.2f}", f"estimate {f.estimate}")
        print("  reason:", f.no_estimate_reason or "-", "| suggestion:", f.tirads_suggestion)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--check", action="store_true")
    parser.add_argument("--measure", type=Path, metavar="DATA", help="e.g. ../shared/data")
    args = parser.parse_args()
    if args.measure:
        measure(args.measure)
    elif args.check:
        check()
    else:
        cv2.imwrite(str(OUT), make_image(), [cv2.IMWRITE_PNG_COMPRESSION, 9])
        print(f"wrote {OUT} ({OUT.stat().st_size} bytes)")


if __name__ == "__main__":
    main()
