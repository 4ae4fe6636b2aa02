"""Analysis > Site calibration and File > Validate on local cases, in the real window."""

import threading

import cv2
import pytest

from thyroid_desktop.core.io.images import from_array
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.estimate import predict
from thyroid_desktop.core.site import profile as site
from thyroid_desktop.core.site.profile import SiteProfile


def profile(name, model_id, threshold=0.25, card=None):
    return SiteProfile(
        card=card or {},
        name=name,
        model_id=model_id,
        a=0.3,
        b=-0.5,
        threshold=threshold,
        target_sensitivity=0.9,
        created="2026-11-29T10:00:00+00:00",
        n_images=40,
        n_cases=20,
    )


def menu_action(window, starts_with):
    window.calibration_menu.rebuild()  # as opening the menu does
    (act,) = [a for a in window.calibration_menu.actions() if a.text().startswith(starts_with)]
    return act


def test_switching_the_site_calibration_reanalyses_and_says_which(window, qtbot, classifier):
    qtbot.waitUntil(lambda: window.classifier is not None, timeout=120000)
    # The phantom may look unlike the training crops (no estimate); the wording under a
    # site threshold is what is checked here, so this window skips the novelty check.
    window.classifier.novelty = None
    assert "shipped" in window.calibration_status.text()
    card = window.classifier.card
    site.save_profile(profile("clinic", card.id))
    site.save_profile(profile("older", "thyroid-older-model"))
    phantom = make_phantom()
    image = from_array(phantom.pixels)
    window.show_image(image, phantom.nodule)
    qtbot.waitUntil(lambda: window.review.finding is not None, timeout=120000)
    shipped = predict(image, classifier, phantom.nodule, "manual")
    assert menu_action(window, "Shipped calibration").isChecked()
    assert not menu_action(window, "older").isEnabled()  # fitted for another model

    menu_action(window, "clinic").trigger()
    qtbot.waitUntil(
        lambda: window.review.finding is not None and window.review.finding.calibration == "clinic",
        timeout=60000,
    )
    f = window.review.finding
    assert f.threshold == 0.25 and f.roi == phantom.nodule and f.roi_source == "manual"
    assert f.probability == pytest.approx(site.load_profile("clinic").probability(f.logit))
    assert "clinic" in window.calibration_status.text() and "clinic" in window.panel.model.text()
    assert "site threshold" in window.panel.wording.text()
    assert menu_action(window, "clinic").isChecked() and site.active_name() == "clinic"

    menu_action(window, "Shipped calibration").trigger()
    qtbot.waitUntil(
        lambda: (
            window.review.finding is not None and window.review.finding.calibration == "shipped"
        ),
        timeout=60000,
    )
    assert window.review.finding.probability == pytest.approx(shipped.probability, abs=1e-9)
    assert window.review.finding.threshold == card.threshold
    assert "shipped" in window.calibration_status.text() and site.active_name() is None


def test_a_profile_worse_than_the_shipped_calibration_is_used_only_when_confirmed(
    window, qtbot, monkeypatch
):
    """The wizard saves such a profile without putting it in use; choosing it in the menu
    asks first, with the out-of-fold figures (a review: the menu did not check the rule)."""
    from PySide6.QtWidgets import QMessageBox

    qtbot.waitUntil(lambda: window.classifier is not None, timeout=120000)
    worse = {"before": {"auroc": 0.83, "ece": 0.187, "brier": 0.174},
             "after": {"auroc": 0.75, "ece": 0.207, "brier": 0.202}}  # fmt: skip
    site.save_profile(profile("worse", window.classifier.card.id, card={"cv": worse}))
    asked = []

    def answer(reply):
        def question(_parent, title, text, *_args):
            asked.append(text)
            return reply

        monkeypatch.setattr(QMessageBox, "question", question)

    assert menu_action(window, "worse").text().endswith("— worse than shipped")
    answer(QMessageBox.StandardButton.No)
    menu_action(window, "worse").trigger()
    assert "Brier 0.174 -> 0.202" in asked[-1] and "worse than the shipped" in asked[-1]
    assert site.active_name() is None and menu_action(window, "Shipped calibration").isChecked()
    assert "shipped" in window.calibration_status.text()

    answer(QMessageBox.StandardButton.Yes)
    menu_action(window, "worse").trigger()
    qtbot.waitUntil(lambda: "worse" in window.calibration_status.text(), timeout=60000)
    assert site.active_name() == "worse" and len(asked) == 2
    menu_action(window, "worse").trigger()  # chosen again while in use: not asked again
    assert len(asked) == 2 and site.active_name() == "worse"


