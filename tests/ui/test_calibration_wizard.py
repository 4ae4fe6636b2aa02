"""Analysis > Site calibration > Calibrate for this site… (the wizard) and File > Sign report,
in the real window with the real models."""

import csv
import shutil
from pathlib import Path

import cv2
import numpy as np
import pytest
from PySide6.QtWidgets import QPushButton

from thyroid_desktop.core.report.pdf import StudyInfo
from thyroid_desktop.core.review.session import SessionStore
from thyroid_desktop.core.site import profile as site
from thyroid_desktop.core.site.calibration import MIN_VALIDATED_PER_CLASS
from thyroid_desktop.ui.calibration_menu import CALIBRATE_TEXT

ASSET = Path(__file__).resolve().parents[1] / "assets" / "inscope_bmode.png"
N_COPIES = 24  # > 2 x MIN_PER_CLASS (10): enough to fit a profile, far below 50 per class


def synthetic_copies(folder: Path, n: int = N_COPIES) -> list[str]:
    """The committed in-scope synthetic image under n gammas, every other one mirrored: all
    get an estimate, with different logits (none is a training image)."""
    folder.mkdir(parents=True, exist_ok=True)
    grey = cv2.imread(str(ASSET), cv2.IMREAD_GRAYSCALE)
    names = []
    for i in range(n):
        v = (255 * (grey / 255.0) ** (0.8 + 0.4 * i / (n - 1))).astype(np.uint8)
        v = np.ascontiguousarray(v[:, ::-1] if i % 2 else v)
        names.append(f"s{i:02d}.png")
        cv2.imwrite(str(folder / names[-1]), v)
    return names


