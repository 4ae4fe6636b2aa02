"""Site profiles: the fit, the rules for using one, and the bundled model under a profile.
Every test writes to a throw-away user data folder (tests/conftest.py)."""

import copy
import json
import os
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import cv2
import numpy as np
import pytest

from thyroid_desktop import cli
from thyroid_desktop.core.io.images import from_array, open_image
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.estimate import auto_predict, predict
from thyroid_desktop.core.review.session import Estimate
from thyroid_desktop.core.site import profile as site
from thyroid_desktop.core.site.calibration import (
    MIN_VALIDATED_PER_CLASS,
    SHIPPED,
    Calibration,
    fit_platt,
)
from thyroid_desktop.core.site.profile import ProfileError, SiteProfile, fit_profile
from thyroid_desktop.core.site.training_images import TrainingHashes
from thyroid_desktop.core.site.validation import ImageResult, LabelledFolder, summarise


def fresh(classifier):
    """A copy of the session's classifier (its calibration may change here) without the
    novelty check: phantoms may look unlike the training crops, which is not tested here."""
    clf = copy.copy(classifier)
    clf.novelty, clf.profile = None, None
    return clf


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def site_run(
    classifier, n_cases=60, slope=1.5, seed=0, folder="/clinic/cases", training=None, **kw
):
    """A validation run of a site where the logit ranks the labels with ``slope`` and the
    shipped calibration overestimates (probability of logit + 2), 2 images per case.
    ``training``: the hashes the images were checked against (None: not checked)."""
    rng = np.random.default_rng(seed)
    results = []
    for c in range(n_cases):
        label = int(rng.random() < 0.4)
        for k in range(2):
            z = rng.normal(slope * (label - 0.5), 1.0)
            shipped = float(sigmoid(z + 2))
            results.append(
                ImageResult(f"c{c}_{k}.png", label, f"case{c}", shipped, shipped, z, 0.67)
            )
    folder = LabelledFolder(Path(folder), (), (), "labels.csv case")
    return summarise(folder, results, classifier, training=training, **kw)


def make_profile(name="clinic", model_id="m", **kw):
    values = dict(a=0.5, b=-0.2, threshold=0.3, target_sensitivity=0.9, created="2026-11-29")
    values.update(kw)
    return SiteProfile(name=name, model_id=model_id, n_images=40, n_cases=20, **values)


def test_user_data_is_a_throw_away_folder(tmp_path):
    assert site.profiles_dir().is_relative_to(tmp_path)


def test_platt_fit_recovers_the_generating_mapping_and_stays_finite_when_separable():
    rng = np.random.default_rng(0)
    z = rng.normal(size=20000)
    y = (rng.random(20000) < sigmoid(1.7 * z - 0.4)).astype(int)
    a, b = fit_platt(z, y)
    assert a == pytest.approx(1.7, abs=0.06) and b == pytest.approx(-0.4, abs=0.05)
    a, b = fit_platt([-2, -1, 1, 2], [0, 0, 1, 1])
    assert 0 < a < 5 and np.isfinite(b)


def test_fit_profile_recalibrates_and_keeps_out_of_fold_sensitivity(classifier):
    run = site_run(classifier)
    profile = fit_profile(run, 0.9, "clinic-a")
    cv = profile.card["cv"]
    assert profile.model_id == classifier.card.id and profile.a > 0
    assert cv["after"]["sensitivity"] >= 0.9
    assert cv["after"]["ece"] < cv["before"]["ece"] / 2  # the shipped mapping was off by +2
    assert cv["folds"] == 5 and profile.n_cases == 60 and profile.n_images == 120
    assert profile.card["fitted_on"]["folder"] == "/clinic/cases"
    # the highest threshold keeping the target: one step higher would lose it
    z = np.array([r.logit for r in run.results])
    assert 0 < profile.threshold < 1
    assert profile.probability(0.0) == pytest.approx(sigmoid(profile.b))
    assert np.all(np.diff([profile.probability(v) for v in np.sort(z)]) >= 0)