def test_switching_the_calibration_of_a_signed_report_asks_and_says_what_changed(
    window, qtbot, monkeypatch, tmp_path
):
    """A GUI trial: the switch re-scored a signed study's nodules, flipped a call and took
    the signature away with no word and no audit line."""
    from PySide6.QtWidgets import QMessageBox

    from thyroid_desktop.core.report.audit import AuditLog

    _confirmed_phantom(window, qtbot, tmp_path)
    assert window.sign_report("Dr Example")
    asked = []

    def answer(reply):
        monkeypatch.setattr(
            QMessageBox, "question", lambda _p, title, *_a: asked.append(title) or reply
        )

    answer(QMessageBox.StandardButton.No)
    menu_action(window, "clinic").trigger()
    assert asked == ["Switch the calibration of a signed report?"]
    assert site.active_name() is None and window.session.state.study.report.signed

    answer(QMessageBox.StandardButton.Yes)
    boxes = []  # in a box: the status line is overwritten by the re-analysis's at once
    monkeypatch.setattr(window, "show_message", lambda *a, **k: boxes.append(a[:2]))
    menu_action(window, "clinic").trigger()
    qtbot.waitUntil(lambda: "clinic" in window.calibration_status.text(), timeout=60000)
    ((title, said),) = boxes
    assert title == "Study re-scored" and said.startswith("Now using the site calibration")
    assert "Re-scored N1" in said and "The signature was removed" in said
    assert not window.session.state.study.report.signed
    (line,) = [r for r in AuditLog().read() if r["action"] == "rescore-calibration"]
    assert line["calibration"] == "clinic" and line["detail"].startswith("N1 re-scored from")


def test_a_study_reopened_under_another_calibration_is_rescored_and_audited(
    window, qtbot, tmp_path
):
    """A GUI trial closed a study scored under the shipped calibration, switched to a site
    profile and opened its images again: the list and CSV mixed both calibrations (the
    reopened nodules kept the shipped numbers) and nothing was audited."""
    from thyroid_desktop.core.report.audit import AuditLog

    path = _confirmed_phantom(window, qtbot, tmp_path)
    assert window.session.state.nodules[0].estimate.calibration == "shipped"
    window.new_study()
    menu_action(window, "clinic").trigger()
    qtbot.waitUntil(lambda: "clinic" in window.calibration_status.text(), timeout=60000)

    window.open_paths([path])  # N1 comes back with the shipped calibration's numbers
    qtbot.waitUntil(lambda: bool(window.session.state.nodules), timeout=60000)

    def rescored():
        return [r for r in AuditLog().read() if r["action"] == "rescore-calibration"]

    qtbot.waitUntil(lambda: len(rescored()) == 1, timeout=60000)  # re-scored at once
    assert rescored()[0]["detail"].startswith("N1 re-scored from shipped")
    (n1,) = window.session.state.nodules
    assert n1.estimate.calibration == "clinic"  # every line with it
    assert [r.estimate.calibration for r in window.review.rows()] == ["clinic"]


