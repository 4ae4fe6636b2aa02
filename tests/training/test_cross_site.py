"""The app-path cross-site check and the experimental crop intensity step, on synthetic
features and crops (no backbone)."""

import dataclasses

import numpy as np
import pytest

from thyroid_desktop.core.pipeline.roi import JITTERS
from training import app_path as A
from training.intensity import normalise, stretch


def two_site_cache(flip_chaouchi: bool, n: int = 40, dim: int = 6, seed: int = 0):
    """ddti and chaouchi images whose features carry the label along one direction (the
    opposite one in chaouchi with ``flip_chaouchi``), in every R1 view and app jitter view."""
    rng = np.random.default_rng(seed)
    sites = np.array(["ddti"] * n + ["chaouchi"] * n)
    labels = np.tile(np.arange(n) % 2, 2)
    sign = np.where((sites == "chaouchi") & flip_chaouchi, -1.0, 1.0)
    signal = (2 * labels - 1) * sign

    def view(*shape):
        x = rng.normal(0, 0.3, (2 * n, *shape, dim)).astype(np.float32)
        x[..., 0] += signal.reshape((-1,) + (1,) * len(shape))
        return x

    return A.FeatureCache(
        keys=np.array([f"{s}/{i}" for i, s in enumerate(sites)]),
        sites=sites,
        labels=labels,
        groups=np.array([str(i // 2) for i in range(2 * n)]),  # cases of 2 images
        found=np.ones(2 * n, bool),
        has_mask=np.ones(2 * n, bool),
        features={v: view(2) for v in A.AUTO_VIEWS},
        app_views={"auto": view(len(JITTERS))},
        app_jitters=np.asarray(JITTERS, np.float64),
    )


def test_site_to_site_scores_the_other_site_only_through_the_app_scoring():
    same = A.site_to_site(two_site_cache(flip_chaouchi=False), A.RECIPES["R1"], 0.03)
    assert set(same) == {"ddti->chaouchi", "chaouchi->ddti"}
    for row in same.values():
        assert row["auroc"] > 0.99 and row["n"] == 40 and row["n_positive"] == 20
        lo, hi = row["ci95"]
        assert lo <= row["auroc"] <= hi
    # a site whose label runs the other way is ranked backwards: the head never saw it
    flipped = A.site_to_site(two_site_cache(flip_chaouchi=True), A.RECIPES["R1"], 0.03)
    assert all(row["auroc"] < 0.01 for row in flipped.values())


def test_site_to_site_uses_the_app_jitter_views():
    """Scrambling the app's jitter views of the scored site moves the figure: they are part
    of the score, as in predict."""
    cache = two_site_cache(flip_chaouchi=False)
    before = A.site_to_site(cache, A.RECIPES["R1"], 0.03)["ddti->chaouchi"]["auroc"]
    rng = np.random.default_rng(1)
    views = cache.app_views["auto"].copy()
    ch = cache.sites == "chaouchi"
    views[ch, :, 0] = rng.normal(0, 30, views[ch, :, 0].shape)
    scrambled = dataclasses.replace(cache, app_views={"auto": views})
    after = A.site_to_site(scrambled, A.RECIPES["R1"], 0.03)["ddti->chaouchi"]["auroc"]
    assert after < before - 0.1


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
    a, b = crop[:, 16:, 0].ravel(), inside.ravel()
    order = np.argsort(a, kind="stable")
    assert np.all(np.diff(b[order]) >= 0)
    # the same tissue at another gain gives the same crop
    brighter = crop.copy()
    brighter[:, 16:] = np.clip(crop[:, 16:].astype(int) * 2, 0, 255).astype(np.uint8)
    assert np.abs(stretch(brighter)[:, 16:] - out[:, 16:]).max() < 4


def test_stretch_leaves_a_black_or_flat_crop_and_unknown_steps_refused():
    black = np.zeros((32, 32, 3), np.uint8)
    assert not stretch(black).any()
    flat = np.full((32, 32, 3), 90, np.uint8)
    assert np.array_equal(stretch(flat), flat.astype(np.float32))
    crops = np.stack([black, flat])
    assert normalise(crops, "none") is crops
    assert normalise(crops, "stretch").shape == crops.shape
    with pytest.raises(ValueError, match="unknown intensity step"):
        normalise(crops, "equalise")


def test_cache_records_the_intensity_step_only_when_it_is_used(tmp_path):
    plain = two_site_cache(flip_chaouchi=False, n=4)
    assert "intensity" not in plain.cut  # caches cut before the step existed still match
    stretched = dataclasses.replace(plain, intensity="stretch")
    assert stretched.cut["intensity"] == "stretch"
    stretched.save(tmp_path / "c.npz")
    assert A.FeatureCache.load(tmp_path / "c.npz").intensity == "stretch"
    with pytest.raises(SystemExit, match="cut differently"):
        A.FeatureCache.concat([plain, stretched])


def test_extractor_normalises_every_crop_it_is_given():
    from training.linear_head import feature_graph

    model, _ = feature_graph("efficientnet_lite0", 64, weights=None)
    rng = np.random.default_rng(0)
    crops = rng.integers(0, 140, (3, 64, 64, 3)).astype(np.uint8)
    plain = A.make_extractor(model)
    stretched = A.make_extractor(model, intensity="stretch")
    want = plain(normalise(crops, "stretch"), mirror=True)
    assert np.allclose(stretched(crops, mirror=True), want, atol=1e-5)
    assert not np.array_equal(plain(crops), stretched(crops))