def test_fit_profile_refuses_too_few_cases_and_an_inverted_site(classifier):
    with pytest.raises(ProfileError, match="at least 10 benign and 10 malignant"):
        fit_profile(site_run(classifier, n_cases=8), 0.9, "small")
    with pytest.raises(ProfileError, match="does not rise with malignancy"):
        fit_profile(site_run(classifier, slope=-2.0), 0.9, "inverted")
    weak = site_run(classifier, n_cases=30, slope=0.2, seed=1)
    with pytest.raises(ProfileError, match="reaches 0.5"):
        fit_profile(weak, 0.9, "weak")
    forced = fit_profile(weak, 0.9, "weak", force=True)
    assert forced.card["forced"] and forced.card["cv"]["before"]["auroc_ci95"][0] <= 0.5
    assert not fit_profile(site_run(classifier), 0.9, "clear").card["forced"]
    with pytest.raises(ProfileError, match="cannot name"):
        fit_profile(site_run(classifier), 0.9, "../escape")
    with pytest.raises(ProfileError, match="cannot name"):
        fit_profile(site_run(classifier), 0.9, "shipped")


def test_profiles_are_saved_listed_activated_and_reset(classifier):
    profile = fit_profile(site_run(classifier), 0.9, "clinic-a")
    path = site.save_profile(profile)
    assert path.parent == site.profiles_dir() and json.loads(path.read_text())["a"] == profile.a
    with pytest.raises(ProfileError, match="exists already"):
        site.save_profile(profile)
    assert [p.name for p in site.list_profiles()] == ["clinic-a"]
    assert site.load_profile("clinic-a") == profile
    assert site.active_calibration(classifier.card.id).profile is None
    site.activate("clinic-a", classifier.card.id, site.model_sha256(classifier))
    chosen = site.active_calibration(classifier.card.id, site.model_sha256(classifier))
    assert chosen.profile == profile and not chosen.refused and "clinic-a" in chosen.message
    site.deactivate()
    assert site.active_name() is None
    assert site.active_calibration(classifier.card.id).message == "shipped calibration"


def test_a_profile_for_another_model_is_refused_with_a_reason(classifier):
    site.save_profile(make_profile("old-model-profile", model_id="thyroid-older-model"))
    with pytest.raises(ProfileError, match="fitted for model thyroid-older-model"):
        site.activate("old-model-profile", classifier.card.id)
    site.activate("old-model-profile")  # e.g. chosen while the older model was installed
    chosen = site.active_calibration(classifier.card.id)
    assert chosen.profile is None and chosen.refused
    assert "thyroid-older-model" in chosen.message and "not applied" in chosen.message
    clf = copy.copy(classifier)
    assert site.use_active_profile(clf).refused and clf.profile is None
    (site.profiles_dir() / "broken.json").write_text("{not json")
    assert [p.name for p in site.list_profiles()] == ["old-model-profile"]


def test_predict_uses_the_active_profile_and_the_shipped_calibration_comes_back(classifier):
    phantom = make_phantom(seed=3)
    image = from_array(phantom.pixels)
    shipped = predict(image, classifier, phantom.nodule, "manual")
    profile = make_profile("clinic-b", classifier.card.id, a=0.4, b=-1.0, threshold=0.21)
    site.save_profile(profile)
    site.activate("clinic-b", classifier.card.id)
    clf = copy.copy(classifier)  # the session's classifier stays on the shipped calibration
    assert site.use_active_profile(clf).profile == profile
    finding = predict(image, clf, phantom.nodule, "manual")
    assert finding.calibration == "clinic-b" and finding.threshold == 0.21
    assert finding.logit == pytest.approx(shipped.logit)
    assert finding.probability == pytest.approx(sigmoid(0.4 * shipped.logit - 1.0))
    assert finding.probability != pytest.approx(shipped.probability)

    site.deactivate()
    assert site.use_active_profile(clf).profile is None
    back = predict(image, clf, phantom.nodule, "manual")
    assert back.calibration == "shipped" and back.threshold == classifier.card.threshold
    assert back.probability == shipped.probability


