"""AI TI-RADS suggestions: the DDTI -> ACR mapping, mask geometry, heads, accept/override."""

import csv

import cv2
import numpy as np
import pytest

from tests.conftest import full_suggestion
from thyroid_desktop.core.clinical.measure import Scale, ScaleSource, longest_axis
from thyroid_desktop.core.clinical.tirads import (
    Composition,
    EchogenicFoci,
    Echogenicity,
    Margin,
    Shape,
    TiradsChoices,
)
from thyroid_desktop.core.pipeline.roi import ROI
from thyroid_desktop.core.pipeline.tirads_ai import (
    DDTI_COLUMNS,
    DDTI_TO_ACR,
    DescriptorHeads,
    Head,
    Suggestion,
    TiradsSuggestion,
    accept_all,
    ddti_to_acr,
    extents,
    geometry,
    mask_outline,
    nodule_mask,
    review_of,
)


@pytest.mark.parametrize(
    ("group", "word", "expected"),
    [
        ("composition", "predominantly solid", Composition.MIXED),
        ("composition", "Predominantly-solid ", Composition.MIXED),
        ("composition", "predominantly cystic", Composition.MIXED),
        ("composition", "spongiform", Composition.SPONGIFORM),
        ("composition", "solid", Composition.SOLID),
        ("composition", "dense", None),  # ambiguous: not used
        ("echogenicity", "isoechogenicity", Echogenicity.HYPER_ISO),
        ("echogenicity", "hyperechogenicity", Echogenicity.HYPER_ISO),
        ("echogenicity", "marked-hypoechogenicity", Echogenicity.VERY_HYPO),
        ("margin", "well defined smooth", Margin.SMOOTH),
        ("margin", "ill- defined", Margin.ILL_DEFINED),
        ("margin", "spiculated", Margin.LOBULATED),
        ("margin", "microlobulated", Margin.LOBULATED),
        ("echogenic_foci", "microcalcifications", EchogenicFoci.PUNCTATE),
        ("echogenic_foci", "macrocalcification", EchogenicFoci.MACRO),
        ("echogenic_foci", "non", EchogenicFoci.NONE),
        ("echogenic_foci", "", None),
    ],
)
def test_ddti_vocabulary_maps_to_acr(group, word, expected):
    assert ddti_to_acr(group, word) is expected


def test_every_ddti_word_in_the_metadata_is_mapped_or_knowingly_left_out(shared_data):
    """The table covers the real vocabulary; only "dense" and "None" are left out."""
    with open(shared_data / "ddti" / "metadata.csv", newline="") as fh:
        rows = list(csv.DictReader(fh))
    for group, column in DDTI_COLUMNS.items():
        words = {r[column].strip().lower() for r in rows} - {""}
        unmapped = {w for w in words if ddti_to_acr(group, w) is None}
        assert unmapped <= {"dense", "none"}, (group, unmapped)
        assert set(DDTI_TO_ACR[group]) <= words | {"cystic"}


