"""The one Calibration value: fit, apply, name, save/load; the shipped one the classifier
exposes, and the site profiles (old files included) that produce theirs."""

import copy
import dataclasses
import json

import numpy as np
import pytest

from thyroid_desktop.core.io.images import from_array
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.estimate import predict
from thyroid_desktop.core.site import profile as site
from thyroid_desktop.core.site.calibration import (
    SHIPPED,
    Calibration,
    CalibrationError,
    fit_platt,
)


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def logistic_data(n=4000, a=1.3, b=-0.6, seed=0):
    rng = np.random.default_rng(seed)
    z = rng.normal(0, 1.5, n)
    return z, (rng.random(n) < sigmoid(a * z + b)).astype(int)


def test_the_platt_fit_agrees_with_scikit_learns_logistic_regression():
    linear_model = pytest.importorskip("sklearn.linear_model")
    for seed in range(3):
        z, y = logistic_data(seed=seed)
        ref = linear_model.LogisticRegression(C=1e10, tol=1e-10, max_iter=10_000)
        ref.fit(z[:, None], y)
        a, b = fit_platt(z, y, prior_correction=False)
        assert a == pytest.approx(ref.coef_[0, 0], abs=1e-3)
        assert b == pytest.approx(ref.intercept_[0], abs=1e-3)


def test_platts_prior_correction_keeps_a_separable_set_finite():
    a, b = fit_platt([-2, -1, 1, 2], [0, 0, 1, 1])
    assert 0 < a < 5 and np.isfinite(b)
    z, y = logistic_data()
    plain, corrected = fit_platt(z, y, False), fit_platt(z, y, True)
    assert corrected == pytest.approx(plain, abs=0.01)  # a large set: nearly the same


def test_apply_is_the_platt_mapping_for_a_scalar_and_an_array():
    cal = Calibration("clinic", 0.5, -0.2, 0.3)
    assert isinstance(cal.apply(1.0), float)
    assert cal.apply(1.0) == pytest.approx(sigmoid(0.3))
    many = cal.apply(np.array([-1.0, 0.0, 2.0]))
    assert many.shape == (3,) and many == pytest.approx(sigmoid(0.5 * np.array([-1, 0, 2]) - 0.2))
    assert not cal.is_shipped and "site calibration 'clinic'" in cal.label()
    assert Calibration(SHIPPED, 1.0, 0.0, 0.5).label() == "shipped calibration"


def test_fit_names_the_calibration_and_keeps_the_given_threshold():
    z, y = logistic_data()
    cal = Calibration.fit(z, y, threshold=0.4, name="clinic", source="test", prior_correction=False)
    assert (cal.name, cal.threshold, cal.source) == ("clinic", 0.4, "test")
    assert cal.platt == fit_platt(z, y, prior_correction=False)


@pytest.mark.parametrize(
    "a, b, threshold", [(0.0, 0.0, 0.5), (-1.0, 0.0, 0.5), (np.nan, 0.0, 0.5), (1, 0, 1.0)]
)
def test_a_flat_inverted_or_unbounded_calibration_is_refused(a, b, threshold):
    with pytest.raises(CalibrationError):
        Calibration("x", a, b, threshold)
    with pytest.raises(CalibrationError):
        Calibration("", 1.0, 0.0, 0.5)


def test_saved_and_loaded_unchanged_and_damage_is_reported(tmp_path):
    cal = Calibration("clinic", 0.5, -0.2, 0.3, "fitted on 40 images")
    path = cal.save(tmp_path / "clinic.json")
    assert Calibration.load(path) == cal
    assert Calibration.from_dict(cal.to_dict()) == cal
    assert Calibration.from_dict({"name": "", "a": 1, "b": 0, "threshold": 0.5}).is_shipped
    (tmp_path / "bad.json").write_text(json.dumps({"name": "x", "a": 1}))
    with pytest.raises(CalibrationError, match="lacks"):
        Calibration.load(tmp_path / "bad.json")
    (tmp_path / "worse.json").write_text("{not json")
    with pytest.raises(CalibrationError, match="cannot be read"):
        Calibration.load(tmp_path / "worse.json")


