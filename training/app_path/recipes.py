"""What the app-path protocol compares: the shipped backbone, the cached views, the
scoring crops, the grouped-CV settings and the training recipes."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

#: The shipped backbone and input side; the cached features must be exactly the model's.
#: 224 px since v1.3.0 (2026-12-07): against Lite2's own 260 px, development CV ddti +0.017 ±
#: 0.015, chaouchi +0.011 ± 0.017 (192 px: -0.022 / -0.018), about a fifth less time per
#: analysis (60 against 73 ms) (docs/experiments.md, "A smaller input").
BACKBONE = "efficientnet_lite2"
INPUT_SIZE = 224
#: The input side of caches and CV results written before they recorded it.
LEGACY_INPUT_SIZE = 260
#: Margin of the second, wider crop of the two-view experiment.
CONTEXT_MARGIN = 0.5
#: Jittered copies per box, their largest shift (share of the box side) and scale change.
N_JITTERS = 4
JITTER_SHIFT = 0.10
JITTER_SCALE = 0.15
JITTER_SEED = 0
#: Grouped CV as the shipped card's: seeds CV_SEED .. CV_SEED + N_REPEATS - 1.
N_FOLDS = 5
N_REPEATS = 3
CV_SEED = 0
#: The shipped L2 strength and the at most three values CV may choose among.
C_SHIPPED = 0.03
C_GRID = (0.01, 0.03, 0.1)
#: Another C replaces the shipped one only if it raises the ranking AUROC by this much.
MIN_C_GAIN = 0.005
#: Export only when the chosen recipe beats R0 on both sites or by this much on average.
MIN_MEAN_GAIN = 0.02
#: A recipe asked for by name (``fit --recipe``, e.g. R4 for robustness to marks and pixel
#: scale) is fitted only if its mean auto-ROI CV AUROC is at most this much below the best's.
NON_INFERIORITY = 0.01
#: Largest tolerated difference between cached features and the shipped model's.
FEATURE_TOLERANCE = 1e-3
#: Images whose crops go through the backbone together (bounds memory).
CHUNK_IMAGES = 16
EXTRACT_BATCH = 32
SITES = ("ddti", "chaouchi")
OUT_DIR = Path("runs/app_path")

AUTO_VIEWS = ("auto",) + tuple(f"auto_j{i}" for i in range(N_JITTERS))
EXPERT_VIEWS = ("expert",) + tuple(f"expert_j{i}" for i in range(N_JITTERS))
BOX_VIEWS = AUTO_VIEWS + EXPERT_VIEWS
CONTEXT = "_ctx"
VIEWS = BOX_VIEWS + ("scan",) + tuple(v + CONTEXT for v in BOX_VIEWS)
#: Augmented views of the auto box (``cache --augment``): the box and its first jitter with
#: sonographer's marks pasted on (``training.pasted_marks``), and two jitters cut from the image
#: resampled by a factor drawn from each of ``SCALE_BANDS`` (+-30 %), all through the marks step.
MARKED_VIEWS = ("auto_mk0", "auto_mk1")
SCALED_VIEWS = ("auto_sc0", "auto_sc1")
SCALE_BANDS = ((0.7, 0.9), (1.1, 1.3))
AUGMENT_SEED = 25
#: The fourth jitter and the auto box cut from the frame re-encoded as a JPEG of a quality
#: drawn from each of ``JPEG_BANDS`` (``training.compression``; low bound included, high bound
#: not: 20-49 and 50-89), both classes: recipe R5, tried and not shipped (docs/experiments.md).
JPEG_VIEWS = ("auto_jq0", "auto_jq1")
JPEG_BANDS = ((20, 50), (50, 90))
#: The auto box of the frame re-encoded at ``JPEG_PROBE_QUALITY``, scored as the app scores a
#: box (crop, mirror, jitters): never trained on, it measures how far the held-out estimate
#: moves when the same frame is compressed harder (``cv``'s ``jpeg_shift``).
JPEG_PROBE = "auto_q50"
JPEG_PROBE_QUALITY = 50
#: R4's views: the auto box and its jitters, pasted marks, resampled.
R4_VIEWS = AUTO_VIEWS + MARKED_VIEWS + SCALED_VIEWS
#: Each pasted-marks and resampled view with the view it was cut like (``cache.augmented_crops``):
#: the same box without the marks, or cut from the frame not resampled.
NUISANCE_PAIRS = (
    ("auto_mk0", "auto"),
    ("auto_mk1", "auto_j0"),
    ("auto_sc0", "auto_j1"),
    ("auto_sc1", "auto_j2"),
)
#: R6's penalty on them (the strength the box-change penalty of bench_feature_noise used).
INVARIANCE = 10.0
#: What an augmented cache holds (it skips the expert, scan-area and context views), and the
#: boxes it holds the app's jitter views of.
AUGMENTED_VIEWS = R4_VIEWS + JPEG_VIEWS + (JPEG_PROBE,)
AUGMENTED_APP = ("auto", JPEG_PROBE)
#: Boxes the app may analyse; each is also cut as ``core.pipeline.estimate.predict`` scores it now:
#: the crop, its mirror and the fixed box jitters ``roi.JITTERS`` (``jitter_views``).
APP_SCORED = ("auto", "expert", "scan")
#: Scoring crop -> (cached view, with the app's jitter views). ``expert`` is the scan area
#: where there is no mask, exactly as :func:`training.data.sample_roi` and ``auto_roi_eval``
#: define it. Plain names: crop + mirror, logits averaged; ``_app``: the mean logit over the
#: crop, its mirror and the 4 app jitters, which is what ``predict`` calibrates.
SCORING = {
    "auto_roi": ("auto", False),
    "expert_box": ("expert", False),
    "scan_area": ("scan", False),
    "auto_roi_app": ("auto", True),
    "expert_box_app": ("expert", True),
    "scan_area_app": ("scan", True),
    "auto_roi_app_q50": (JPEG_PROBE, True),
}
#: The scoring of the held-out frames re-encoded at ``JPEG_PROBE_QUALITY`` (``cv.jpeg_shift``).
JPEG_SCORING = "auto_roi_app_q50"
#: What recipes are ranked, calibrated and reported by: the app's own scoring of its box.
RANK_SCORING = "auto_roi_app"


@dataclass(frozen=True)
class Recipe:
    """Which cached views of a training image become rows (each with its mirror image).

    Attributes:
        views: for every image; ``mask_views`` in addition where an expert mask exists,
            ``no_mask_views`` where none does.
        two_view: each row is a view's features concatenated with its context crop's.
    """

    name: str
    description: str
    views: tuple[str, ...] = ()
    mask_views: tuple[str, ...] = ()
    no_mask_views: tuple[str, ...] = ()
    two_view: bool = False
    #: (view, the same box without the nuisance) pairs whose feature differences the head is
    #: penalised for following, and how much (``training.app_path.invariant``; 0: plain L2).
    invariant_to: tuple[tuple[str, str], ...] = ()
    invariance: float = 0.0
    #: Compared in CV only: ``fit`` never chooses it nor ranks the shipped recipe against it.
    experimental: bool = False

    def views_for(self, has_mask: bool) -> tuple[str, ...]:
        return self.views + (self.mask_views if has_mask else self.no_mask_views)


RECIPES = {
    r.name: r
    for r in (
        Recipe(
            "R0",
            "current: ddti expert-box crops, chaouchi scan-area crops",
            mask_views=("expert",),
            no_mask_views=("scan",),
        ),
        Recipe("R1", "app boxes: auto-box crop + 4 jittered auto boxes, every site", AUTO_VIEWS),
        Recipe(
            "R2",
            "app boxes + jittered expert: R1 plus the expert box and 4 jitters where masks exist",
            AUTO_VIEWS,
            mask_views=EXPERT_VIEWS,
        ),
        Recipe(
            "R3",
            "R2 plus the scan-area crop of every image",
            AUTO_VIEWS + ("scan",),
            mask_views=EXPERT_VIEWS,
        ),
        Recipe(
            "R4",
            "R1 plus pasted marks and +-30 % pixel scale: the auto box and a jitter with random "
            "calipers, dotted lines and labels pasted on (both classes), two jitters from the "
            "image resampled by 0.7-0.9 and 1.1-1.3",
            R4_VIEWS,
        ),
        Recipe(
            "R5",
            "R4 plus JPEG re-encoding: the fourth jitter and the auto box cut again from the "
            "frame re-encoded at a random quality (20-49 and 50-89), both classes",
            R4_VIEWS + JPEG_VIEWS,
            experimental=True,
        ),
        Recipe(
            "R6",
            "R4 with a head that ignores what pasted marks and resampling change: the L2 "
            f"penalty |w|^2 made w'(I + {INVARIANCE:g} S)w, S the second moment of the feature "
            "differences between each marked or resampled view and the same box without them",
            R4_VIEWS,
            invariant_to=NUISANCE_PAIRS,
            invariance=INVARIANCE,
            experimental=True,
        ),
    )
}
#: CV-only experiments (not shipped): the same rows, each with a margin-0.5 context crop.
TWO_VIEW = {
    f"{name}-2v": Recipe(
        f"{name}-2v",
        f"{RECIPES[name].description}; two views (margin 0.15 + margin {CONTEXT_MARGIN})",
        RECIPES[name].views,
        RECIPES[name].mask_views,
        two_view=True,
    )
    for name in ("R1", "R2")
}
