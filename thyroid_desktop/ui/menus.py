"""The window's menus, recent files, the shortcut list and Help > About."""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Qt
from PySide6.QtGui import QAction, QKeySequence
from PySide6.QtWidgets import (
    QMessageBox,
)

from thyroid_desktop.ui.calibration_menu import CalibrationMenu

MAX_RECENT = 10


class MenusMixin:
    """Mixed into MainWindow (which provides the widgets, the session and the worker)."""

    def _action(self, menu, text: str, slot, shortcut=None, checkable=False) -> QAction:
        act = QAction(text, self)
        act.setShortcutContext(Qt.ShortcutContext.WindowShortcut)  # whatever widget has focus
        keys = shortcut if isinstance(shortcut, list) else [shortcut] if shortcut else []
        act.setShortcuts([QKeySequence(k) for k in keys])
        act.setCheckable(checkable)
        act.triggered.connect(slot)
        menu.addAction(act)
        self._actions.append(act)
        return act

    def _toggle_overlay(self) -> None:
        """G: the Grad-CAM overlay on or off, as its checkbox (not while it is disabled)."""
        if self.panel.overlay.isEnabled():
            self.panel.overlay.toggle()

    def _build_menus(self) -> None:
        file_menu = self.menuBar().addMenu("&File")
        self._action(file_menu, "Ne&w study", self.new_study, "Ctrl+Shift+N")
        self._action(file_menu, "C&lose study", self.new_study, QKeySequence.StandardKey.Close)
        file_menu.addSeparator()
        self._action(file_menu, "&Open images…", self.open_dialog, QKeySequence.StandardKey.Open)
        self._action(file_menu, "Open &folder…", self.open_folder_dialog, "Ctrl+Shift+O")
        self.recent_menu = file_menu.addMenu("Open &recent")
        self._rebuild_recent()
        file_menu.addSeparator()
        self._action(file_menu, "&Export PDF report…", self.export_dialog, "Ctrl+E")
        self._action(
            file_menu, "Export s&tudy report (all nodules)…", self.export_study_dialog, "Ctrl+R"
        )
        self._action(
            file_menu, "Export study list as &CSV…", self.export_csv_dialog, "Ctrl+Shift+E"
        )
        self._action(file_menu, "Export &DICOM…", self.export_dicom_dialog)
        self._action(file_menu, "Send to &PACS…", self.send_to_pacs_dialog)
        self._action(file_menu, "PACS settin&gs…", self.pacs_settings_dialog)
        self._action(file_menu, "Si&gn report…", lambda: self.sign_report_dialog())
        self._build_signature_status()
        file_menu.addSeparator()
        self._action(file_menu, "&Validate on local cases…", self.validate_dialog)
        file_menu.addSeparator()
        self._action(file_menu, "&Save session as…", self.save_session_dialog, "Ctrl+S")
        self._action(file_menu, "Open sessio&n…", self.open_session_dialog)
        file_menu.addSeparator()
        self._action(file_menu, "&Quit", self.close, QKeySequence.StandardKey.Quit)
        edit_menu = self.menuBar().addMenu("&Edit")
        self.undo_action = self._action(
            edit_menu, "&Undo", self.undo, QKeySequence.StandardKey.Undo
        )
        self.redo_action = self._action(edit_menu, "&Redo", self.redo, "Ctrl+Shift+Z")
        self._update_undo_actions()
        view_menu = self.menuBar().addMenu("&View")
        self._action(view_menu, "&Fit to window", self.view.fit, "F")
        self._action(view_menu, "Actual size (&1:1)", self.view.actual_size, "1")
        self._action(
            view_menu, "Zoom &in", lambda: self.view.zoom(1.25), QKeySequence.StandardKey.ZoomIn
        )
        self._action(
            view_menu, "Zoom &out", lambda: self.view.zoom(0.8), QKeySequence.StandardKey.ZoomOut
        )
        self._action(view_menu, "Toggle &Grad-CAM", self._toggle_overlay, "G")
        self.side_action = self._action(
            view_menu, "Grad-CAM &side by side", self.view.set_side_by_side, "S", checkable=True
        )
        self._action(view_menu, "&Reset window/level", self.view.reset_window_level, "R")
        self.gland_action = self._action(
            view_menu, "&Thyroid gland outline", self.view.set_gland_visible, "T", checkable=True
        )
        self.gland_action.setChecked(True)
        view_menu.addSeparator()
        self._action(view_menu, "&Next image", lambda: self.step(1), "PgDown")
        self._action(view_menu, "&Previous image", lambda: self.step(-1), "PgUp")
        self._action(view_menu, "Next &frame", lambda: self.frame_bar.step(1), "Right")
        self._action(view_menu, "Previous fra&me", lambda: self.frame_bar.step(-1), "Left")
        self._action(
            view_menu,
            "&Play / pause loop",
            lambda: self.frame_bar.set_playing(not self.frame_bar.playing),
            "Space",
        )
        analysis = self.menuBar().addMenu("&Analysis")
        self._action(analysis, "&Auto-detect nodule (a proposal)", self.auto_detect, "A")
        self._action(analysis, "&Next candidate", self.next_candidate, "N")
        self._action(
            analysis, "Acce&pt proposal as a nodule", self.accept_proposal, ["Return", "Enter", "Y"]
        )
        self._action(analysis, "Re&ject proposal", self.reject_proposal, "X")
        self._action(analysis, "Analyse &whole scan area", self.analyse_whole_image, "W")
        analysis.addSeparator()
        self._action(analysis, "A&dd nodule (draw its box)", self.start_new_nodule, "Ctrl+N")
        self._action(analysis, "De&lete nodule", self.delete_nodule)
        analysis.addSeparator()
        self._action(analysis, "Analyse all &images in the list", self.analyse_all, "Ctrl+B")
        self._action(analysis, "&Cancel batch", self.cancel_batch, "Ctrl+Shift+B")
        analysis.addSeparator()
        self._build_measure_menu(analysis)
        analysis.addSeparator()
        self.calibration_menu = CalibrationMenu("Site &calibration", self)
        self.calibration_menu.chosen.connect(self.use_calibration)
        self.calibration_menu.calibrateRequested.connect(self.calibrate_dialog)
        analysis.addMenu(self.calibration_menu)
        help_menu = self.menuBar().addMenu("&Help")
        self._action(help_menu, "&Keyboard shortcuts", self.show_shortcuts, "F1")
        self._action(help_menu, "&About Thyroid Review", self.show_about)

    def _restore_layout(self) -> None:
        geometry = self.settings.value("window/geometry")
        if geometry is not None:
            self.restoreGeometry(geometry)
        split = self.settings.value("window/split3")
        if split is not None:
            self._split.restoreState(split)

    def recent_files(self) -> list[str]:
        value = self.settings.value("files/recent", [])
        return [value] if isinstance(value, str) else list(value or [])

    def _remember(self, path: Path) -> None:
        recent = [str(path)] + [p for p in self.recent_files() if p != str(path)]
        self.settings.setValue("files/recent", recent[:MAX_RECENT])
        self.settings.setValue("files/last_folder", str(path.parent))
        self._rebuild_recent()

    def _rebuild_recent(self) -> None:
        self.recent_menu.clear()
        for i, name in enumerate(self.recent_files()):
            act = self.recent_menu.addAction(f"&{(i + 1) % 10} {name}")
            act.triggered.connect(lambda _=False, p=name: self.open_paths([Path(p)]))
        self.recent_menu.setEnabled(bool(self.recent_files()))

    def shortcuts_text(self) -> str:
        """Every action with a shortcut, from the menus themselves (one source of truth)."""
        rows = [
            f"{a.shortcut().toString(QKeySequence.SequenceFormat.NativeText)}\t{a.text().replace('&', '')}"
            for a in self._actions
            if not a.shortcut().isEmpty()
        ]
        extra = [
            "Click on the image\toutline the nodule there (a new nodule)",
            "Shift+drag along the nodule\toutline it from its long axis (a new nodule)",
            "Left-drag on the image\tdraw a new nodule box",
            "Drag inside / on the edge of the box\tmove / resize it (a proposal: accept it)",
            "Click in a dashed box\tlook at that detected candidate (a proposal)",
            "Right-drag\twindow/level (brightness, contrast)",
            "Middle-drag\tpan",
            "Wheel\tzoom",
            "Up / Down\tprevious / next image in the study list",
        ]
        return "\n".join(rows + extra)

    def show_shortcuts(self) -> None:
        box = QMessageBox(
            QMessageBox.Icon.Information,
            "Keyboard shortcuts",
            self.shortcuts_text(),
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()

    def show_about(self) -> None:
        from thyroid_desktop.ui.about import about_text

        box = QMessageBox(
            QMessageBox.Icon.Information,
            "About Thyroid Review",
            about_text(self.classifier, self.segmenter),
            QMessageBox.StandardButton.Ok,
            self,
        )
        box.setAttribute(Qt.WidgetAttribute.WA_DeleteOnClose)
        box.open()
        self.last_message = box