def write_labels(path: Path, rows: list[tuple[str, int, str]]) -> Path:
    with path.open("w", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(["file", "label", "case"])
        w.writerows(rows)
    return path


def ready(window, qtbot) -> None:
    qtbot.waitUntil(lambda: window.classifier is not None, timeout=120000)


def run(wizard, qtbot, path: Path) -> None:
    assert wizard.start(path)
    assert wizard.running and wizard.runner.dialog is not None  # progress with Cancel
    qtbot.waitUntil(lambda: not wizard.running, timeout=300000)
    assert wizard.validation is not None


def menu_action(window, starts_with):
    window.calibration_menu.rebuild()  # as opening the menu does
    (act,) = [a for a in window.calibration_menu.actions() if a.text().startswith(starts_with)]
    return act


def test_wizard_validates_shows_figures_and_accept_rescores_what_is_shown(window, qtbot, tmp_path):
    ready(window, qtbot)
    first, second = tmp_path / "study" / "a.png", tmp_path / "study" / "b.png"
    first.parent.mkdir()
    shutil.copy(ASSET, first)
    cv2.imwrite(str(second), np.ascontiguousarray(cv2.imread(str(ASSET))[:, ::-1]))
    assert window.open_paths([first, second])
    for row in (1, 0):  # a nodule on each image; the first one shown at the end
        window.study_list.setCurrentRow(row)
        qtbot.waitUntil(
            lambda r=row: window.review.current == r and window.review.proposal is not None,
            timeout=120000,
        )
        window.accept_proposal()
    assert len(window.session.state.nodules) == 2
    for n in window.session.state.nodules:
        assert n.estimate.calibration == "shipped" and n.estimate.probability is not None
    menu_action(window, CALIBRATE_TEXT).trigger()
    wizard = window.calibration_wizard
    assert wizard.isVisible()
    cases = tmp_path / "cases"
    names = synthetic_copies(cases)
    write_labels(cases / "labels.csv", [(n, i % 2, f"c{i}") for i, n in enumerate(names)])
    run(wizard, qtbot, cases)
    v = wizard.validation
    assert len(v.site_results) == N_COPIES and not v.from_training
    assert not v.site_validation.counts
    assert "NOT a site validation" in wizard.statement.text()
    assert f"at least {MIN_VALIDATED_PER_CLASS} of each" in wizard.statement.text()
    assert "12 benign and 12 malignant cases" in wizard.statement.text()
    assert str(wizard.files.pdf) in wizard.summary.text() and wizard.files.pdf.exists()
    qtbot.waitUntil(lambda: not wizard.plots.pixmap().isNull(), timeout=60000)
    assert wizard.plots.pixmap().width() > 400  # ROC + reliability, drawn in the worker

    # Labels that the score ranks (the upper half malignant): a profile can be fitted.
    logit = {r.file: r.logit for r in v.results}
    cut = np.median(list(logit.values()))
    write_labels(
        cases / "labels.csv", [(n, int(logit[n] > cut), f"c{i}") for i, n in enumerate(names)]
    )
    run(wizard, qtbot, cases)
    assert wizard.validation.metrics.auroc == 1.0 and wizard.accept_button.isEnabled()
    wizard.name.setText("clinic-wizard")
    assert wizard.accept_profile()
    qtbot.waitUntil(
        lambda: (
            window.classifier.profile is not None
            and window.review.finding is not None
            and window.review.finding.calibration == "clinic-wizard"
        ),
        timeout=120000,
    )
    profile = site.load_profile("clinic-wizard")
    assert site.active_name() == "clinic-wizard" and wizard.profile == profile
    assert not profile.validated  # 12 per class: "not validated at this site"
    assert "saved and now in use" in wizard.status.text()
    # Everything shown is re-scored: the panel, the stored nodule, the list and the CSV rows.
    assert "clinic-wizard" in window.panel.model.text()
    assert "clinic-wizard" in window.calibration_status.text()
    for nodule in window.session.state.nodules:
        assert nodule.estimate.calibration == "clinic-wizard"
        expected = profile.probability(nodule.estimate.logit)
        assert nodule.estimate.probability == pytest.approx(expected)
        row = next(i for i, e in enumerate(window.review.entries) if e.sha256 == nodule.image)
        item = window.study_list.item(row)  # the line not on screen too
        assert f"{expected:.2f}" in item.text() and "clinic-wizard" in item.toolTip()
    shown = window.review.nodule()
    assert window.review.finding.probability == pytest.approx(shown.estimate.probability)
    rows = [r for r in window.review.rows() if r.nodule is not None]  # CSV and reports
    assert [r.estimate.calibration for r in rows] == ["clinic-wizard"] * 2
    assert menu_action(window, "clinic-wizard").isChecked()
    wizard.close()


def test_wizard_on_training_images_says_it_is_not_a_site_validation(
    window, qtbot, tmp_path, shared_data
):
    ready(window, qtbot)
    with (shared_data / "ddti" / "labels.csv").open(newline="") as fh:
        rows = list(csv.DictReader(fh))
    picked = [r for r in rows if r["label"] == "benign"][:3]
    picked += [r for r in rows if r["label"] == "malignant"][:3]
    folder = tmp_path / "site"
    folder.mkdir()
    out = []
    for i, r in enumerate(picked):  # renamed copies: still found (by their bytes)
        shutil.copy(shared_data / "ddti" / r["file"], folder / f"case{i}.png")
        out.append((f"case{i}.png", r["label"], f"p{i}"))
    write_labels(folder / "labels.csv", out)
    wizard = window.calibrate_dialog()
    run(wizard, qtbot, folder)
    v = wizard.validation
    assert len(v.from_training) == 6 and v.site_results == []
    text = wizard.statement.text()
    assert "NOT a site validation" in text
    assert "6 images are from the model's training collections (ddti 6): excluded" in text
    assert not wizard.accept_button.isEnabled() and not wizard.accept_profile()
    assert "No profile can be fitted" in wizard.status.text()
    assert "training collections" in wizard.status.text()
    assert window.classifier.profile is None and site.active_name() is None
    wizard.close()


def test_cancel_stops_the_run_and_a_cancelled_run_cannot_be_accepted(window, qtbot, tmp_path):
    ready(window, qtbot)
    names = synthetic_copies(tmp_path / "cases")
    labels = write_labels(  # a CSV of another name than labels.csv
        tmp_path / "cases" / "my_cases.csv", [(n, i % 2, f"c{i}") for i, n in enumerate(names)]
    )
    wizard = window.calibrate_dialog()
    assert wizard.start(labels)
    dialog = wizard.runner.dialog
    qtbot.waitUntil(lambda: dialog.value() >= 1, timeout=120000)
    dialog.findChild(QPushButton).click()  # the progress dialog's Cancel
    qtbot.waitUntil(lambda: not wizard.running, timeout=120000)
    v = wizard.validation
    assert v.cancelled and 0 < len(v.results) < N_COPIES
    assert (
        "cancelled" in wizard.statement.text()
        and "NOT a site validation" in wizard.statement.text()
    )
    assert not wizard.accept_button.isEnabled() and "cancelled" in wizard.status.text()
    assert not wizard.start(tmp_path / "nowhere.csv")
    assert "does not exist" in wizard.status.text()
    wizard.close()


def test_sign_report_is_kept_in_the_session_and_removed_by_editing_the_text(
    window, qtbot, tmp_path, monkeypatch
):
    from PySide6.QtWidgets import QMessageBox

    image = tmp_path / "img.png"
    shutil.copy(ASSET, image)
    assert window.open_paths([image])
    assert "not signed" in window.signature_status.text()
    window.keep_report_details(StudyInfo(operator="Dr Operator", impression="Benign-looking."))
    asked = {}

    def get_text(parent, title, label, text=""):
        asked["prefill"] = text
        return "Dr Signer", True

    monkeypatch.setattr("thyroid_desktop.ui.exports.QInputDialog.getText", get_text)
    titles = []
    monkeypatch.setattr(window, "show_message", lambda title, text, *a: titles.append(title))
    window.sign_report_dialog()  # a report with no nodule: nothing to sign (nor to export)
    assert titles == ["Nothing to sign"] and "prefill" not in asked
    assert not window.sign_report("Dr Signer") and not window.session.state.study.report.signed
    from thyroid_desktop.core.pipeline.roi import ROI

    window.review.box_drawn(ROI(20, 20, 60, 40))  # N1, its TI-RADS not chosen: asked, Yes
    monkeypatch.setattr(
        "PySide6.QtWidgets.QMessageBox.question",
        lambda *a: QMessageBox.StandardButton.Yes,
    )
    window.sign_report_dialog()
    assert asked["prefill"] == "Dr Operator"
    report = window.session.state.study.report
    assert report.signed and report.signed_by == "Dr Signer"
    assert "signed by Dr Signer" in window.signature_status.text()
    kept = SessionStore().open_study()  # what a restart reads back
    assert kept.study.report.signed_by == "Dr Signer" and kept.study.report.signed_at

    # The same words again keep the signature; other words take it away.
    window.keep_report_details(StudyInfo(operator="Dr Operator", impression="Benign-looking."))
    assert window.session.state.study.report.signed
    window.keep_report_details(StudyInfo(operator="Dr Operator", impression="Changed."))
    assert not window.session.state.study.report.signed
    assert "not signed" in window.signature_status.text()
    said = window.statusBar().currentMessage()  # not only the permanent field
    assert said.startswith("The report's signature was removed: report text changed")
    assert not SessionStore().open_study().study.report.signed
    assert not window.sign_report("  ")  # a signature needs a name


def test_signing_a_study_with_an_unscored_nodule_asks_first(window, tmp_path, monkeypatch):
    """File > Sign report… with a nodule whose TI-RADS score is incomplete (the report will
    say "not scored"): the clinician is asked; No signs nothing, Yes signs."""
    from PySide6.QtWidgets import QMessageBox

    from thyroid_desktop.core.pipeline.roi import ROI

    image = tmp_path / "img.png"
    shutil.copy(ASSET, image)
    assert window.open_paths([image])
    window.review.box_drawn(ROI(20, 20, 60, 40))  # N1, nothing chosen yet
    assert window.session.state.unscored() == {
        "N1": ["composition", "echogenicity", "shape", "margin", "echogenic foci"]
    }
    asked, answers = [], [QMessageBox.StandardButton.No, QMessageBox.StandardButton.Yes]
    monkeypatch.setattr(
        "PySide6.QtWidgets.QMessageBox.question",
        lambda parent, title, text, *a: asked.append(text) or answers.pop(0),
    )
    monkeypatch.setattr(
        "thyroid_desktop.ui.exports.QInputDialog.getText", lambda *a, **k: ("Dr Signer", True)
    )
    window.sign_report_dialog()
    assert "N1: composition" in asked[0] and not window.session.state.study.report.signed
    assert asked[0].startswith("This nodule has no complete ACR TI-RADS score")  # one: singular
    window.sign_report_dialog()
    assert len(asked) == 2 and window.session.state.study.report.signed
    from thyroid_desktop.core.report.audit import AuditLog

    (signed,) = [r for r in AuditLog().read() if r["action"] == "sign-report"]  # audited
    assert signed["roi"] == [20, 20, 60, 40] and signed["detail"].startswith(
        "N1 signed by Dr Signer at "
    )


def test_a_profile_worse_out_of_fold_is_saved_but_not_put_in_use(
    window, qtbot, tmp_path, monkeypatch
):
    """The wizard of a GUI trial put in use a profile that calibrated the site's own cases
    worse out of fold, saying only "saved and now in use"."""
    ready(window, qtbot)
    menu_action(window, CALIBRATE_TEXT).trigger()
    wizard = window.calibration_wizard
    cases = tmp_path / "cases"
    names = synthetic_copies(cases)
    write_labels(cases / "labels.csv", [(n, i % 2, f"c{i}") for i, n in enumerate(names)])
    run(wizard, qtbot, cases)
    logit = {r.file: r.logit for r in wizard.validation.results}
    cut = np.median(list(logit.values()))
    write_labels(
        cases / "labels.csv", [(n, int(logit[n] > cut), f"c{i}") for i, n in enumerate(names)]
    )
    run(wizard, qtbot, cases)
    monkeypatch.setattr(site.SiteProfile, "worse_than_shipped", property(lambda self: True))
    wizard.name.setText("clinic-worse")
    assert wizard.accept_profile()
    qtbot.waitUntil(lambda: "NOT put in use" in wizard.status.text(), timeout=120000)
    assert "out of fold: AUROC" in wizard.status.text()
    assert site.load_profile("clinic-worse").name == "clinic-worse"  # saved
    assert site.active_name() != "clinic-worse" and window.classifier.profile is None