def test_the_classifier_exposes_the_shipped_calibration_of_its_graph(classifier):
    shipped = classifier.shipped_calibration
    card = classifier.card.raw
    assert shipped.name == SHIPPED and shipped.is_shipped
    assert shipped.platt == classifier.gradcam.platt
    assert shipped.a == pytest.approx(card["calibration"]["a"], abs=1e-5)
    assert shipped.b == pytest.approx(card["calibration"]["b"], abs=1e-5)
    assert shipped.threshold == classifier.card.threshold
    clf = copy.copy(classifier)
    clf.profile = None
    assert clf.calibration == shipped


def old_profile_json(model_id):
    """A site profile as saved before Calibration existed (format 1)."""
    return {
        "format": 1,
        "name": "clinic-old",
        "model_id": model_id,
        "model_sha256": "",
        "a": 0.4,
        "b": -1.0,
        "threshold": 0.21,
        "target_sensitivity": 0.9,
        "created": "2026-11-29T10:00:00+01:00",
        "n_images": 40,
        "n_cases": 20,
        "card": {},
    }


def test_an_old_site_profile_file_loads_and_calibrates_predict(classifier):
    folder = site.profiles_dir()
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "clinic-old.json").write_text(json.dumps(old_profile_json(classifier.card.id)))
    profile = site.load_profile("clinic-old")
    assert profile.calibration == Calibration(
        "clinic-old", 0.4, -1.0, 0.21, profile.calibration.source
    )
    assert "40 images" in profile.calibration.source
    # An old file knows of no validation at the site: it loads as not validated.
    assert profile.validated_cases == (0, 0) and not profile.validated
    assert not profile.calibration.validated
    assert json.loads(json.dumps(profile.to_dict())) == {
        **old_profile_json(classifier.card.id),
        "validated_cases": [0, 0],
    }

    phantom = make_phantom(seed=3)
    image = from_array(phantom.pixels)
    clf = copy.copy(classifier)
    clf.profile = None
    shipped = predict(image, clf, phantom.nodule, "manual")
    assert shipped.calibration == SHIPPED and not shipped.site_calibrated
    assert shipped.probability == pytest.approx(clf.shipped_calibration.apply(shipped.logit))
    site.choose_calibration(clf, "clinic-old")
    assert clf.calibration.name == "clinic-old"
    local = predict(image, clf, phantom.nodule, "manual")
    assert local.calibration == "clinic-old" and local.site_calibrated
    assert local.threshold == 0.21
    assert local.probability == pytest.approx(sigmoid(0.4 * shipped.logit - 1.0))
    assert not local.site_validated  # the finding says so in its caveats when it has a number
    assert not site.same_calibration(shipped, clf) and site.same_calibration(local, clf)
    # refitted under the same name with another threshold: another calibration
    assert not site.same_calibration(dataclasses.replace(local, threshold=0.3), clf)
    site.choose_calibration(clf, "shipped")
    assert site.same_calibration(shipped, clf)


def test_a_calibration_put_in_use_elsewhere_is_noticed(classifier):
    """The running window did not notice a profile put in use from the command line: the
    rule says when the workstation's active calibration is not the one a classifier uses."""
    clf = copy.copy(classifier)
    clf.profile = None
    assert site.changed_outside(clf) is None  # both shipped
    made = site.SiteProfile(
        name="clinic", model_id=clf.card.id, a=0.4, b=-1.0, threshold=0.21,
        target_sensitivity=0.9, created="2026-12-01T10:00:00+00:00", n_images=40, n_cases=20,
    )  # fmt: skip
    site.save_profile(made)
    site.activate("clinic", clf.card.id)  # as `profile use clinic` does
    outside = site.changed_outside(clf)
    assert outside is not None and outside.profile == made and "clinic" in outside.message
    site.choose_calibration(clf, "clinic")
    assert site.changed_outside(clf) is None  # chosen here too: nothing to say
    refit = dataclasses.replace(made, threshold=0.3, created="2026-12-02T10:00:00+00:00")
    site.save_profile(refit, replace=True)  # `recalibrate --replace`: the same name
    assert site.changed_outside(clf).profile == refit
    site.deactivate()  # back to shipped elsewhere while this one uses the old clinic
    assert site.changed_outside(clf).profile is None
