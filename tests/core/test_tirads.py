"""ACR TI-RADS scoring against the white paper's chart (Tessler et al. 2017)."""

import pytest

from thyroid_desktop.core.clinical.tirads import (
    Composition as C,
    EchogenicFoci as F,
    Echogenicity as E,
    Margin as M,
    Shape as S,
    TiradsDescriptors,
    label,
    recommend,
)


def nodule(c=C.SOLID, e=E.HYPO, s=S.WIDER, m=M.SMOOTH, foci=(F.NONE,)):
    return TiradsDescriptors(c, e, s, m, frozenset(foci))


@pytest.mark.parametrize(
    ("desc", "points", "tr"),
    [
        (nodule(C.CYSTIC, E.ANECHOIC), 0, 1),
        (nodule(C.SPONGIFORM, E.VERY_HYPO, S.TALLER, M.EXTRATHYROIDAL), 0, 1),  # no more points
        (nodule(C.MIXED, E.HYPER_ISO), 2, 2),
        (nodule(C.SOLID, E.HYPER_ISO), 3, 3),
        (nodule(C.SOLID, E.HYPO), 4, 4),
        (nodule(C.SOLID, E.HYPO, foci=(F.MACRO,)), 5, 4),
        (nodule(C.SOLID, E.HYPO, m=M.LOBULATED, foci=(F.NONE,)), 6, 4),
        (nodule(C.SOLID, E.HYPO, foci=(F.PUNCTATE,)), 7, 5),
        (nodule(C.SOLID, E.VERY_HYPO, S.TALLER, M.EXTRATHYROIDAL, (F.MACRO, F.PUNCTATE)), 15, 5),
    ],
)
def test_points_and_level(desc, points, tr):
    assert desc.points == points
    assert desc.level.tr == tr


@pytest.mark.parametrize(
    ("tr_desc", "size_mm", "action"),
    [
        (nodule(C.SOLID, E.HYPER_ISO), 25.0, "FNA"),  # TR3 FNA >= 2.5 cm
        (nodule(C.SOLID, E.HYPER_ISO), 15.0, "follow-up"),
        (nodule(C.SOLID, E.HYPER_ISO), 14.9, "no FNA"),
        (nodule(C.SOLID, E.HYPO), 15.0, "FNA"),  # TR4 FNA >= 1.5 cm
        (nodule(C.SOLID, E.HYPO), 10.0, "follow-up"),
        (nodule(C.SOLID, E.HYPO, foci=(F.PUNCTATE,)), 10.0, "FNA"),  # TR5 FNA >= 1 cm
        (nodule(C.SOLID, E.HYPO, foci=(F.PUNCTATE,)), 5.0, "follow-up"),
        (nodule(C.SOLID, E.HYPO, foci=(F.PUNCTATE,)), 4.0, "no FNA"),
        (nodule(C.MIXED, E.HYPER_ISO), 40.0, "no FNA"),  # TR2 never
    ],
)
def test_size_based_recommendation(tr_desc, size_mm, action):
    assert recommend(tr_desc.level, size_mm).action == action


def test_the_advice_prints_the_size_it_decided_on():
    """A GUI trial read "TR4, 1.5 cm: follow-up" for 14.8 mm: the size was rounded for the
    text after the decision. Now the size is printed in mm as the panel gives it, and the
    decision is taken on that printed size."""
    tr4 = nodule(C.SOLID, E.HYPO).level
    assert recommend(tr4, 14.846).text == (
        "TR4, 14.8 mm: follow-up, ultrasound at 1, 2, 3 and 5 years (FNA from 15 mm)."
    )
    fna = recommend(tr4, 14.96)
    assert fna.action == "FNA" and fna.text == (
        "TR4, 15.0 mm: FNA recommended (TR4: FNA from 15 mm; follow-up from 10 mm, "
        "ultrasound at 1, 2, 3 and 5 years)."
    )
    assert recommend(tr4, None).text.endswith("FNA from 15 mm; follow-up from 10 mm, "
                                               "ultrasound at 1, 2, 3 and 5 years. Size not calibrated.")  # fmt: skip
    low = recommend(tr4, 7.04)
    assert low.action == "no FNA" and low.text == (
        "TR4, 7.0 mm: below the follow-up size (10 mm); no FNA."
    )


def test_one_point_is_singular():
    from thyroid_desktop.core.clinical.tirads import points_text

    assert (points_text(0), points_text(1), points_text(3)) == ("0 points", "1 point", "3 points")


def test_uncalibrated_size_is_never_guessed():
    rec = recommend(nodule().level, None)
    assert rec.action == "size needed" and "not calibrated" in rec.text
    assert label(C.SPONGIFORM) == "spongiform"


def test_nothing_is_preselected_and_the_text_names_the_open_groups():
    from thyroid_desktop.core.clinical.tirads import TiradsChoices, tirads_text

    c = TiradsChoices()
    assert c.foci == frozenset() and c.descriptors is None
    assert tirads_text(c) == (
        "Not scored; open: composition, echogenicity, shape, margin, echogenic foci"
    )
    c = c.with_choice("composition", C.SOLID).with_choice("echogenicity", E.HYPO)
    c = c.with_choice("shape", S.WIDER).with_choice("margin", M.SMOOTH)
    assert c.descriptors is None  # four of five: still no level
    assert tirads_text(c) == "Not scored; open: echogenic foci"
    assert "TR" not in tirads_text(c)
    done = c.with_focus(F.NONE, True)
    assert done.descriptors.level.tr == 4
    assert tirads_text(done).startswith("TR4 (moderately suspicious), 4 points: solid")
    assert done.with_focus(F.NONE, False).open_groups == ["echogenic foci"]


def test_old_sessions_with_an_unset_none_read_as_open():
    from thyroid_desktop.core.clinical.tirads import TiradsChoices

    assert not TiradsChoices.from_json({"foci": ["NONE"], "foci_set": False}).foci_set
    assert TiradsChoices.from_json({"foci": ["NONE"], "foci_set": True}).foci == {F.NONE}
    assert TiradsChoices.from_json({"foci": ["MACRO"]}).foci == {F.MACRO}
    round_trip = TiradsChoices().with_focus(F.PUNCTATE, True)
    assert TiradsChoices.from_json(round_trip.to_json()) == round_trip
