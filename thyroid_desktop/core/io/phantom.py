"""A synthetic B-mode thyroid phantom: speckle, a sector-free linear-probe field of view and
one hypoechoic nodule. Used as the app's demo image, for the self-test and in tests, so no
patient image ships with the application."""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np

from thyroid_desktop.core.pipeline.roi import ROI


@dataclass(frozen=True)
class Phantom:
    """The image (H x W x 3 uint8 RGB) and the true nodule box."""

    pixels: np.ndarray
    nodule: ROI


def make_phantom(
    width: int = 560,
    height: int = 360,
    seed: int = 0,
    nodule_scale: float = 1.0,
    speckle_seed: int | None = None,
) -> Phantom:
    """Builds a deterministic phantom with an elliptical hypoechoic nodule and a dark margin
    of 'UI' around the scan area, as scanners draw it. ``nodule_scale`` sizes the nodule
    (0: none, as in the frames of a sweep before it comes into view); ``speckle_seed`` gives
    another speckle pattern with the nodule in the same place (a cine loop's frames)."""
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    # Tissue: depth-attenuated echo level with Rayleigh speckle, smoothed to grain size.
    tissue = 0.55 * np.exp(-y / (1.6 * height)) + 0.08 * np.sin(x / 37.0) * np.exp(-y / height)
    cx, cy = width * (0.45 + 0.1 * rng.random()), height * (0.42 + 0.1 * rng.random())
    ax, ay = width * 0.12 * nodule_scale, height * 0.16 * nodule_scale
    r = ((x - cx) / max(ax, 1e-6)) ** 2 + ((y - cy) / max(ay, 1e-6)) ** 2
    if nodule_scale <= 0:
        r = np.full_like(x, np.inf)
    tissue = np.where(r < 1.0, tissue * 0.35, tissue)
    tissue = np.where(np.abs(r - 1.0) < 0.08, tissue * 1.8, tissue)  # echogenic rim
    below = (np.abs(x - cx) < ax * 0.8) & (y > cy + ay)
    tissue = np.where(below, tissue * 1.25, tissue)  # posterior enhancement
    if speckle_seed is not None:
        rng = np.random.default_rng((seed, speckle_seed))
    speckle = rng.rayleigh(1.0, size=(height, width)).astype(np.float32)
    speckle = cv2.GaussianBlur(speckle, (0, 0), sigmaX=1.6, sigmaY=0.8)
    img = np.clip(tissue * speckle * 255.0 / 1.25, 0, 255).astype(np.uint8)
    # Field of view: black border with a depth scale, like a scanner's screen.
    mask = np.zeros_like(img)
    mask[20 : height - 30, 40 : width - 60] = 1
    img = img * mask
    for d in range(20, height - 30, 40):
        cv2.line(img, (width - 52, d), (width - 46, d), 200, 1)
    cv2.putText(img, "PHANTOM", (44, height - 10), cv2.FONT_HERSHEY_SIMPLEX, 0.45, 180, 1)
    nodule = ROI(int(cx - ax), int(cy - ay), max(int(2 * ax), 1), max(int(2 * ay), 1))
    return Phantom(np.ascontiguousarray(np.repeat(img[:, :, None], 3, axis=2)), nodule)


def make_cine_phantom(n_frames: int = 20, appears_at: int = 2, seed: int = 0) -> list[Phantom]:
    """A sweep: no nodule before frame ``appears_at``, then the nodule grows to full size
    at mid-loop and shrinks again, with fresh speckle in every frame."""
    frames = []
    peak = (appears_at + n_frames - 1) / 2
    for i in range(n_frames):
        scale = 0.0 if i < appears_at else 1.0 - 0.5 * abs(i - peak) / max(peak, 1)
        frames.append(make_phantom(seed=seed, nodule_scale=scale, speckle_seed=i))
    return frames