def write_ranked_folder(root, classifier, segmenter, n=8):
    """Phantoms labelled so the bundled model ranks them mostly right (one pair swapped)."""
    root.mkdir()
    logits = []
    for i in range(n):
        path = root / f"scan{i}.png"
        cv2.imwrite(str(path), make_phantom(seed=10 + i).pixels)
        logits.append(auto_predict(open_image(path), classifier, segmenter)[0].logit)
    rank = np.argsort(np.argsort(logits))
    labels = (rank >= n // 2).astype(int)
    swap = np.flatnonzero(rank == n // 2 - 1)[0], np.flatnonzero(rank == n // 2)[0]
    labels[list(swap)] = labels[list(swap[::-1])]
    rows = [f"scan{i}.png,{labels[i]},case{i}" for i in range(n)]
    (root / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    rows.append("broken.png,0,case99")
    (root / "labels.csv").write_text("file,label,case\n" + "\n".join(rows) + "\n")
    return root


def test_cli_validate_recalibrate_profile_and_predict(
    tmp_path, classifier, segmenter, monkeypatch, capsys
):
    from thyroid_desktop.core.models import shipped as models

    monkeypatch.setattr(models, "load_classifier", lambda directory=None: fresh(classifier))
    monkeypatch.setattr(models, "load_segmenter", lambda directory=None: segmenter)
    monkeypatch.setattr(site, "MIN_PER_CLASS", 3)  # a tiny folder, to test the plumbing
    folder = write_ranked_folder(tmp_path / "clinic", fresh(classifier), segmenter)
    out = tmp_path / "reports"

    assert cli.main(["validate", str(folder), "--out", str(out), "--json"]) == 1  # broken.png
    summary = json.loads(capsys.readouterr().out)
    assert summary["calibration"] == "shipped" and summary["counts"]["unreadable"] == 1
    assert summary["site_validation"]["counts"] is False  # 8 phantoms: not a site validation
    assert summary["training_check"].startswith("ddti")  # checked against the shipped list
    assert Path(summary["pdf"]).read_bytes()[:4] == b"%PDF" and summary["exit_code"] == 1

    code = cli.main(["recalibrate", str(folder), "--name", "clinic", "--activate"])
    printed = capsys.readouterr().out
    assert code == 1, printed  # fitted and active, but one file was unreadable
    assert "Out-of-fold check" in printed and "Active: yes" in printed
    assert "Site validation: NOT a site validation" in printed
    assert "not validated at this site" in printed
    profile = site.load_profile("clinic")
    assert not profile.validated and not profile.calibration.validated
    assert site.active_name() == "clinic" and profile.model_id == classifier.card.id
    assert cli.main(["recalibrate", str(folder), "--name", "clinic"]) == 2  # name taken
    assert "exists already" in capsys.readouterr().err

    assert cli.main(["profile", "list"]) == 0
    assert "* clinic:" in capsys.readouterr().out

    scan = folder / "scan0.png"
    assert cli.main(["predict", str(scan), "--json"]) == 0
    captured = capsys.readouterr()
    record = json.loads(captured.out)
    assert record["calibration"] == record["profile"] == "clinic"
    assert record["threshold"] == profile.threshold
    assert "site calibration 'clinic'" in captured.err
    assert cli.main(["predict", str(scan)]) == 0
    assert "site calibration 'clinic'" in capsys.readouterr().out

    assert cli.main(["validate", str(folder), "--out", str(out)]) == 1
    printed = capsys.readouterr().out
    assert "site calibration 'clinic'" in printed and "fitted on this folder" in printed

    assert cli.main(["profile", "reset"]) == 0
    capsys.readouterr()
    assert cli.main(["predict", str(scan), "--json"]) == 0
    record = json.loads(capsys.readouterr().out)
    assert record["calibration"] == "shipped" and record["profile"] is None
    assert record["threshold"] == classifier.card.threshold

    site.save_profile(make_profile("other", model_id="thyroid-older-model"))
    assert cli.main(["profile", "use", "other"]) == 2
    assert "fitted for model thyroid-older-model" in capsys.readouterr().err
    assert cli.main(["predict", str(scan), "--profile", "other"]) == 2
    assert site.active_name() is None


def test_recalibrate_activate_leaves_a_profile_worse_than_shipped_out_of_use(
    tmp_path, classifier, segmenter, monkeypatch, capsys
):
    """As the wizard: such a profile is saved, not put in use; ``profile use`` puts it in
    use when asked to, and says what it is."""
    from thyroid_desktop.core.models import shipped as models

    monkeypatch.setattr(models, "load_classifier", lambda directory=None: fresh(classifier))
    monkeypatch.setattr(models, "load_segmenter", lambda directory=None: segmenter)
    monkeypatch.setattr(site, "MIN_PER_CLASS", 3)
    monkeypatch.setattr(site.SiteProfile, "worse_than_shipped", property(lambda self: True))
    folder = write_ranked_folder(tmp_path / "clinic", fresh(classifier), segmenter)

    cli.main(["recalibrate", str(folder), "--name", "clinic", "--activate", "--json"])
    record = json.loads(capsys.readouterr().out)
    assert record["active"] is False and "worse than the shipped" in record["not_activated_reason"]
    assert site.active_name() is None and site.load_profile("clinic")
    cli.main(["recalibrate", str(folder), "--name", "clinic2", "--activate"])
    printed = capsys.readouterr().out
    assert "NOT put in use: it calibrates the site's own cases worse" in printed
    assert "to use it anyway: python -m thyroid_desktop profile use clinic2" in printed
    assert site.active_name() is None

    assert cli.main(["profile", "use", "clinic2"]) == 0
    printed = capsys.readouterr().out
    assert "Active: site calibration 'clinic2'" in printed and "Note: it calibrates" in printed
    assert site.active_name() == "clinic2"
    chosen = site.choose_calibration(fresh(classifier), None)  # predict, validate, the app
    assert chosen.worth_saying and "; note: it calibrates the site's own cases worse" in (
        chosen.message
    )
    assert "note: it calibrates" in site.choose_calibration(fresh(classifier), "clinic").message
    # refitted over the profile in use (a review: the worse fit stayed in use by its name)
    cli.main(["recalibrate", str(folder), "--name", "clinic2", "--replace"])
    printed = capsys.readouterr().out
    assert "NOT put in use (the shipped calibration is in use again)" in printed
    assert site.active_name() is None


def test_site_commands_help_works_without_docstrings():
    """``python -OO`` strips docstrings; the CLI's help texts must not come from them."""
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run(
        [sys.executable, "-OO", "-m", "thyroid_desktop", "validate", "--help"],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=root,
        env={**os.environ, "PYTHONPATH": str(root), "QT_QPA_PLATFORM": "offscreen"},
    )
    assert done.returncode == 0, done.stderr
    assert "labelled folder" in done.stdout and "exit codes:" in done.stdout
    assert "130 cancelled with Ctrl+C" in done.stdout


# -- validated at this site ------------------------------------------------------------------
CHECKED = TrainingHashes({("file", "0" * 16): "ddti"}, {"ddti": 1})


def test_a_profile_from_50_cases_per_class_of_the_sites_own_is_validated(classifier):
    run = site_run(classifier, n_cases=160, training=CHECKED)
    sv = run.site_validation
    benign, malignant = sv.validated_cases
    assert min(benign, malignant) >= MIN_VALIDATED_PER_CLASS == 50 and sv.counts
    assert sv.statement().startswith("counts as a validation at this site")
    profile = fit_profile(run, 0.9, "clinic-v")
    assert profile.validated_cases == (benign, malignant) and profile.validated
    assert profile.card["site_validation"]["counts"] is True
    # Saved and read back, it still is; predict under it says so.
    site.save_profile(profile)
    loaded = site.load_profile("clinic-v")
    assert loaded.validated and loaded.calibration.validated
    assert "validated at this site (" in loaded.summary()
    clf = fresh(classifier)
    site.choose_calibration(clf, "clinic-v")
    phantom = make_phantom(seed=3)
    finding = predict(from_array(phantom.pixels), clf, phantom.nodule, "manual")
    assert finding.site_validated and "not validated at this site" not in finding.caveats
    site.choose_calibration(clf, "shipped")  # the shipped one never is
    finding = predict(from_array(phantom.pixels), clf, phantom.nodule, "manual")
    assert not finding.site_validated and "not validated at this site" in finding.caveats


def test_too_few_cases_unchecked_images_or_a_cancelled_run_do_not_validate(classifier):
    few = site_run(classifier, n_cases=60, training=CHECKED)  # about 24 malignant cases
    assert not few.site_validation.counts and "at least 50 of each" in few.site_validation.reason
    assert not fit_profile(few, 0.9, "few").validated
    unchecked = site_run(classifier, n_cases=160)  # not checked against the training list
    assert unchecked.site_validation.validated_cases == (0, 0)
    assert "could not be checked" in unchecked.site_validation.reason
    assert not fit_profile(unchecked, 0.9, "unchecked").validated
    cancelled = site_run(classifier, n_cases=160, training=CHECKED, cancelled=True)
    assert not cancelled.site_validation.counts and "cancelled" in cancelled.site_validation.reason


def test_images_from_the_training_collections_are_excluded_from_figures_and_profile(classifier):
    run = site_run(classifier, n_cases=160, training=CHECKED)
    marked = [
        replace(r, training_collection="ddti") if i % 2 == 0 else r
        for i, r in enumerate(run.results)
    ]
    folder = LabelledFolder(run.folder, (), (), run.case_source)
    mixed = summarise(folder, marked, classifier, training=CHECKED)
    assert mixed.metrics.n == len(marked) // 2 == len(mixed.site_results)
    assert len(mixed.from_training) == len(marked) // 2
    text = "\n".join(mixed.summary_lines())
    assert f"{len(marked) // 2} images are from the model's training collections (ddti" in text
    assert mixed.to_dict()["site_validation"]["training_images_excluded"] == len(marked) // 2
    profile = fit_profile(mixed, 0.9, "mixed")
    assert profile.n_images == len(marked) // 2  # fitted on the site's own images only

    only_training = summarise(
        folder, [replace(r, training_collection="ddti") for r in run.results], classifier,
        training=CHECKED,
    )  # fmt: skip
    assert only_training.metrics is None and "training collections" in only_training.metrics_error
    assert not only_training.site_validation.counts
    with pytest.raises(ProfileError, match="from the model's training collections"):
        fit_profile(only_training, 0.9, "training")


def test_a_calibration_switch_rescores_the_site_validation_status_too(classifier):
    clf = fresh(classifier)
    phantom = make_phantom(seed=3)
    finding = predict(from_array(phantom.pixels), clf, phantom.nodule, "manual")
    stored = Estimate.of(finding)
    assert not stored.site_validated
    validated = Calibration("clinic", 0.4, -1.0, 0.21, validated_cases=(60, 55))
    assert validated.validated and not Calibration("c", 0.4, -1.0, 0.2).validated
    assert not Calibration(SHIPPED, 0.4, -1.0, 0.2, validated_cases=(99, 99)).validated
    rescored = stored.rescored(validated, clf.card.spread_limit)
    assert rescored.site_validated and rescored.calibration == "clinic"
    # The same name, now validated (a profile replaced): re-scored, not kept as it was.
    same_name = replace(rescored, site_validated=False)
    assert same_name.rescored(validated, clf.card.spread_limit).site_validated
    back = rescored.rescored(clf.shipped_calibration, clf.card.spread_limit)
    assert not back.site_validated
    assert Calibration.from_dict(validated.to_dict()) == validated
    old = {k: v for k, v in validated.to_dict().items() if k != "validated_cases"}
    assert not Calibration.from_dict(old).validated  # saved before: not validated


def test_a_profile_worse_than_the_shipped_calibration_out_of_fold_says_so():
    """A GUI trial's wizard put in use a profile that calibrated the site's own cases worse
    out of fold (ECE 0.187 -> 0.207, Brier 0.174 -> 0.202) and said only "saved and now in
    use"; the wizard now shows the figures and leaves such a profile out of use."""
    worse = {"before": {"auroc": 0.832, "ece": 0.187, "brier": 0.174},
             "after": {"auroc": 0.75, "ece": 0.207, "brier": 0.202}}  # fmt: skip
    p = make_profile(card={"cv": worse})
    assert p.worse_than_shipped
    assert (
        p.cv_text() == "out of fold: AUROC 0.83 -> 0.75, ECE 0.187 -> 0.207, Brier 0.174 -> 0.202"
    )
    better = {"before": worse["before"], "after": {"auroc": 0.83, "ece": 0.05, "brier": 0.16}}
    assert not make_profile(card={"cv": better}).worse_than_shipped
    # the Brier score decides (the binned ECE of a few dozen cases is noise)
    mixed = {"before": worse["before"], "after": {"auroc": 0.8, "ece": 0.15, "brier": 0.18}}
    assert make_profile(card={"cv": mixed}).worse_than_shipped
    assert not make_profile().worse_than_shipped and make_profile().cv_text() == ""
    assert p.worse_text() == (
        "it calibrates the site's own cases worse than the shipped calibration (out of fold: "
        "AUROC 0.83 -> 0.75, ECE 0.187 -> 0.207, Brier 0.174 -> 0.202)"
    )
    assert make_profile(card={"cv": better}).worse_text() == ""
    # profile list / the menu's tooltip give the figure that decides, and say it
    assert "ECE 0.187 -> 0.207, Brier 0.174 -> 0.202 (worse than the shipped" in p.summary()
    assert "Brier 0.174 -> 0.160;" in make_profile(card={"cv": better}).summary()


def test_an_unused_profile_name_for_the_wizards_default():
    from thyroid_desktop.core.site.profile import unused_name

    assert unused_name("site-20261207") == "site-20261207"
    site.save_profile(make_profile(name="site-20261207"))
    assert unused_name("site-20261207") == "site-20261207-2"
    site.save_profile(make_profile(name="site-20261207-2"))
    assert unused_name("site-20261207") == "site-20261207-3"