def ellipse(w, h, shape=(200, 300)):
    m = np.zeros(shape, np.uint8)
    cv2.ellipse(m, (150, 100), (w // 2, h // 2), 0, 0, 360, 1, -1)
    return m.astype(bool)


def test_shape_and_size_from_the_mask_geometry():
    tall, wide = ellipse(40, 80), ellipse(90, 50)
    roi = ROI(100, 40, 100, 120)
    sug, outline, aspect = geometry(tall, roi)
    assert sug.value is Shape.TALLER and sug.method == "mask geometry" and aspect > 1.8
    assert 78 <= longest_axis(outline) <= 83  # uncalibrated: pixels
    assert geometry(wide, roi)[0].value is Shape.WIDER
    # Anisotropic spacing (row 0.2, col 0.1 mm): 80 px tall = 16 mm, 40 px wide = 4 mm.
    aniso = Scale(0.2, 0.1, ScaleSource.DICOM_REGIONS)
    w, h = extents(tall, aniso)
    assert w == pytest.approx(4.1, abs=0.15) and h == pytest.approx(16.2, abs=0.25)
    assert longest_axis(geometry(tall, roi, aniso)[1], aniso) == pytest.approx(16.2, abs=0.4)
    # A 30 x 40 rectangle: the longest axis is its diagonal, 50 px.
    rect = np.zeros((100, 100), bool)
    rect[10:50, 20:50] = True
    assert longest_axis(mask_outline(rect)) == pytest.approx(50, abs=1.5)
    # No mask: shape from the box, no outline (so no mask size).
    box_sug, outline, _ = geometry(None, ROI(0, 0, 30, 60))
    assert box_sug.value is Shape.TALLER and box_sug.method == "box geometry" and outline == ()


def test_nodule_mask_keeps_the_largest_part_inside_the_box():
    prob = np.zeros((100, 100), np.float32)
    prob[10:30, 10:30] = 0.9  # the nodule
    prob[12:14, 40:42] = 0.9  # a speck in the box
    prob[70:90, 70:90] = 0.9  # another nodule outside the box
    mask = nodule_mask(prob, ROI(5, 5, 40, 30))
    assert mask.sum() == 400 and not mask[80, 80]
    assert nodule_mask(prob, ROI(50, 5, 10, 10)) is None
    assert nodule_mask(None, ROI(0, 0, 5, 5)) is None


def make_heads(tmp_path):
    rng = np.random.default_rng(0)
    d = 6
    heads = {
        "composition": Head(
            (Composition.SPONGIFORM, Composition.MIXED, Composition.SOLID),
            np.zeros(d),
            np.ones(d),
            rng.normal(size=(3, d)),
            np.zeros(3),
        ),
        "echogenic_foci": Head(
            (EchogenicFoci.NONE, EchogenicFoci.PUNCTATE),
            np.zeros(d),
            np.ones(d),
            np.array([[1.0] * d, [-1.0] * d]),
            np.zeros(2),
        ),
    }
    path = tmp_path / "heads.npz"
    DescriptorHeads(heads).save(path)
    return DescriptorHeads.load(path)


def test_heads_round_trip_and_suggest(tmp_path):
    heads = make_heads(tmp_path)
    assert set(heads.heads) == {"composition", "echogenic_foci"}
    feats = -np.ones(6)
    sug = heads.suggest(feats, ROI(0, 0, 40, 20), ellipse(60, 30))
    foci = sug.groups["echogenic_foci"]
    assert foci.value is EchogenicFoci.PUNCTATE and foci.confidence > 0.99
    assert sug.groups["shape"].value is Shape.WIDER
    assert list(sug.groups) == ["composition", "shape", "echogenic_foci"]  # lexicon order
    assert not sug.complete  # no echogenicity or margin head: they count 0
    p = heads.heads["composition"].probabilities(feats)
    assert p.sum() == pytest.approx(1) and sug.groups["composition"].confidence == max(p)
    # points: composition + punctate (3); shape wider (0); the missing groups count 0
    comp = sug.groups["composition"].value
    expected = 0 if comp is Composition.SPONGIFORM else comp.value[1] + 3
    assert sug.points == expected
    back = TiradsSuggestion.from_json(sug.to_json())
    assert {g: (s.value, s.method) for g, s in back.groups.items()} == {
        g: (s.value, s.method) for g, s in sug.groups.items()
    }
    assert back.points == sug.points
    assert back.groups["composition"].confidence == pytest.approx(comp_conf := max(p), abs=1e-3)
    assert 0 < comp_conf <= 1


def test_suggestions_count_only_once_confirmed_and_accept_fills_open_groups():
    sug = full_suggestion()  # solid 2, hypo 2, wider 0, smooth 0, punctate 3
    assert sug.points == 2 + 2 + 0 + 0 + 3 and sug.level.tr == 5 and sug.complete
    nothing = TiradsChoices()
    assert nothing.descriptors is None  # a suggestion alone is never a score
    assert set(review_of(nothing, sug).values()) == {"open"}
    mine = nothing.with_choice("echogenicity", Echogenicity.VERY_HYPO)
    accepted = accept_all(mine, sug)
    assert accepted.echogenicity is Echogenicity.VERY_HYPO  # the clinician's choice stays
    assert accepted.composition is Composition.SOLID and accepted.foci == {EchogenicFoci.PUNCTATE}
    assert accepted.descriptors.points == 2 + 3 + 0 + 0 + 3
    review = review_of(accepted, sug)
    assert review == {
        "composition": "accepted",
        "echogenicity": "changed",
        "shape": "accepted",
        "margin": "accepted",
        "echogenic_foci": "accepted",
    }
    cleared = accepted.with_focus(EchogenicFoci.PUNCTATE, False)
    assert review_of(cleared, sug)["echogenic_foci"] == "open"  # nothing pre-ticked
    overridden = cleared.with_focus(EchogenicFoci.MACRO, True)
    assert review_of(overridden, sug)["echogenic_foci"] == "changed"
    # Foci set by the clinician before accepting stay as they are.
    none_chosen = nothing.with_focus(EchogenicFoci.NONE, True)
    assert accept_all(none_chosen, sug).foci == {EchogenicFoci.NONE}
    assert TiradsChoices.from_json(accepted.to_json()) == accepted


def test_grey_levels_are_judged_against_the_tissue_around_the_nodule():
    from thyroid_desktop.core.pipeline.tirads_ai import INTENSITY_FEATURES, intensity_features

    rng = np.random.default_rng(0)
    tissue = rng.normal(120, 10, (200, 300)).clip(0, 255)
    nodule = ellipse(60, 40)
    dark, bright = tissue.copy(), tissue.copy()
    dark[nodule] *= 0.5
    bright[nodule] *= 1.3
    roi = ROI(120, 80, 60, 40)
    f_dark = dict(zip(INTENSITY_FEATURES, intensity_features(dark, nodule, roi), strict=True))
    f_bright = dict(zip(INTENSITY_FEATURES, intensity_features(bright, nodule, roi), strict=True))
    assert f_dark["log_mean_ratio"] == pytest.approx(np.log(0.5), abs=0.05)
    assert f_bright["log_mean_ratio"] > 0.2
    # The scanner's gain does not change them: the nodule is compared with its surroundings.
    gained = intensity_features(dark * 1.5, nodule, roi)
    assert gained[0] == pytest.approx(f_dark["log_mean_ratio"], abs=0.02)
    # A cystic (anechoic) half is counted as such.
    cystic = tissue.copy()
    half = nodule.copy()
    half[:, 150:] = False
    cystic[half] = 2.0
    f_cyst = dict(zip(INTENSITY_FEATURES, intensity_features(cystic, nodule, roi), strict=True))
    assert 0.4 < f_cyst["anechoic_fraction"] < 0.6
    # Without a mask the ellipse inscribed in the box is used.
    assert intensity_features(dark, None, roi)[0] == pytest.approx(np.log(0.5), abs=0.08)


def _intensity_over_the_whole_frame(gray, mask, roi, fov_mask):
    """``intensity_features`` as first written: the ring dilated over the whole frame."""
    g = np.asarray(gray, np.float32)
    h, w = g.shape
    if mask is None or not np.any(mask):
        mask = np.zeros((h, w), np.uint8)
        r = roi.clipped(w, h)
        centre, axes = (r.x + r.w // 2, r.y + r.h // 2), (max(r.w // 2, 1), max(r.h // 2, 1))
        cv2.ellipse(mask, centre, axes, 0, 0, 360, 1, -1)
    inside = np.asarray(mask, bool)
    ys, xs = np.nonzero(inside)
    size = max(int(xs.max() - xs.min() + 1), int(ys.max() - ys.min() + 1))
    k = max(3, int(0.35 * size)) | 1
    kernel = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (k, k))
    ring = cv2.dilate(inside.astype(np.uint8), kernel).astype(bool) & ~inside
    if fov_mask is not None:
        ring &= fov_mask
    vals, around = g[inside], g[ring]
    ref = float(np.median(around if around.size else g)) + 1.0
    return np.array(
        [
            np.log((vals.mean() + 1.0) / ref),
            np.log((np.median(vals) + 1.0) / ref),
            np.percentile(vals, 10) / ref,
            np.percentile(vals, 90) / ref,
            float((vals < 0.35 * ref).mean()),
            float((vals > 1.6 * ref).mean()),
            vals.std() / ref,
        ]
    )


def test_grey_levels_read_only_the_window_around_the_nodule_and_give_the_same_values():
    """The ring is read from a window around the nodule (speed): the values are those of the
    whole-frame computation, for boxes and masks in the middle, at the edges and corners,
    with and without a scan-area mask, on uint8 and float frames."""
    from thyroid_desktop.core.pipeline.tirads_ai import intensity_features

    rng = np.random.default_rng(3)
    h, w = 240, 320
    gray = rng.integers(0, 256, (h, w)).astype(np.uint8)
    fov = np.zeros((h, w), bool)
    fov[10:230, 30:300] = True
    checked = 0
    for x, y, bw, bh in [(120, 80, 60, 40), (0, 0, 50, 30), (290, 200, 40, 50), (-5, 100, 30, 90),
                         (10, 5, 300, 230), (150, 120, 3, 3)]:  # fmt: skip
        roi = ROI(x, y, bw, bh)
        blob = np.zeros((h, w), bool)
        r = roi.clipped(w, h)
        blob[r.y : r.y + r.h, r.x : r.x + max(r.w // 2, 1)] = True  # a mask off the box centre
        for mask in (None, blob):
            for fov_mask in (None, fov):
                for frame in (gray, gray.astype(np.float64) * 0.7):
                    got = intensity_features(frame, mask, roi, fov_mask)
                    want = _intensity_over_the_whole_frame(frame, mask, roi, fov_mask)
                    np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)
                    checked += 1
    assert checked == 48


def test_a_choice_the_ai_set_is_not_credited_to_the_clinician_after_the_box_changed():
    """Accept AI suggestions, then the box changes and the AI now suggests another margin:
    the margin was still set by accepting the AI (for the earlier box), not by the clinician
    against the AI (the report said "clinician (AI differed)"; found in a clinician trial).
    The clinician's own pick of a group ends that; it survives the session file."""
    import dataclasses

    from thyroid_desktop.core.report.pdf import SET_BY, tirads_rows

    sug = full_suggestion()
    accepted = accept_all(TiradsChoices().with_choice("shape", Shape.TALLER), sug)
    assert accepted.by_ai == {"composition", "echogenicity", "margin", "echogenic_foci"}
    groups = dict(sug.groups)
    groups["margin"] = Suggestion(Margin.ILL_DEFINED, 0.95, "image features")
    groups["echogenic_foci"] = Suggestion(EchogenicFoci.MACRO, 0.6, "image features")
    del groups["composition"]
    new_box = dataclasses.replace(sug, groups=groups)
    review = review_of(accepted, new_box)
    assert review == {
        "composition": "accepted earlier",
        "echogenicity": "accepted",
        "shape": "changed",  # the clinician's own, against the AI
        "margin": "accepted earlier",
        "echogenic_foci": "accepted earlier",
    }
    rows = {r[0]: r for r in tirads_rows(accepted, new_box)}
    assert any(SET_BY["accepted earlier"] in cell for cell in rows["margin"])
    assert not any("clinician" in cell for cell in rows["margin"])
    mine = accepted.with_choice("margin", Margin.SMOOTH)  # picked again by the clinician
    assert "margin" not in mine.by_ai and review_of(mine, new_box)["margin"] == "changed"
    assert TiradsChoices.from_json(accepted.to_json()) == accepted
    old_file = {k: v for k, v in accepted.to_json().items() if k != "by_ai"}
    assert TiradsChoices.from_json(old_file).by_ai == frozenset()
    assert TiradsChoices.from_json({**accepted.to_json(), "by_ai": ["bogus", 3]}).by_ai == set()
    assert TiradsChoices.from_json({**accepted.to_json(), "by_ai": 5}).by_ai == set()


def test_a_heads_confidence_is_never_printed_as_certain():
    """A GUI trial read "AI 100 %" beside a suggestion: a head's 0.996 is not certainty."""
    from thyroid_desktop.core.clinical.tirads import Composition
    from thyroid_desktop.core.pipeline.tirads_ai import Suggestion

    def text(c):
        return Suggestion(Composition.SOLID, c, "image features").confidence_text()

    assert [text(c) for c in (0.996, 0.995, 0.994, 0.72, 0.004)] == [
        "> 99 %", "> 99 %", "99 %", "72 %", "< 1 %"
    ]  # fmt: skip
    assert Suggestion(Composition.SOLID, None, "mask geometry").confidence_text() == ""
