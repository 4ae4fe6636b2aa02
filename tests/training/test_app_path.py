"""The app-path training module on synthetic phantoms: boxes, jitters, the feature cache,
recipe rows and grouped folds. Tiny random-weight backbone and a stand-in segmenter, so it
runs in seconds."""

import csv
import dataclasses
from pathlib import Path

import cv2
import numpy as np
import pytest

from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.roi import JITTERS, ROI
from training import app_path as A
from training.data import load_dataset

SIZE = 64


class DarkBlobSegmenter:
    """Stands in for the U-Net: the phantom's hypoechoic nodule is its darkest blob."""

    size = 64

    def __init__(self, finds: bool = True) -> None:
        self.finds = finds

    def __call__(self, batch):
        x = np.asarray(batch, np.float32).mean(axis=-1)
        out = np.zeros_like(x)
        if self.finds:
            for i, img in enumerate(x):
                smooth = cv2.GaussianBlur(img, (0, 0), 3)
                out[i] = (smooth < 0.5 * np.median(smooth)).astype(np.float32)
        return out


def _write_site(root, n, masks, seed0=0):
    """A labelled folder of phantoms; without masks, file ids 3 apart (one group each)."""
    (root / "images").mkdir(parents=True)
    rows, meta = [], []
    for i in range(n):
        ph = make_phantom(seed=seed0 + i)
        name = f"images/{i if masks else 3 * i}.png"
        cv2.imwrite(str(root / name), ph.pixels)
        label = "malignant" if i % 2 else "benign"
        rows.append({"file": name, "label": label})
        if masks:
            (root / "masks").mkdir(exist_ok=True)
            mask = np.zeros(ph.pixels.shape[:2], np.uint8)
            r = ph.nodule
            mask[r.y : r.y + r.h, r.x : r.x + r.w] = 255
            cv2.imwrite(str(root / "masks" / f"{i}.png"), mask)
            meta.append({"file": name, "case": str(i // 2), "mask": f"masks/{i}.png"})
    tables = [("labels.csv", rows)] + ([("metadata.csv", meta)] if masks else [])
    for name, table in tables:
        with open(root / name, "w", newline="") as fh:
            w = csv.DictWriter(fh, fieldnames=list(table[0]))
            w.writeheader()
            w.writerows(table)
    return load_dataset(root)


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    from training.linear_head import feature_graph

    root = tmp_path_factory.mktemp("data")
    samples = _write_site(root / "ddti", 8, masks=True)
    samples += _write_site(root / "chaouchi", 6, masks=False, seed0=20)
    model, _ = feature_graph("efficientnet_lite0", SIZE, weights=None)
    seen = []
    built = A.build_cache(samples, model, DarkBlobSegmenter(), SIZE, on_first_crops=seen.append)
    return built, samples, seen


def test_jitters_are_deterministic_bounded_and_seeded():
    box = ROI(100, 80, 60, 40)
    a = A.jitter_boxes(box, 4, (0, 7, 0), 560, 360)
    assert a == A.jitter_boxes(box, 4, (0, 7, 0), 560, 360)
    assert a != A.jitter_boxes(box, 4, (0, 8, 0), 560, 360)
    assert len(set(a)) == 4
    for j in a:
        assert abs(j.x + j.w / 2 - 130) <= A.JITTER_SHIFT * 60 + 1
        assert abs(j.y + j.h / 2 - 100) <= A.JITTER_SHIFT * 40 + 1
        assert 1 - A.JITTER_SCALE - 0.05 <= j.w / 60 <= 1 + A.JITTER_SCALE + 0.05
    edge = A.jitter_boxes(ROI(0, 0, 30, 30), 4, (1,), 40, 40)
    assert all(b.x >= 0 and b.y >= 0 and b.x + b.w <= 40 and b.y + b.h <= 40 for b in edge)
    assert A.image_seed("ddti/images/1.png") == A.image_seed("ddti/images/1.png")


def test_cache_has_every_view_mirrored_and_round_trips(cache, tmp_path):
    built, samples, seen = cache
    n = len(samples)
    dims = {v.shape for v in built.features.values()}
    assert len(dims) == 1 and dims.pop()[:2] == (n, 2)
    assert set(built.features) == set(A.VIEWS)
    assert built.has_mask.tolist() == [True] * 8 + [False] * 6
    assert built.found.all()  # the dark nodule is found in every phantom
    assert seen and seen[0].shape[1:] == (SIZE, SIZE, 3)
    assert built.input_size == SIZE and built.cut["input_size"] == SIZE  # the side it was cut at
    # mirror features differ from the plain ones; the expert view of unmasked images is the
    # scan area, and views that do not exist stay zero
    f = built.features
    assert not np.array_equal(f["auto"][:, 0], f["auto"][:, 1])
    assert np.array_equal(f["expert"][8:], f["scan"][8:])
    assert not f["expert_j0"][8:].any() and f["expert_j0"][:8].any()
    assert f["auto_ctx"].any()
    # the app's own jitter views of each scored box (as core.pipeline.estimate.predict averages)
    assert set(built.app_views) == set(A.APP_SCORED)
    assert all(v.shape == (n, len(JITTERS), dims_d(built)) for v in built.app_views.values())
    assert np.array_equal(built.app_views["expert"][8:], built.app_views["scan"][8:])
    assert not np.array_equal(built.app_views["auto"][:, 0], built.app_views["auto"][:, 1])
    # the auto box sits on the phantom's nodule (the crop the app would analyse)
    x, y, w, h = built.boxes["expert"][0]
    ax, ay, aw, ah = built.boxes["auto"][0]
    assert x <= ax + aw / 2 <= x + w and y <= ay + ah / 2 <= y + h
    built.save(tmp_path / "c.npz")
    back = A.FeatureCache.load(tmp_path / "c.npz")
    assert back.keys.tolist() == built.keys.tolist()
    assert all(np.array_equal(back.features[v], built.features[v]) for v in A.VIEWS)
    assert all(np.array_equal(back.app_views[v], built.app_views[v]) for v in A.APP_SCORED)


def dims_d(cache):
    return cache.features["auto"].shape[2]


def test_app_scoring_averages_crop_mirror_and_app_jitters(cache):
    from training.linear_head import LinearHead

    built, _, _ = cache
    d = dims_d(built)
    rng = np.random.default_rng(0)
    head = LinearHead(np.zeros(d), np.ones(d), rng.normal(size=d), 0.5)
    idx = np.arange(3)
    views = [built.features["auto"][idx, m] for m in (0, 1)]
    views += [built.app_views["auto"][idx, j] for j in range(built.app_views["auto"].shape[1])]
    expected = np.mean([v @ head.coef + 0.5 for v in views], axis=0)
    assert np.allclose(A.score(head, built, idx, "auto", False, app_views=True), expected)
    plain = np.mean([v @ head.coef + 0.5 for v in views[:2]], axis=0)
    assert np.allclose(A.score(head, built, idx, "auto", False), plain)


def test_no_candidate_falls_back_to_the_scan_area(tmp_path):
    from thyroid_desktop.core.io.images import open_image

    samples = _write_site(tmp_path / "s", 1, masks=True)
    image = open_image(samples[0].path)
    boxes, fov = A.find_boxes(samples[0], image, DarkBlobSegmenter(finds=False))
    assert not boxes.found and boxes.auto == fov.box
    again, _ = A.find_boxes(samples[0], image, DarkBlobSegmenter(finds=False))
    assert again.auto_jitter == boxes.auto_jitter  # seeded by the file, not by the run


def test_folds_are_grouped_and_cover_every_image_once_per_repeat(cache):
    built, _, _ = cache
    splits = A.cv_splits(built, n_folds=2, repeats=2)
    assert len(splits) == 4
    for rep in (0, 1):
        held = np.concatenate([va for r, _, va in splits if r == rep])
        assert sorted(held.tolist()) == list(range(len(built)))
    for _, tr, va in splits:
        assert not set(built.groups[tr]) & set(built.groups[va])


def test_recipe_rows_and_weights(cache):
    built, _, _ = cache
    idx = np.arange(len(built))
    masked = int(built.has_mask.sum())
    x0, y0, w0 = A.design(built, idx, A.RECIPES["R0"])
    assert len(x0) == 2 * len(built)
    x2, _, w2 = A.design(built, idx, A.RECIPES["R2"])
    assert len(x2) == 2 * (5 * len(built) + 5 * masked)
    x2v, _, _ = A.design(built, idx, A.TWO_VIEW["R2-2v"])
    assert x2v.shape == (len(x2), 2 * x2.shape[1])
    assert w0.sum() == pytest.approx(len(x0)) and w2.sum() == pytest.approx(len(x2))


def test_cv_scores_every_variant_on_held_out_auto_crops(cache):
    built, _, _ = cache
    splits = A.cv_splits(built, n_folds=2, repeats=1)
    variants = [(A.RECIPES["R0"], 0.03), (A.RECIPES["R1"], 0.03), (A.TWO_VIEW["R1-2v"], 0.03)]
    cv = A.run_cv(built, variants, splits)
    assert ("R0", 0.03, "scan_area") in cv.folds and ("R1-2v", 0.03, "expert_box") not in cv.folds
    assert ("R1", 0.03, "auto_roi_app") in cv.folds
    assert np.isfinite(cv.oof[("R1", 0.03, "auto_roi")]).all()
    assert A.choose(cv, ["R0", "R1"], [0.03])[0] in {"R0", "R1"}
    assert A.choose(cv, ["R0", "R1"], [0.03], "auto_roi")[0] in {"R0", "R1"}
    back = A.CvResult.from_json(cv.fold_json())
    assert back.mean_auto_roi("R1", 0.03) == pytest.approx(cv.mean_auto_roi("R1", 0.03))


def test_export_keeps_card_sections_it_does_not_write(tmp_path):
    import json

    card = tmp_path / "model_card.json"
    card.write_text(json.dumps({"id": "new", "metrics": {}}))
    A.carry_over({"id": "old", "novelty": {"limit": 1.0}, "stability": {"x": 2}}, card)
    out = json.loads(card.read_text())
    assert out["id"] == "new" and out["novelty"] == {"limit": 1.0} and out["stability"]["x"] == 2


def test_augmented_cache_pastes_marks_resamples_and_scores_the_auto_box(tmp_path, monkeypatch):
    """``cache --augment`` (recipes R4, R5): auto-box views only, the marks step as asked, the
    pasted-marks, resampled and JPEG views differing from the plain ones; CV runs R1, R4 and
    R5 on it and measures the held-out shift under JPEG re-encoding."""
    from thyroid_desktop.core.io.images import open_image
    from training.linear_head import feature_graph

    samples = _write_site(tmp_path / "ddti", 6, masks=True)
    samples += _write_site(tmp_path / "chaouchi", 6, masks=False, seed0=20)
    image = open_image(samples[0].path)
    boxes, fov = A.find_boxes(samples[0], image, DarkBlobSegmenter())
    crops = A.augmented_crops(image, boxes, fov, SIZE, "keep", 7)
    assert list(crops) == list(A.AUGMENTED_VIEWS)
    again = A.augmented_crops(image, boxes, fov, SIZE, "keep", 7)
    assert all(np.array_equal(crops[v], again[v]) for v in crops)  # seeded
    plain = A.cut_crops(image, boxes, fov, SIZE)
    assert np.array_equal(crops["auto"], plain["auto"])
    assert not np.array_equal(crops["auto_mk0"], crops["auto"])  # marks pasted
    painted = A.augmented_crops(image, boxes, fov, SIZE, "inpaint", 7)
    left = np.abs(painted["auto_mk0"].astype(int) - painted["auto"]).mean()
    drawn = np.abs(crops["auto_mk0"].astype(int) - crops["auto"]).mean()
    assert left < 0.5 * drawn  # the marks step paints most of them out

    # JPEG views: the fourth jitter and the box, re-encoded (fixed quality for the probe):
    # close to their clean crop, not to another box's
    def gap(a, b):
        return np.abs(a.astype(int) - b).mean()

    for view, box in ((A.JPEG_PROBE, "auto"), ("auto_jq0", "auto_j3"), ("auto_jq1", "auto")):
        assert 0 < gap(crops[view], plain[box]) < 8
        others = [v for v in A.AUTO_VIEWS if v != box]
        assert gap(crops[view], plain[box]) < min(gap(crops[view], plain[v]) for v in others)
    # the JPEG qualities are drawn last: the other views do not depend on them (a one-value
    # band draws nothing, so drawing it earlier would shift every later draw)
    monkeypatch.setattr(A.cache, "JPEG_BANDS", ((90, 91), (95, 96)))
    fixed = A.augmented_crops(image, boxes, fov, SIZE, "keep", 7)
    assert all(np.array_equal(fixed[v], crops[v]) for v in A.R4_VIEWS + (A.JPEG_PROBE,))
    assert not np.array_equal(fixed["auto_jq0"], crops["auto_jq0"])
    half = A.resampled(image, 0.5)
    assert (half.width, half.height) == (round(image.width / 2), round(image.height / 2))

    model, _ = feature_graph("efficientnet_lite0", SIZE, weights=None)
    built = A.build_cache(samples, model, DarkBlobSegmenter(), SIZE, marks="inpaint", augment=True)
    assert set(built.features) == set(A.AUGMENTED_VIEWS)
    assert set(built.app_views) == {"auto", A.JPEG_PROBE}
    assert not np.array_equal(built.app_views["auto"], built.app_views[A.JPEG_PROBE])
    assert built.marks == "inpaint"
    built.save(tmp_path / "c.npz")
    assert A.FeatureCache.load(tmp_path / "c.npz").marks == "inpaint"
    assert [r.name for r in A.recipes_of(built)] == ["R1", "R4", "R5", "R6"]
    assert A.scorings_of(built) == ("auto_roi", "auto_roi_app", A.JPEG_SCORING)
    x1, _, _ = A.design(built, np.arange(len(built)), A.RECIPES["R1"])
    x4, _, _ = A.design(built, np.arange(len(built)), A.RECIPES["R4"])
    x5, _, _ = A.design(built, np.arange(len(built)), A.RECIPES["R5"])
    assert len(x4) == len(x1) * len(A.R4_VIEWS) // len(A.AUTO_VIEWS)
    assert len(x5) == len(x1) * (len(A.R4_VIEWS) + len(A.JPEG_VIEWS)) // len(A.AUTO_VIEWS)
    assert A.JPEG_PROBE not in A.RECIPES["R5"].views  # measured on, never trained on
    # R6: R4's rows; its penalty pairs each marked / resampled view with the box it was cut as
    x6, _, _ = A.design(built, np.arange(len(built)), A.RECIPES["R6"])
    assert np.array_equal(x6, x4)
    d = A.nuisance_differences(built, np.arange(len(built)), A.RECIPES["R6"])
    assert d.shape == (2 * len(A.NUISANCE_PAIRS) * len(built), x4.shape[1])
    for view, plain in A.NUISANCE_PAIRS:
        assert gap(crops[view], crops[plain]) < min(
            gap(crops[view], crops[v]) for v in A.AUTO_VIEWS if v != plain
        )
    splits = A.cv_splits(built, n_folds=2, repeats=1)
    cv = A.run_cv(built, [(r, 0.03) for r in A.recipes_of(built)], splits)
    assert ("R4", 0.03, "auto_roi_app") in cv.folds and ("R4", 0.03, "scan_area") not in cv.folds
    assert A.reference_recipe(cv) == "R1" and A.beats_current(cv, "R1", 0.03)
    same = A.paired_differences(cv, "R4", cv, "R4")
    assert all(d["mean"] == 0 and d["folds_below"] == 0 for d in same.values())
    diff = A.paired_differences(cv, "R1", cv, "R4")["ddti"]
    r1, r4 = (
        np.mean([f["ddti"] for f in cv.folds[(r, 0.03, "auto_roi_app")]]) for r in ("R1", "R4")
    )
    assert diff["mean"] == pytest.approx(r4 - r1) and diff["folds"] == 2
    assert ("R5", 0.03, A.JPEG_SCORING) in cv.oof
    assert ("R6", 0.03, "auto_roi_app") in cv.folds
    table = A.cv_to_json(cv, [(A.RECIPES["R5"], 0.03)], built)
    assert set(table["R5@0.03"]["jpeg_shift"]) == {"ddti", "chaouchi"}


def test_fit_never_chooses_a_cv_only_recipe():
    """R5 (JPEG views) and R6 (the nuisance-penalised head) are compared in CV only: ``fit``
    neither picks them nor ranks R4 against them (``make models`` fits R4 by name, refused
    when it is more than ``NON_INFERIORITY`` below the best candidate)."""
    folds = {(r, 0.03, A.RANK_SCORING): [{"ddti": 0.8}] for r in ("R1", "R4", "R5", "R6")}
    assert A.RECIPES["R5"].experimental and A.RECIPES["R6"].experimental
    assert not A.RECIPES["R4"].experimental
    assert A.candidates(A.CvResult(folds, {})) == ["R1", "R4"]


def test_jpeg_shift_is_the_calibrated_held_out_move():
    """``jpeg_shift``: |dp| between the app's scoring of the clean and the re-encoded frame,
    both through the Platt map fitted on the clean out-of-fold logits (as ``fit`` calibrates)."""
    from thyroid_desktop.core.site.calibration import sigmoid
    from training.evaluate import fit_platt

    rng = np.random.default_rng(0)
    n = 200
    labels = np.arange(n) % 2
    sites = np.where(np.arange(n) < n // 2, "ddti", "chaouchi")
    # two CV repeats with different logits: each repeat calibrated by its own Platt map
    z = np.stack([labels * k - k / 2 + rng.normal(0, 1, n) for k in (2.0, 4.0)])
    moved = z + np.where(sites == "chaouchi", 0.5, 0.0)[None]  # only chaouchi moves
    cv = A.CvResult({}, {("R5", 0.03, A.RANK_SCORING): z, ("R5", 0.03, A.JPEG_SCORING): moved})
    shift = A.jpeg_shift(cv, labels, sites, "R5", 0.03)
    assert shift["ddti"]["mean_abs"] == 0 and shift["ddti"]["p95_abs"] == 0
    want = []
    for rep in range(2):
        a, b = fit_platt(z[rep], labels)
        want.append(sigmoid(a * moved[rep] + b) - sigmoid(a * z[rep] + b))
    ch = sites == "chaouchi"
    assert shift["chaouchi"]["mean_abs"] == pytest.approx(np.abs(np.stack(want)[:, ch]).mean())
    a0, _ = fit_platt(z[0], labels)
    a1, _ = fit_platt(z[1], labels)
    assert abs(a0 - a1) > 0.1  # the two maps differ, so one map for both would fail above
    assert shift["chaouchi"]["mean_benign"] > 0 and shift["chaouchi"]["mean_malignant"] > 0


def tiny_cache(n: int = 2, **fields) -> A.FeatureCache:
    """A FeatureCache of ``n`` ddti images with zero features (``fields`` override)."""
    base = dict(
        keys=np.array([f"k{i}" for i in range(n)]),
        sites=np.array(["ddti"] * n),
        labels=np.arange(n) % 2,
        groups=np.array([str(i) for i in range(n)]),
        found=np.ones(n, bool),
        has_mask=np.ones(n, bool),
        features={"auto": np.zeros((n, 2, 3), np.float32)},
    )
    return A.FeatureCache(**{**base, **fields})


def test_cache_records_its_crop_step_and_backbone(tmp_path):
    """A cache says which marks step and which backbone made it (fit exports that backbone);
    a cache written before the field existed is the shipped backbone's."""
    cache = tiny_cache(3, marks="inpaint", backbone="efficientnet_lite2_aa")
    cache.save(tmp_path / "c.npz")
    back = A.FeatureCache.load(tmp_path / "c.npz")
    assert (back.marks, back.backbone) == ("inpaint", "efficientnet_lite2_aa")
    with np.load(tmp_path / "c.npz") as z:
        np.savez(tmp_path / "old.npz", **{k: z[k] for k in z.files if k != "backbone"})
    assert A.FeatureCache.load(tmp_path / "old.npz").backbone == A.BACKBONE


def test_tirads_heads_refuse_a_cache_cut_otherwise_than_the_classifier():
    """The descriptor heads read the classifier's features of the app's crop: a cache cut
    with the marks kept (or by another backbone) for a classifier that paints them out is
    refused, not fitted on."""
    from training.descriptors import check_cache

    card = {"backbone": A.BACKBONE, "input_size": A.INPUT_SIZE, "crop": {"marks": "inpaint"}}
    with pytest.raises(SystemExit, match="'marks': 'keep'"):
        check_cache(tiny_cache(marks="keep"), card)
    with pytest.raises(SystemExit, match="'resolution': 128"):  # a detail limit the card lacks
        check_cache(dataclasses.replace(tiny_cache(marks="inpaint"), resolution=128), card)
    check_cache(tiny_cache(marks="inpaint"), card)
    with pytest.raises(SystemExit, match="efficientnet_lite2_aa"):
        check_cache(tiny_cache(marks="inpaint", backbone="efficientnet_lite2_aa"), card)
    with pytest.raises(SystemExit, match="'input_size': 260.*--input-size 224"):
        check_cache(dataclasses.replace(tiny_cache(marks="inpaint"), input_size=260), card)
    # the card's side, not the constant's: a 260 px card takes a 260 px cache, not a 224 one
    at_260 = {**card, "input_size": 260}
    check_cache(dataclasses.replace(tiny_cache(marks="inpaint"), input_size=260), at_260)
    with pytest.raises(SystemExit, match="'input_size': 224.*--input-size 260"):
        check_cache(dataclasses.replace(tiny_cache(marks="inpaint"), input_size=224), at_260)


def test_site_caches_cut_differently_are_not_mixed():
    """ddti recut by another backbone while chaouchi was not: loading both is refused."""
    same = A.FeatureCache.concat([tiny_cache(marks="inpaint"), tiny_cache(marks="inpaint")])
    assert len(same) == 4 and same.backbone == A.BACKBONE
    other = tiny_cache(marks="inpaint", backbone="efficientnet_lite2_aa")
    with pytest.raises(SystemExit, match="cut differently"):
        A.FeatureCache.concat([tiny_cache(marks="inpaint"), other])


def test_fit_refuses_a_cv_of_a_cache_recut_since():
    cache = tiny_cache(marks="inpaint")
    old = dataclasses.replace(cache, input_size=A.LEGACY_INPUT_SIZE)
    # written before the input side was recorded: of a 260 px cache
    A.check_cv_of({"cache": {"marks": "inpaint", "backbone": A.BACKBONE}}, old)
    with pytest.raises(SystemExit, match="rerun `cv`"):
        A.check_cv_of({"cache": {"marks": "inpaint", "backbone": A.BACKBONE}}, cache)
    # written before the cut was recorded: marks kept, 260 px
    with pytest.raises(SystemExit, match="rerun `cv`"):
        A.check_cv_of({}, cache)
    A.check_cv_of({}, dataclasses.replace(old, marks="keep"))
    with pytest.raises(SystemExit, match="rerun `cv`"):
        A.check_cv_of({"cache": {"marks": "keep", "backbone": A.BACKBONE}}, cache)
    with pytest.raises(SystemExit, match="rerun `cv`"):
        A.check_cv_of({"cache": {**cache.cut, "resolution": 192}}, cache)


def test_invariant_head_stops_following_the_nuisance_and_keeps_the_signal():
    """``fit_invariant_head``: strength 0 is the plain L2 head; with the penalty the head
    follows a nuisance direction (one the training labels happen to follow too) far less,
    and still ranks by the feature that carries the label."""
    from training.linear_head import fit_head

    rng = np.random.default_rng(0)
    n, dim = 400, 6
    y = rng.integers(0, 2, n)
    x = rng.normal(size=(n, dim))
    x[:, 0] += 1.5 * y  # the signal
    x[:, 1] += 0.8 * y  # a nuisance that tracks the label in these data
    scale = np.array([1.0, 0.01, 30.0, 1.0, 5.0, 0.2])  # features of unequal scales
    x *= scale
    w = np.ones(n)
    nuisance = np.zeros((50, dim))
    nuisance[:, 1] = rng.normal(1.0, 0.2, 50) * scale[1]  # what the nuisance changes
    nuisance[:, 2] = rng.normal(0.0, 0.01, 50) * scale[2]  # and, a little, feature 2
    plain = fit_head(x, y, w, 0.1)
    same = A.fit_invariant_head(x, y, w, 0.1, nuisance, 0.0)
    assert np.allclose(same.coef, plain.coef, atol=1e-4)
    invariant = A.fit_invariant_head(x, y, w, 0.1, nuisance, 100.0)

    def response(head):  # logit change per unit of the nuisance, against the signal's
        return abs(head.coef[1] / np.sqrt(head.var[1])) / abs(head.coef[0] / np.sqrt(head.var[0]))

    assert response(invariant) < 0.2 * response(plain)
    assert invariant.coef[0] > 0
    assert A.nuisance_penalty(nuisance, x.var(axis=0), 0.0) == pytest.approx(np.eye(dim))
    assert A.nuisance_penalty(0 * nuisance, x.var(axis=0), 10.0) == pytest.approx(np.eye(dim))


def test_a_recipe_with_invariance_is_fitted_with_its_penalty():
    """``fit_recipe_head`` (what cv, cross-site and fit call): a recipe's penalty changes the
    head and makes it follow its view pairs' differences less; without one it is
    ``fit_head`` on ``design``'s rows."""
    from dataclasses import replace

    from training.linear_head import fit_head

    rng = np.random.default_rng(1)
    n, dim = 80, 5
    labels = np.arange(n) % 2
    base = rng.normal(size=(n, 1, dim)) + labels[:, None, None] * np.array([1.0, 0.6, 0, 0, 0])
    views = {v: base + 0.1 * rng.normal(size=(n, 2, dim)) for v in A.AUTO_VIEWS}
    views["auto_j0"][..., 1] += 1.0  # what this "nuisance" view changes: feature 1
    cache = A.FeatureCache(
        keys=np.array([f"k{i}" for i in range(n)]),
        sites=np.array(["ddti", "chaouchi"])[np.arange(n) // 2 % 2],
        labels=labels,
        groups=np.array([f"g{i}" for i in range(n)]),
        found=np.ones(n, bool),
        has_mask=np.zeros(n, bool),
        features=views,
        app_views={"auto": base.repeat(len(JITTERS), axis=1)},
        app_jitters=np.array(JITTERS, dtype=float),
    )
    idx = np.arange(n)
    r1 = A.RECIPES["R1"]
    plain = A.fit_recipe_head(cache, idx, r1, 0.03)
    assert np.allclose(plain.coef, fit_head(*A.design(cache, idx, r1), 0.03).coef)
    penalised = A.fit_recipe_head(
        cache, idx, replace(r1, invariant_to=(("auto_j0", "auto"),), invariance=10.0), 0.03
    )
    asked = replace(r1, invariant_to=(("auto_j0", "auto"),), invariance=10.0)
    d = A.nuisance_differences(cache, idx, asked)
    mirror_wise = [views["auto_j0"][:, m] - views["auto"][:, m] for m in (0, 1)]
    assert np.array_equal(d, np.concatenate(mirror_wise))  # each view with its own mirror
    assert np.abs(d @ penalised.coef).mean() < 0.5 * np.abs(d @ plain.coef).mean()
    assert penalised.coef[0] > 0
    # cv and cross-site fit a recipe's head through it: the penalised recipe scores otherwise
    splits = A.cv_splits(cache, n_folds=2, repeats=1)
    cv = A.run_cv(cache, [(r1, 0.03), (replace(asked, name="R1i"), 0.03)], splits)
    first, second = (cv.oof[(r, 0.03, "auto_roi")][0] for r in ("R1", "R1i"))
    assert not np.allclose(first, second)
    across = A.site_to_site(cache, r1, 0.03), A.site_to_site(cache, asked, 0.03)
    assert any(across[0][k].auroc != across[1][k].auroc for k in across[0])


def test_nuisance_benchmark_covariates_follow_design_rows(monkeypatch):
    """`benchmarks/nuisance_heads_cv.py` builds one covariate value per row of `cv.design`
    (images with and without a mask, each view, each with its mirror): the value must be
    that row's image's, in design's order, or the dropped covariate adjusts the wrong rows."""
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[2] / "benchmarks"))
    import nuisance_heads_cv as N

    from training.app_path.cv import design

    n = 6
    has_mask = np.array([True, False, True, True, False, False])
    # Each image's features carry its index, so design's rows can be traced back to images.
    feats = np.repeat(np.arange(n, dtype=np.float32)[:, None, None], 2, axis=1).repeat(3, 2)
    fov = np.array([[0, 0, 400, 100], [0, 0, 100, 100]] * 3)  # wide scan area = two panels
    cache = tiny_cache(
        n,
        has_mask=has_mask,
        sites=np.array(["ddti", "chaouchi"] * 3),
        features={"auto": feats, "auto_j0": feats + 0.25},
        boxes={"fov": fov, "auto": np.array([[0, 0, 10 + i, 5] for i in range(n)])},
    )
    recipe = A.Recipe("T", "test", views=("auto",), mask_views=("auto_j0",))
    idx = np.array([5, 0, 2, 3, 1])
    x, _, _ = design(cache, idx, recipe)
    image = np.floor(x[:, 0]).astype(int)  # the image each row was cut from
    layout = N.layout_covariate(cache, idx, recipe)[:, 0]
    assert len(layout) == len(x)
    np.testing.assert_array_equal(layout, N.two_panels(cache)[image])
    side = N.box_covariate(cache, idx, recipe)[:, 0]
    np.testing.assert_allclose(side, np.log(10.0 + image))
