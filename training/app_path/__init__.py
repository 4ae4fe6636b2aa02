"""Training, selecting and reporting the classifier on the crops the app produces.

The app analyses the box its segmenter finds (best candidate, else the scan area), not the
expert's box. This module caches frozen-backbone features of the crops the app would cut
(and of expert boxes, jittered boxes, the scan area and a wider context crop) for the
development images once, compares training recipes by grouped CV *scored on the app's
auto-ROI crop*, and fits, calibrates and exports the chosen one.

Usage (in this order; the test split is read only by ``test``)::

    python -m training.app_path cache   # features of every development crop (~25 min)
    # or, the shipped recipe R4 (issue 25): auto-box views with the marks step, pasted marks
    # and +-30 % resampling, JPEG views (R5, CV only) and the quality-50 probe (~7 min), and
    # the rest with --out runs/app_path_v2:
    python -m training.app_path --out runs/app_path_v2 cache --marks inpaint --augment
    python -m training.app_path cv      # recipes x C, 3 x 5-fold grouped CV
    python -m training.app_path fit     # final head, Platt + threshold, export
    python -m training.reliability --skip-novelty   # the new head's stability limit
    python -m training.app_path cross-site  # train on one site, score the other (development)
    python -m training.app_path test    # once: test split through the app's path
    python -m training.auto_roi_eval    # expert box / auto-ROI / scan area on the test split

The protocol's parts, by job: :mod:`.recipes` (what is compared), :mod:`.cache` (features of
the app's crops), :mod:`.cv` (heads and grouped CV), :mod:`.fit` (the shipped head, its
calibration and export), :mod:`.heldout` (the test split, once), :mod:`.cross_site` (one
collection's head on the other's images); ``__main__`` the commands.
"""

from training.app_path.cache import (
    FeatureCache,
    ImageBoxes,
    add_app_views,
    augmented_crops,
    build_cache,
    cmd_cache,
    cut_crops,
    development_samples,
    feature_layout_gap,
    find_boxes,
    image_seed,
    jitter_boxes,
    load_cache,
    make_extractor,
    resampled,
    shipped_card,
    view_boxes,
)
from training.app_path.cross_site import cmd_cross_site, site_to_site
from training.app_path.cv import (
    CvResult,
    beats_current,
    choose,
    cmd_cv,
    cv_splits,
    cv_to_json,
    design,
    head_logits,
    jpeg_shift,
    paired_differences,
    print_table,
    recipes_of,
    reference_recipe,
    run_cv,
    score,
    scorings_of,
    site_aurocs,
    summarise,
    view_features,
)
from training.app_path.fit import candidates, carry_over, check_cv_of, check_export, cmd_fit
from training.app_path.heldout import cmd_test
from training.app_path.recipes import (
    APP_SCORED,
    AUGMENTED_APP,
    AUGMENTED_VIEWS,
    AUTO_VIEWS,
    BACKBONE,
    BOX_VIEWS,
    C_GRID,
    C_SHIPPED,
    CHUNK_IMAGES,
    CONTEXT,
    CONTEXT_MARGIN,
    CV_SEED,
    EXPERT_VIEWS,
    EXTRACT_BATCH,
    FEATURE_TOLERANCE,
    INPUT_SIZE,
    JITTER_SCALE,
    JITTER_SEED,
    JITTER_SHIFT,
    JPEG_BANDS,
    JPEG_PROBE,
    JPEG_PROBE_QUALITY,
    JPEG_SCORING,
    JPEG_VIEWS,
    MARKED_VIEWS,
    MIN_C_GAIN,
    MIN_MEAN_GAIN,
    N_FOLDS,
    N_JITTERS,
    N_REPEATS,
    OUT_DIR,
    R4_VIEWS,
    RANK_SCORING,
    RECIPES,
    SCALE_BANDS,
    SCALED_VIEWS,
    SCORING,
    SITES,
    TWO_VIEW,
    VIEWS,
    Recipe,
)

__all__ = [
    "APP_SCORED",
    "AUGMENTED_APP",
    "AUGMENTED_VIEWS",
    "AUTO_VIEWS",
    "BACKBONE",
    "BOX_VIEWS",
    "CHUNK_IMAGES",
    "CONTEXT",
    "CONTEXT_MARGIN",
    "CV_SEED",
    "C_GRID",
    "C_SHIPPED",
    "CvResult",
    "EXPERT_VIEWS",
    "EXTRACT_BATCH",
    "FEATURE_TOLERANCE",
    "FeatureCache",
    "INPUT_SIZE",
    "ImageBoxes",
    "JITTER_SCALE",
    "JITTER_SEED",
    "JITTER_SHIFT",
    "JPEG_BANDS",
    "JPEG_PROBE",
    "JPEG_PROBE_QUALITY",
    "JPEG_SCORING",
    "JPEG_VIEWS",
    "MARKED_VIEWS",
    "MIN_C_GAIN",
    "MIN_MEAN_GAIN",
    "N_FOLDS",
    "N_JITTERS",
    "N_REPEATS",
    "OUT_DIR",
    "R4_VIEWS",
    "RANK_SCORING",
    "RECIPES",
    "Recipe",
    "SCALED_VIEWS",
    "SCALE_BANDS",
    "SCORING",
    "SITES",
    "TWO_VIEW",
    "VIEWS",
    "add_app_views",
    "augmented_crops",
    "beats_current",
    "build_cache",
    "candidates",
    "carry_over",
    "check_cv_of",
    "check_export",
    "choose",
    "cmd_cache",
    "cmd_cross_site",
    "cmd_cv",
    "cmd_fit",
    "cmd_test",
    "cut_crops",
    "cv_splits",
    "cv_to_json",
    "design",
    "development_samples",
    "feature_layout_gap",
    "find_boxes",
    "head_logits",
    "image_seed",
    "jitter_boxes",
    "jpeg_shift",
    "load_cache",
    "make_extractor",
    "paired_differences",
    "print_table",
    "recipes_of",
    "reference_recipe",
    "resampled",
    "run_cv",
    "score",
    "scorings_of",
    "shipped_card",
    "site_aurocs",
    "site_to_site",
    "summarise",
    "view_boxes",
    "view_features",
]