def test_validate_on_local_cases_runs_in_the_worker_and_reports(window, qtbot, tmp_path):
    qtbot.waitUntil(lambda: window.classifier is not None, timeout=120000)
    folder = tmp_path / "cases"
    folder.mkdir()
    for i in range(3):
        cv2.imwrite(str(folder / f"p{i}.png"), make_phantom(seed=i).pixels)
    (folder / "bad.png").write_bytes(b"not an image")
    (folder / "labels.csv").write_text(
        "file,label,case\np0.png,benign,a\np1.png,malignant,b\np2.png,benign,c\nbad.png,1,d\n"
    )
    assert window.validate_folder(folder, tmp_path / "out")
    assert window.validation.running and window.validation.dialog is not None
    qtbot.waitUntil(lambda: window.last_validation is not None, timeout=120000)
    validation, files = window.last_validation
    assert not window.validation.running and window.validation.dialog is None
    assert files.pdf.read_bytes().startswith(b"%PDF") and files.json.exists()
    assert [r.file for r in validation.unreadable] == ["bad.png"]
    assert len(validation.with_estimate) + sum(validation.no_estimate.values()) == 3
    if validation.metrics is not None:
        assert validation.metrics.n == len(validation.with_estimate)
    assert str(files.pdf) in window.last_message.text()


def _confirmed_phantom(window, qtbot, tmp_path):
    """A saved profile "clinic" and a phantom's proposal accepted as N1 under the shipped
    calibration; the image's path."""
    qtbot.waitUntil(lambda: window.classifier is not None, timeout=120000)
    window.classifier.novelty = None  # the phantom: the wording is what is checked
    site.save_profile(profile("clinic", window.classifier.card.id))
    path = tmp_path / "scan.png"
    cv2.imwrite(str(path), make_phantom(seed=0).pixels)
    window.open_paths([path])
    qtbot.waitUntil(
        lambda: window.review.finding is not None and not window.review.awaiting, timeout=120000
    )
    window.accept_proposal()
    assert window.session.state.nodules
    return path


def test_a_profile_put_in_use_from_the_command_line_is_said_once(window, qtbot, monkeypatch):
    """The running window did not notice `profile use` until restarted. Now it says so when
    it becomes active again, once per change, and keeps its own calibration until one is
    chosen in the menu (switching re-scores the study: the clinician's decision)."""
    from PySide6.QtCore import QCoreApplication, QEvent

    qtbot.waitUntil(lambda: window.classifier is not None, timeout=120000)
    card = window.classifier.card
    site.save_profile(profile("clinic", card.id))
    monkeypatch.setattr(window, "isActiveWindow", lambda: True)

    def activated() -> str:
        window.statusBar().clearMessage()
        QCoreApplication.sendEvent(window, QEvent(QEvent.Type.ActivationChange))
        return window.statusBar().currentMessage()

    assert activated() == ""  # nothing changed
    site.activate("clinic", card.id)  # as `thyroid-review profile use clinic` does
    said = activated()
    assert "changed outside this window" in said and "clinic" in said
    assert "still uses" in said and window.classifier.profile is None
    assert window.calibration_status.text().endswith("⚠")  # until the two agree
    assert "clinic" in window.calibration_status.toolTip()
    window.say_about_image("Analysed in 40 ms", 5000)  # a routine line does not replace it
    assert "changed outside this window" in window.statusBar().currentMessage()
    assert activated() == ""  # said once
    site.deactivate()
    assert activated() == ""  # agree again
    assert not window.calibration_status.text().endswith("⚠")
    # the window's own switch writes the pointer, then switches in the worker, which may be
    # busy: activated in between, it must not call its own choice "changed outside" (review)
    gate = threading.Event()
    window._run(gate.wait, lambda _: None, lambda _: None)  # an analysis under way
    menu_action(window, "clinic").trigger()
    assert window.classifier.profile is None and activated() == ""
    gate.set()
    qtbot.waitUntil(lambda: window.classifier.profile is not None, timeout=60000)
    assert activated() == "" and not window.calibration_status.text().endswith("⚠")
    site.deactivate()  # back to shipped outside
    said = activated()
    assert "changed outside this window" in said and "shipped" in said.lower()
    # a damaged pointer file never breaks the window's activation
    (site.profiles_dir() / site.ACTIVE_POINTER).write_bytes(b"\xff\xfe\x00")
    activated()
