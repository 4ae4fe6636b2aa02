"""``python -m training.app_path cache|cv|fit|test|compare|cross-site``."""

from __future__ import annotations

import argparse
import logging
from pathlib import Path

import training.app_path as package
from training.app_path.cache import cmd_cache
from training.app_path.cross_site import cmd_cross_site
from training.app_path.cv import cmd_compare, cmd_cv
from training.app_path.fit import cmd_fit
from training.app_path.heldout import cmd_test
from training.app_path.recipes import (
    BACKBONE,
    C_GRID,
    INPUT_SIZE,
    N_FOLDS,
    N_REPEATS,
    OUT_DIR,
    SITES,
)
from training.data import DEFAULT_DATA
from training.grey_levels import GreyLevels


def main(argv: list[str] | None = None) -> int:
    from thyroid_desktop.core.models.shipped import models_dir

    parser = argparse.ArgumentParser(
        prog="python -m training.app_path",
        description=package.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--out", type=Path, default=OUT_DIR, help="cache and CV results")
    parser.add_argument("--export", type=Path, default=models_dir(), help="model folder")
    sub = parser.add_subparsers(dest="command", required=True)
    p = sub.add_parser("cache", help="features of every development crop")
    p.add_argument("--force", action="store_true", help="recompute an existing cache")
    p.add_argument(
        "--marks",
        choices=("keep", "inpaint"),
        default="keep",
        help="crop step for every view (core.pipeline.marks; the card's crop.marks)",
    )
    p.add_argument(
        "--augment",
        action="store_true",
        help="auto-box views only, plus pasted marks and +-30 %% resampling (recipe R4), "
        "JPEG re-encoded views (R5, CV only) and a quality-50 probe (cv's jpeg_shift)",
    )
    p.add_argument(
        "--backbone",
        default=BACKBONE,
        help="training.backbones network (efficientnet_lite2_aa: anti-aliased, same weights)",
    )
    p.add_argument(
        "--resolution",
        type=int,
        default=0,
        help="crop detail limit in pixels (roi.crop_square; the card's crop.resolution; 0: none)",
    )
    p.add_argument(
        "--input-size",
        type=int,
        default=INPUT_SIZE,
        help="crop side in pixels, the backbone's input (shipped: %(default)s)",
    )
    p.add_argument(
        "--grey-levels",
        choices=[g.value for g in GreyLevels],
        default=GreyLevels.NONE.value,
        help="experimental grey-level step for every crop (training.grey_levels; "
        "CV and cross-site only)",
    )
    p = sub.add_parser("cv", help="grouped CV of the recipes, scored on auto-ROI")
    p.add_argument("--folds", type=int, default=N_FOLDS)
    p.add_argument("--repeats", type=int, default=N_REPEATS)
    p.add_argument("--c-grid", type=float, nargs="+", default=list(C_GRID))
    p.add_argument(
        "--train-sites",
        nargs="+",
        choices=SITES,
        default=list(SITES),
        help="train each fold on these collections only (every held-out image is scored; "
        "writes cv_train_<sites>.json)",
    )
    p = sub.add_parser("fit", help="choose, fit, calibrate and export")
    p.add_argument("--version", default="1.1.1", help="version written into the card")
    p.add_argument(
        "--recipe",
        help="fit this recipe if its CV AUROC is within NON_INFERIORITY of the best (e.g. R4)",
    )
    p.add_argument(
        "--without-feature-models",
        action="store_true",
        help="a cache of another backbone or input side than the card's: export without the "
        "novelty reference, scope model and TI-RADS heads (they read the classifier's features; "
        "make models refits them in later steps)",
    )
    sub.add_parser("test", help="once: the test split through the app's path")
    p = sub.add_parser("cross-site", help="train on one site, score the other (development)")
    p.add_argument("--c-grid", type=float, nargs="+", default=list(C_GRID))
    p = sub.add_parser("compare", help="paired fold differences between two CV runs")
    p.add_argument(
        "pairs", nargs="+", help="FOLDER:RECIPE or CV_FILE.json:RECIPE, the first is the baseline"
    )
    args = parser.parse_args(argv)
    if args.command == "cv" and len(args.c_grid) > len(C_GRID):
        parser.error(f"at most {len(C_GRID)} C values")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    commands = {
        "cache": cmd_cache,
        "cv": cmd_cv,
        "fit": cmd_fit,
        "test": cmd_test,
        "compare": cmd_compare,
        "cross-site": cmd_cross_site,
    }
    commands[args.command](args)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
