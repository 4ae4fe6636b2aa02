"""Training augmentation: sonographer's marks pasted on nodules of both classes.

Calipers (``+``, ``x``), dotted measurement lines and short labels ("N1", "1.2 cm") sit on the
nodules that worried someone, so a model trained on raw frames can learn "marks =
suspicious". The app paints detected marks out (``core.pipeline.marks``, the card's
``crop.marks: inpaint``); the residue of that step (a smoothed patch, the anti-aliased rim of
text the detector missed) is still visible. Pasting random marks on every training nodule,
benign and malignant alike, before the same step makes whatever is left carry no label.

The drawer varies more than the check in ``benchmarks/bench_what_it_looks_at.py`` (sizes,
thickness, fonts, several marks, marks off the long axis), but both draw the same kinds of
mark, so the benchmark's pasted-marks shift measured on a model trained with this
augmentation is optimistic for other scanners' marks.
"""

from __future__ import annotations

import cv2
import numpy as np

LABELS = (
    "N1",
    "N2",
    "d1",
    "d2",
    "D",
    "L",
    "T",
    "AP",
    "1",
    "2",
    "1.2cm",
    "0.8 cm",
    "12.4mm",
    "Dist",
)
FONTS = (cv2.FONT_HERSHEY_PLAIN, cv2.FONT_HERSHEY_SIMPLEX, cv2.FONT_HERSHEY_DUPLEX)
GREYS = ((255, 255, 255), (240, 240, 240), (215, 215, 215), (190, 190, 190))
COLOURS = ((235, 235, 60), (70, 230, 70), (70, 210, 235), (235, 140, 40), (230, 70, 200))


def _colour(rng: np.random.Generator) -> tuple[int, int, int]:
    pool = GREYS if rng.random() < 0.6 else COLOURS
    return tuple(int(c) for c in pool[rng.integers(len(pool))])


def _caliper(out: np.ndarray, x: int, y: int, arm: int, colour, diagonal: bool, thick: int):
    if diagonal:
        cv2.line(out, (x - arm, y - arm), (x + arm, y + arm), colour, thick)
        cv2.line(out, (x - arm, y + arm), (x + arm, y - arm), colour, thick)
    else:
        cv2.line(out, (x - arm, y), (x + arm, y), colour, thick)
        cv2.line(out, (x, y - arm), (x, y + arm), colour, thick)


def paste_marks(pixels: np.ndarray, box: tuple[int, int, int, int], rng: np.random.Generator):
    """A copy of the RGB ``pixels`` with 1-2 caliper pairs across the box ``(x, y, w, h)``,
    maybe dotted lines between them, and 0-2 labels near it, drawn at random."""
    out = np.array(pixels, copy=True)
    height, width = out.shape[:2]
    x, y, w, h = (int(v) for v in box)
    thick = 1 if rng.random() < 0.85 else 2
    arm = int(rng.integers(3, 9))
    diagonal = rng.random() < 0.35
    colour = _colour(rng)
    for axis in rng.permutation(2)[: int(rng.integers(1, 3))]:
        inset = rng.uniform(-0.08, 0.12, 2)  # calipers sit near, not exactly on, the edges
        offset = rng.uniform(-0.15, 0.15)
        if axis == 0:  # across: left and right ends
            cy = int(y + h * (0.5 + offset))
            ends = [(int(x + w * inset[0]), cy), (int(x + w * (1 - inset[1])), cy)]
        else:  # top and bottom ends
            cx = int(x + w * (0.5 + offset))
            ends = [(cx, int(y + h * inset[0])), (cx, int(y + h * (1 - inset[1])))]
        ends = [
            (int(np.clip(px, 0, width - 1)), int(np.clip(py, 0, height - 1))) for px, py in ends
        ]
        for px, py in ends:
            _caliper(out, px, py, arm, colour, diagonal, thick)
        if rng.random() < 0.5:
            (ax, ay), (bx, by) = ends
            step = int(rng.integers(4, 9))
            n = max(int(np.hypot(bx - ax, by - ay) // step), 2)
            dot = int(rng.integers(1, 3))
            for t in np.linspace(0, 1, n + 1)[1:-1]:
                px, py = int(ax + t * (bx - ax)), int(ay + t * (by - ay))
                out[py : py + dot, px : px + dot] = colour
    for _ in range(int(rng.integers(0, 3))):
        text = LABELS[rng.integers(len(LABELS))]
        scale = float(rng.uniform(0.35, 1.0))
        font = FONTS[rng.integers(len(FONTS))]
        tx = int(np.clip(x + rng.uniform(-0.2, 1.0) * w, 0, max(width - 30, 0)))
        ty = int(np.clip(y + rng.uniform(-0.2, 1.2) * h, 12, height - 1))
        line = cv2.LINE_AA if rng.random() < 0.7 else cv2.LINE_8
        cv2.putText(out, text, (tx, ty), font, scale, _colour(rng), 1, line)
    return out
