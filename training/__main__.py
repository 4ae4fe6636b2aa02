"""``python -m training``: baseline, cross-validation, cross-site check, final fit + export;
``python -m training all``: every retraining step in order, skipping those whose inputs did
not change (:mod:`training.rebuild`; ``make models``).

Each dataset is a folder in the generic format of :mod:`training.data`; ``--data DIR``
names a parent folder and ``--datasets`` the sub-folders to use (default: ddti chaouchi).
"""

from __future__ import annotations

import argparse
import json
import logging
import sys
from dataclasses import asdict, fields
from pathlib import Path

from training.data import DEFAULT_DATA


def _config_args(p: argparse.ArgumentParser) -> None:
    from training.train import TrainConfig

    for f in fields(TrainConfig):
        if f.name == "datasets":
            continue
        default = getattr(TrainConfig(), f.name)
        kind = type(default) if default is not None else str
        if kind is bool:
            p.add_argument(
                f"--{f.name.replace('_', '-')}",
                type=lambda s: s.lower() in {"1", "true", "yes"},
                default=default,
            )
        else:
            p.add_argument(f"--{f.name.replace('_', '-')}", type=kind, default=default)


def _config(ns: argparse.Namespace):
    from training.train import TrainConfig

    cfg = TrainConfig(
        **{f.name: getattr(ns, f.name) for f in fields(TrainConfig) if f.name != "datasets"}
    )
    cfg.datasets = list(ns.datasets)
    if cfg.weights in ("none", "None", ""):
        cfg.weights = None
    return cfg


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if "all" in argv:  # the whole rebuild: its options are training.rebuild's
        from training.rebuild import main as rebuild

        return rebuild([a for a in argv if a != "all"])
    parser = argparse.ArgumentParser(prog="python -m training", description=__doc__)
    parser.add_argument(
        "--data", type=Path, default=DEFAULT_DATA, help="folder holding the datasets"
    )
    parser.add_argument("--datasets", nargs="+", default=["ddti", "chaouchi"])
    parser.add_argument("--out", type=Path, default=Path("runs/latest"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument(
        "--repeats", type=int, default=1, help="repeated CV with seeds seed..seed+N-1"
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("all", help="every retraining step in order (training.rebuild; --dry-run)")
    sub.add_parser("baseline", help="frozen ImageNet features + logistic regression, grouped CV")
    for name, text in (
        ("cv", "grouped k-fold CV of the fine-tuned classifier on the development split"),
        ("cross-site", "train on each dataset, test on the others"),
        ("fit", "train the shipped model, calibrate, test once, export to --export"),
    ):
        p = sub.add_parser(name, help=text)
        _config_args(p)
        if name == "fit":
            p.add_argument("--export", type=Path, default=Path("resources/models"))
            p.add_argument("--cv", type=Path, help="cv.json of this recipe, quoted in the card")
            p.add_argument("--baseline", type=Path, help="baseline.json, quoted in the card")
            p.add_argument(
                "--cross-site", dest="cross_site_json", type=Path, help="cross_site.json, quoted"
            )
    base = sub.choices["baseline"]
    base.add_argument("--backbone", default="efficientnet_lite0")
    base.add_argument("--input-size", type=int, default=224)
    base.add_argument("--seed", type=int, default=0)
    base.add_argument("--crop-margin", type=float, default=0.15)
    ns = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    from training import experiment as E

    roots = [ns.data / d for d in ns.datasets]
    missing = [str(r) for r in roots if not (r / "labels.csv").exists()]
    if missing:
        print(f"error: no labels.csv in {', '.join(missing)}", file=sys.stderr)
        return 2
    ns.out.mkdir(parents=True, exist_ok=True)
    corpus = E.load_corpus(roots, ns.input_size, ns.crop_margin)
    dev_idx, _ = E.dev_test_split(corpus)
    dev = corpus.subset(dev_idx)

    if ns.command == "baseline":
        result = E.run_baseline(dev, ns.backbone, ns.input_size, ns.folds, ns.seed, ns.repeats)
        result["backbone"] = ns.backbone
        (ns.out / "baseline.json").write_text(json.dumps(result, indent=2))
    elif ns.command == "cv":
        result = E.run_cv(dev, _config(ns), ns.folds, ns.out, ns.repeats)
    elif ns.command == "cross-site":
        result = E.run_cross_site(dev, _config(ns), ns.out)
    else:
        from training.export import export

        cfg = _config(ns)
        model, last_conv, cal, thr, metrics, split = E.fit_final(corpus, cfg, ns.out)

        def quoted(path: Path | None) -> dict:
            return json.loads(path.read_text()) if path else {}

        cv, base = quoted(ns.cv), quoted(ns.baseline)
        if cv:
            metrics["cv"] = {**cv["auroc"], "protocol": cv["protocol"]}
        if ns.cross_site_json:
            metrics["cross_site"] = quoted(ns.cross_site_json)
        card_fields = {
            "backbone": cfg.backbone,
            "training": asdict(cfg),
            "data": {"datasets": cfg.datasets, "split": split},
            "metrics": metrics,
        }
        if base:
            card_fields["baseline"] = {
                "description": f"frozen {base['backbone']} ImageNet features + logistic "
                "regression (best of per-site/pooled and 4 L2 strengths, in hindsight)",
                "cv": {
                    k.removeprefix("best_"): v for k, v in base.items() if k.startswith("best_")
                },
            }
        card = export(model, last_conv, cal, thr, card_fields, ns.export)
        result = {"card": str(card), "metrics": metrics}
    print(json.dumps(result, indent=2, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
