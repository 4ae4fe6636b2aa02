"""Site calibration (switching profiles, the calibration wizard) and validation on local
cases, from the window."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtWidgets import (
    QFileDialog,
    QMessageBox,
)

from thyroid_desktop.core.site.profile import (
    ProfileError,
    activate,
    calibration_label,
    changed_outside,
    deactivate,
    load_profile,
    model_sha256,
)
from thyroid_desktop.ui.calibration_wizard import CalibrationWizard
from thyroid_desktop.ui.validation_dialog import show_summary


class SiteCalibrationMixin:
    """Mixed into MainWindow (which provides the widgets, the session and the worker)."""

    def _show_calibration(self) -> None:
        """Says which calibration is in use: status bar and the model panel."""
        clf = self.classifier
        if clf is None:
            return
        label = calibration_label(clf.profile)
        outside = self._outside  # check_calibration_outside
        mark = " ⚠" if outside is not None else ""
        tip = f"\nThis workstation now uses: {outside.message}" if outside is not None else ""
        self.calibration_status.setText(f"Calibration: {label.split(' (')[0]}{mark}")
        self.calibration_status.setToolTip(label + tip)
        card = clf.card
        summary = card.performance_text().replace(" - ", ":\n", 1).replace(" | ", "\n")
        self.panel.show_model(card.id, card.version, f"{summary}\nIn use: {label}")

    def check_calibration_outside(self) -> None:
        """Says, once per change, that the calibration was put in use outside this window
        (the command line); the window keeps the one it uses until one is chosen in the menu
        (switching under a clinician's study is theirs to decide: it re-scores it)."""
        clf = self.classifier
        if clf is None or self._switch_pending:
            return  # the window's own switch has written the pointer and is under way

        def key(o):  # which calibration, not how it is worded
            return (o.profile, o.refused) if o is not None else None

        outside = changed_outside(clf)
        if key(outside) == key(self._outside):
            return
        self._outside = outside
        self._show_calibration()  # the status bar's calibration says it until they agree
        if outside is None:
            return
        self.say_notice(
            f"Calibration changed outside this window: {outside.message}. This window "
            f"still uses {calibration_label(clf.profile).split(' (')[0]}: choose one in "
            "Analysis > Site calibration to switch.",
            30000,
        )

    def use_calibration(self, name: str | None) -> None:
        """Makes the site profile ``name`` (None: the shipped calibration) the active one and
        analyses the current image again with it."""
        clf = self.classifier
        if clf is None:
            self.show_message("Model not ready", "The model is still loading; try again shortly.")
            return
        if self.batch.running or self.validation.running:
            self.show_message("Busy", "Wait for the batch or validation to end, then switch.")
            self.calibration_menu.rebuild()
            return
        try:
            chosen = load_profile(name) if name is not None else None
            target = chosen.calibration if chosen is not None else clf.shipped_calibration
            if self.review.switch_unsigns(target) and not self.ask_unsign_switch():
                self.calibration_menu.rebuild()
                return
            if chosen is None:
                deactivate()
                profile = None
            else:
                current = clf.profile.name if clf.profile is not None else None
                why = chosen.worse_text() if name != current else ""
                if why and not self.ask_use_worse(name, why):
                    self.calibration_menu.rebuild()
                    return
                profile = activate(name, clf.card.id, model_sha256(clf))
        except (ProfileError, OSError) as err:
            self.show_message("Calibration not changed", str(err))
            self.calibration_menu.rebuild()
            return

        def switch() -> None:  # in the worker: no analysis sees half a switch
            clf.profile = profile

        def failed(err: Exception) -> None:
            self._switch_pending = False
            self.show_message("Calibration not changed", str(err))

        self._switch_pending = True  # until the worker has switched (check_calibration_outside)
        self._run(switch, lambda _: self._calibration_changed(), failed)

    def ask_unsign_switch(self) -> bool:
        """The report is signed: switching the calibration re-scores its nodules and takes
        the signature away (a GUI trial: it went silently, and a call flipped). Go on?"""
        return self.ask_yes_no(
            "Switch the calibration of a signed report?",
            "The report is signed. Another calibration re-scores its nodules (a call may "
            "change) and removes the signature; you would check the report and sign it "
            "again.\n\nSwitch anyway?",
        )

    def ask_use_worse(self, name: str, why: str) -> bool:
        """The profile calibrates its site's cases worse than the shipped calibration out
        of fold (the wizard saved it without putting it in use): use it anyway?"""
        return self.ask_yes_no(
            "Use a worse calibration?", f"Site profile {name!r}: {why}.\n\nUse it anyway?"
        )

    def calibrate_dialog(self) -> CalibrationWizard | None:
        """Analysis > Site calibration > Calibrate for this site…: the wizard (one per window,
        kept between openings); a profile it accepts becomes the active calibration."""
        if self.classifier is None:
            self.show_message("Model not ready", "The model is still loading; try again shortly.")
            return None
        wizard = getattr(self, "calibration_wizard", None)
        if wizard is None:
            wizard = CalibrationWizard(
                self._run,
                self.classifier,
                self.segmenter,
                self,
                str(self.settings.value("files/last_folder", "")),
            )
            wizard.profileAccepted.connect(lambda profile: self.use_calibration(profile.name))
            self.calibration_wizard = wizard
        wizard.open()
        return wizard

    def _calibration_changed(self) -> None:
        self._switch_pending = False
        self._outside = None  # chosen here: the two agree
        clf = self.classifier
        self.rescore_study(f"Now using the {calibration_label(clf.profile)}.")
        self._show_calibration()
        self.calibration_menu.rebuild()
        review = self.review
        if review.image is None:
            return
        if review.proposal is not None:  # still a proposal: analysed again, not confirmed
            self.analyse()
        elif review.roi is not None:
            source = review.finding.roi_source if review.finding is not None else review.roi_source
            self.set_roi(review.roi, source)
        elif review.finding is not None:
            self.analyse()  # the whole scan area, as before
        else:
            self.auto_detect()

    def rescore_study(self, why: str) -> None:
        """The study's results re-scored under the classifier's calibration (after a switch,
        or a study reopened, restored or undone to numbers of another calibration), each
        nodule audited, every list line redrawn; says ``why`` and what changed: in a box
        when a call changed or the signature went, else in the status bar."""
        clf = self.classifier
        rescored = self.review.calibration_changed(clf.calibration, clf.card.spread_limit)
        said = " ".join(t for t in (why, rescored.text()) if t)
        try:
            for record in rescored.records(self.session.state):
                self.audit.append(record)
        except OSError as err:
            said += f" Audit log not written: {err}"
        for row in range(self.study_list.count()):  # every line re-scored, not only this one
            self._show_row(row)
        if rescored.notable:
            self.show_message("Study re-scored", said, QMessageBox.Icon.Information)
        elif said:
            self.say_notice(said, 20000)

    def rescore_if_stale(self) -> None:
        """Re-scores results held under another calibration than the one in use."""
        clf = self.classifier
        if clf is None or self.review.calibration != clf.calibration.name:
            return  # no model yet, or a switch under way: _calibration_changed re-scores
        if self.review.calibration_stale(clf.calibration):
            self.rescore_study(f"Scored again under the {calibration_label(clf.profile)}.")

    def validate_dialog(self) -> None:
        folder = str(self.settings.value("files/last_folder", ""))
        path = QFileDialog.getExistingDirectory(
            self, "Validate on a folder of labelled cases (labels.csv: file,label,case)", folder
        )
        if path:
            self.validate_folder(Path(path))

    def validate_folder(self, folder: Path, out_dir: Path | None = None) -> bool:
        """Validates the model (current calibration) on a labelled folder in the worker."""
        if self.classifier is None:
            self.show_message("Model not ready", "The model is still loading; try again shortly.")
            return False
        if self.batch.running:
            self.show_message("Busy", "Wait for the batch to end, then validate.")
            return False
        return self.validation.start(folder, self.classifier, self.segmenter, out_dir)

    def _validation_done(self, validation, files) -> None:
        self.last_validation = (validation, files)
        self.statusBar().showMessage(f"Validation report written to {files.pdf}", 15000)
        self.last_message = show_summary(self, validation, files)
