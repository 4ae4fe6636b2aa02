"""The app-path cross-site check and the experimental grey-level step, on synthetic features
and crops (a tiny random-weight backbone where one is needed)."""

import argparse
import dataclasses
import json

import numpy as np
import pytest

from thyroid_desktop.core.pipeline.roi import JITTERS
from thyroid_desktop.core.site.metrics import auroc_with_ci
from training import app_path as A
from training.app_path import cache as cache_module, fit as fit_module
from training.grey_levels import GreyLevels, apply, stretch
from training.linear_head import fit_head


def two_site_cache(flip_chaouchi: bool, n_ddti: int = 40, n_chaouchi: int = 30, seed: int = 0):
    """ddti and chaouchi images (different counts) whose features carry the label along one
    direction (the opposite one in chaouchi with ``flip_chaouchi``), in every R1 view and app
    jitter view; cases of 2 images."""
    rng = np.random.default_rng(seed)
    n = n_ddti + n_chaouchi
    sites = np.array(["ddti"] * n_ddti + ["chaouchi"] * n_chaouchi)
    labels = np.r_[np.arange(n_ddti) % 2, (np.arange(n_chaouchi) // 3) % 2]
    sign = np.where((sites == "chaouchi") & flip_chaouchi, -1.0, 1.0)
    signal = (2 * labels - 1) * sign

    def view(*shape):
        x = rng.normal(0, 0.8, (n, *shape, 6)).astype(np.float32)
        x[..., 0] += signal.reshape((-1,) + (1,) * len(shape))
        return x

    return A.FeatureCache(
        keys=np.array([f"{s}/{i}" for i, s in enumerate(sites)]),
        sites=sites,
        labels=labels,
        groups=np.array([f"{s}-{i // 2}" for i, s in enumerate(sites)]),
        found=np.ones(n, bool),
        has_mask=np.ones(n, bool),
        features={v: view(2) for v in A.AUTO_VIEWS},
        app_views={"auto": view(len(JITTERS))},
        app_jitters=np.asarray(JITTERS, np.float64),
    )


def test_site_to_site_is_the_app_scoring_of_a_head_fitted_on_the_other_site_only():
    cache = two_site_cache(flip_chaouchi=False)
    got = A.site_to_site(cache, A.RECIPES["R1"], 0.03)
    assert set(got) == {"ddti->chaouchi", "chaouchi->ddti"}
    for train, test in (("ddti", "chaouchi"), ("chaouchi", "ddti")):
        tr = np.flatnonzero(cache.sites == train)
        te = np.flatnonzero(cache.sites == test)
        head = fit_head(*A.design(cache, tr, A.RECIPES["R1"]), 0.03)
        z = A.score(head, cache, te, "auto", False, app_views=True)  # crop, mirror, jitters
        assert got[f"{train}->{test}"] == auroc_with_ci(cache.labels[te], z, cache.groups[te])
    assert got["ddti->chaouchi"].n == 30 and got["chaouchi->ddti"].n == 40
    assert 0.7 < got["ddti->chaouchi"].auroc <= got["ddti->chaouchi"].ci95[1]


def test_site_to_site_never_reads_the_scored_sites_labels_to_fit():
    """Relabelling the scored collection changes its score's sign, not the head: a head that
    had read them would follow the new labels."""
    same = A.site_to_site(two_site_cache(flip_chaouchi=False), A.RECIPES["R1"], 0.03)
    flipped = A.site_to_site(two_site_cache(flip_chaouchi=True), A.RECIPES["R1"], 0.03)
    assert same["ddti->chaouchi"].auroc > 0.7
    assert flipped["ddti->chaouchi"].auroc == pytest.approx(1 - same["ddti->chaouchi"].auroc)
    assert (
        flipped["chaouchi->ddti"].auroc < 0.3
    )  # fitted on the flipped labels, ranks ddti backwards


def test_stretch_maps_the_scan_area_percentiles_and_keeps_the_mask_black():
    rng = np.random.default_rng(0)
    crop = np.zeros((64, 64, 3), np.uint8)
    crop[:, 16:] = rng.integers(40, 120, (64, 48, 1))  # a dim scan area right of a mask
    out = stretch(crop)
    assert out.dtype == np.float32
    assert not out[:, :16].any()
    inside = out[:, 16:, 0]
    assert np.percentile(inside, 1) == pytest.approx(0, abs=2)
    assert np.percentile(inside, 99) == pytest.approx(255, abs=2)
    # the order of grey levels is kept: a brighter pixel stays brighter
    order = np.argsort(crop[:, 16:, 0].ravel(), kind="stable")
    assert np.all(np.diff(inside.ravel()[order]) >= 0)
    # the same tissue at another gain gives the same crop
    brighter = crop.copy()
    brighter[:, 16:] = np.clip(crop[:, 16:].astype(int) * 2, 0, 255).astype(np.uint8)
    assert np.abs(stretch(brighter)[:, 16:] - out[:, 16:]).max() < 4


def test_stretch_leaves_a_black_or_flat_crop_and_unknown_steps_are_refused():
    black = np.zeros((32, 32, 3), np.uint8)
    assert not stretch(black).any()
    flat = np.full((32, 32, 3), 90, np.uint8)
    assert np.array_equal(stretch(flat), flat.astype(np.float32))
    crops = np.stack([black, flat])
    assert apply(crops, GreyLevels.NONE) is crops
    assert apply(crops, "stretch").shape == crops.shape
    with pytest.raises(ValueError, match="equalise"):
        apply(crops, "equalise")


def test_cache_records_the_grey_level_step_only_when_it_is_used(tmp_path):
    plain = two_site_cache(flip_chaouchi=False, n_ddti=4, n_chaouchi=4)
    assert "grey_levels" not in plain.cut  # caches cut before the step existed still match
    assert plain.cut == A.FeatureCache.cut_of(plain.marks, plain.backbone, plain.resolution)
    stretched = dataclasses.replace(plain, grey_levels="stretch")
    assert stretched.cut["grey_levels"] == "stretch"
    stretched.save(tmp_path / "c.npz")
    assert A.FeatureCache.load(tmp_path / "c.npz").grey_levels == "stretch"
    with np.load(tmp_path / "c.npz") as z:  # a cache written before the field existed
        np.savez(tmp_path / "old.npz", **{k: z[k] for k in z.files if k != "grey_levels"})
    assert A.FeatureCache.load(tmp_path / "old.npz").grey_levels == "none"
    with pytest.raises(SystemExit, match="cut differently"):
        A.FeatureCache.concat([plain, stretched])


def test_cache_records_its_input_side_and_an_old_cache_is_read_as_260_px(tmp_path):
    plain = two_site_cache(flip_chaouchi=False, n_ddti=4, n_chaouchi=4)
    assert plain.input_size == A.INPUT_SIZE == plain.cut["input_size"]
    small = dataclasses.replace(plain, input_size=192)
    assert small.cut == {**plain.cut, "input_size": 192}  # cv.json and fit tell them apart
    small.save(tmp_path / "c.npz")
    assert A.FeatureCache.load(tmp_path / "c.npz").input_size == 192
    with np.load(tmp_path / "c.npz") as z:  # a cache written before the field existed
        np.savez(tmp_path / "old.npz", **{k: z[k] for k in z.files if k != "input_size"})
    assert A.FeatureCache.load(tmp_path / "old.npz").input_size == A.LEGACY_INPUT_SIZE == 260
    assert A.FeatureCache.concat([small, small]).input_size == 192
    with pytest.raises(SystemExit, match="cut differently"):
        A.FeatureCache.concat([plain, small])
    # a cv.json written before the field existed was of a 260 px cache
    old_cv = {"cache": {k: v for k, v in plain.cut.items() if k != "input_size"}}
    A.check_cv_of({"cache": plain.cut}, plain)
    with pytest.raises(SystemExit, match="rerun `cv`"):
        A.check_cv_of(old_cv, plain)
    A.check_cv_of(old_cv, dataclasses.replace(plain, input_size=260))


def test_fit_refuses_a_cache_whose_grey_levels_were_changed(monkeypatch, tmp_path):
    stretched = dataclasses.replace(two_site_cache(False, 4, 4), grey_levels="stretch")
    card = {"data": {"split": {"test_files": []}}, "backbone": A.BACKBONE}
    monkeypatch.setattr(fit_module, "shipped_card", lambda *_: card)
    monkeypatch.setattr(fit_module, "development_samples", lambda *_: [])
    monkeypatch.setattr(fit_module, "load_cache", lambda *_: stretched)
    args = argparse.Namespace(export=tmp_path, data=tmp_path, out=tmp_path)
    with pytest.raises(SystemExit, match="stretch"):
        A.cmd_fit(args)


def test_fit_refuses_another_input_side_unless_asked_for_a_candidate(monkeypatch, tmp_path):
    """The novelty reference, scope model and TI-RADS heads read the classifier's features:
    a cache at another input side is not fitted over them; a candidate leaves them out."""
    small = dataclasses.replace(two_site_cache(False, 4, 4), input_size=192)
    card = {
        "data": {"split": {"test_files": []}},
        "backbone": A.BACKBONE,
        "input_size": A.INPUT_SIZE,
    }
    monkeypatch.setattr(fit_module, "shipped_card", lambda *_: card)
    monkeypatch.setattr(fit_module, "development_samples", lambda *_: [])
    monkeypatch.setattr(fit_module, "load_cache", lambda *_: small)
    args = argparse.Namespace(export=tmp_path, data=tmp_path, out=tmp_path)
    for asked in (dict(), dict(without_feature_models=False)):
        with pytest.raises(SystemExit, match="192 px.*refitting"):
            A.cmd_fit(argparse.Namespace(**vars(args), **asked))
    # asked for: it goes on to the CV it was chosen by (none here)
    with pytest.raises(FileNotFoundError, match="cv.json"):
        A.cmd_fit(argparse.Namespace(**vars(args), without_feature_models=True))
    # the card's own side, whatever INPUT_SIZE is: a 192 px card takes a 192 px cache
    card["input_size"] = 192
    with pytest.raises(FileNotFoundError, match="cv.json"):
        A.cmd_fit(args)


def test_a_candidate_card_keeps_what_does_not_read_the_features(tmp_path):
    previous = {"novelty": {"file": "n"}, "scope": {}, "tirads_heads": {}, "stability": {"x": 1}}
    path = tmp_path / "model_card.json"
    path.write_text('{"id": "new"}')
    fit_module.carry_over(previous, path, fit_module.FEATURE_MODELS)
    assert json.loads(path.read_text()) == {"id": "new", "stability": {"x": 1}}
    fit_module.carry_over(previous, path)
    assert set(json.loads(path.read_text())) == {"id", "stability", *fit_module.FEATURE_MODELS}


def test_extractor_applies_the_step_to_every_crop_it_is_given():
    from training.linear_head import feature_graph

    model, _ = feature_graph("efficientnet_lite0", 64, weights=None)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 140, (3, 64, 64, 3)).astype(np.uint8)
    plain = A.make_extractor(model)
    stretched = A.make_extractor(model, grey_levels="stretch")
    want = plain(apply(crops, "stretch"), mirror=True)
    assert np.allclose(stretched(crops, mirror=True), want, atol=1e-5)
    assert not np.array_equal(plain(crops), stretched(crops))


def test_cache_building_passes_its_step_to_every_extractor(monkeypatch):
    """build_cache and add_app_views (the app's jitter views) both cut with the step."""
    seen = []

    def spy(model, batch_size=32, grey_levels="none"):
        seen.append(grey_levels)
        raise RuntimeError("stop")  # nothing else is needed from the extractor

    monkeypatch.setattr(cache_module, "make_extractor", spy)
    with pytest.raises(RuntimeError, match="stop"):
        A.build_cache([], None, None, grey_levels="stretch")
    cache = dataclasses.replace(two_site_cache(False, 2, 2), grey_levels="stretch")
    with pytest.raises(RuntimeError, match="stop"):
        A.add_app_views(cache, [], None)
    assert seen == ["stretch", "stretch"]


def test_cv_can_train_each_fold_on_one_collection_and_still_score_every_held_out_image():
    """With chaouchi's label running the other way, ddti-only heads rank chaouchi's held-out
    images backwards and chaouchi-only heads ddti's; every held-out image is scored."""
    cache = two_site_cache(flip_chaouchi=True)
    splits = A.cv_splits(cache, n_folds=2, repeats=1)
    variants = [(A.RECIPES["R1"], 0.03)]
    only = A.run_cv(cache, variants, splits, train_sites=("ddti",))
    other = A.run_cv(cache, variants, splits, train_sites=("chaouchi",))
    key = ("R1", 0.03, "auto_roi_app")
    assert not np.isnan(only.oof[key]).any() and not np.isnan(other.oof[key]).any()
    assert all(f["chaouchi"] < 0.2 and f["ddti"] > 0.8 for f in only.folds[key])
    assert all(f["ddti"] < 0.2 and f["chaouchi"] > 0.8 for f in other.folds[key])
