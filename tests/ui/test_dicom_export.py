"""File > Export DICOM…, Send to PACS… and PACS settings…: the session's nodules leave the
window as SR + PDF + key images, into a real Orthanc (tests/test_pacs_orthanc.py)."""

from __future__ import annotations

import pydicom

from tests.test_pacs_orthanc import orthanc  # noqa: F401  (the fixture)
from thyroid_desktop.core.clinical.tirads import (
    Composition,
    Echogenicity,
    Margin,
    Shape,
    TiradsChoices,
    TiradsDescriptors,
)
from thyroid_desktop.core.report.pacs import Outbox, load_settings
from thyroid_desktop.core.report.pdf import StudyInfo
from thyroid_desktop.ui.pacs_dialog import PacsDialog

TIRADS = TiradsDescriptors(
    Composition.MIXED, Echogenicity.HYPER_ISO, Shape.WIDER, Margin.SMOOTH, frozenset()
)


def test_pacs_settings_dialog_saves_what_is_usable(qtbot):
    dialog = PacsDialog(None)
    qtbot.addWidget(dialog)
    dialog.ae_title.setText("ORTHANC")
    dialog.host.setText("")
    dialog.accept()
    assert "host is missing" in dialog.status.text() and load_settings() is None
    dialog.host.setText("pacs.example")
    dialog.port.setValue(4242)
    dialog.accept()
    saved = load_settings()
    assert (saved.ae_title, saved.host, saved.port) == ("ORTHANC", "pacs.example", 4242)


def test_the_sessions_nodule_is_exported_and_sent_to_the_pacs(
    window,
    qtbot,
    cine_dicom,
    tmp_path,
    monkeypatch,
    orthanc,  # noqa: F811
):
    from thyroid_desktop.ui import pacs_dialog

    texts = [a.text() for a in window.menuBar().actions()[0].menu().actions()]
    assert {"Export &DICOM…", "Send to &PACS…", "PACS settin&gs…"} <= set(texts)
    assert window.open_paths([cine_dicom])
    qtbot.waitUntil(
        lambda: window.review.finding is not None and not window.review.awaiting, timeout=120000
    )
    window.accept_proposal()
    (n1,) = window.session.state.nodules
    window.session.set_tirads("N1", TiradsChoices.of(TIRADS))
    study = StudyInfo(operator="Dr Example", impression="Mixed nodule.")

    window.export_dicom(tmp_path / "dicom", study)
    # queued behind the export, before its result reached the study record
    outbox = Outbox(tmp_path / "outbox")
    window.send_to_pacs(orthanc.settings, study, outbox)
    qtbot.waitUntil(lambda: getattr(window, "last_send", None) is not None, timeout=120000)
    export = window.last_dicom_export
    source = pydicom.dcmread(cine_dicom, stop_before_pixels=True)
    assert not export.identity.new_study
    said = window.panel.state.text()  # what happened last: which version went where, stored
    assert said.endswith(window.last_send.message) and "for the patient's study: " in said
    import highdicom as hd

    sr = hd.sr.srread(export.sr)
    assert (sr.StudyInstanceUID, sr.PatientID) == (source.StudyInstanceUID, source.PatientID)
    (group,) = sr.content.get_planar_roi_measurement_groups()
    assert group.tracking_identifier == "Nodule N1"
    assert group.tracking_uid == n1.uid  # the session's nodule, in every version
    evals = {q.name.meaning: q.value.value for q in group.get_qualitative_evaluations()}
    assert evals["ACR TI-RADS level"] == f"TR{TIRADS.level.tr}"
    assert evals["ACR TI-RADS composition"] == "MIXED"
    diameter = next(m for m in group.get_measurements() if m.name.meaning == "Diameter")
    assert diameter.unit.value == "mm" and diameter.value > 0

    assert window.last_send.ok, window.last_send.message
    assert outbox.pending() == [] and len(orthanc.json("/instances")) == 3
    assert "3 of 3 object(s) stored" in window.statusBar().currentMessage()
    # audited apart: written as DICOM, written into the outbox, stored by the PACS
    from thyroid_desktop.core.report.audit import AuditLog

    lines = {r["action"]: r for r in AuditLog().read()}
    assert {"export-dicom", "queue-pacs", "send-pacs"} <= set(lines)
    assert "export-report" not in lines  # the study PDF's line, not these
    assert lines["send-pacs"]["roi"] == n1.box.as_list()
    assert {lines[a]["nodule"] for a in ("export-dicom", "queue-pacs", "send-pacs")} == {n1.id}
    assert "all 3 object(s) stored" in lines["send-pacs"]["detail"]
    assert lines["export-dicom"]["image_sha256"] == n1.image
    # the SR sent names the one exported before as the version it supersedes
    first, sent = window.session.state.study.sr_versions
    assert first == export.version and sent.instance_number == 2
    (stored,) = [i for i in orthanc.instances() if i.SOPInstanceUID == sent.sop_instance_uid]
    (series,) = stored.PredecessorDocumentsSequence[0].ReferencedSeriesSequence
    assert series.ReferencedSOPSequence[0].ReferencedSOPInstanceUID == first.sop_instance_uid
    (group,) = hd.sr.Comprehensive3DSR.from_dataset(
        stored
    ).content.get_planar_roi_measurement_groups()
    assert group.tracking_uid == n1.uid
    # Send to PACS again: it asks before writing version 3 (a GUI trial piled up identical
    # versions); No writes and sends nothing
    asked = []
    window.ask_yes_no = lambda title, text: asked.append(text) or False
    monkeypatch.setattr(pacs_dialog, "load_settings", lambda: orthanc.settings)
    window.last_send = None
    window.send_to_pacs_dialog()
    assert len(asked) == 1 and "Version 2 of this study's report" in asked[0]
    assert "as version 3" in asked[0] and window.last_send is None
    assert len(window.session.state.study.sr_versions) == 2


def test_a_signed_study_stays_signed_through_the_export_dialog(window, qtbot, cine_dicom, tmp_path):
    """Sign, then File > Export DICOM…: the dialog fills the details from the DICOM header and
    the last operator and keeps them; that is what was signed, so the signature stays and the
    SR is sent final and verified by the signer."""
    assert window.open_paths([cine_dicom])
    qtbot.waitUntil(
        lambda: window.review.finding is not None and not window.review.awaiting, timeout=120000
    )
    window.accept_proposal()
    window.settings.setValue("report/operator", "Dr Example")
    assert window.sign_report("Example, Ada")
    # what the export dialog shows and keeps when the clinician presses OK
    shown = window.report_details(window.review.image.metadata, "Dr Example")
    window.keep_report_details(shown)
    assert window.session.state.study.report.signed
    window.export_dicom(tmp_path / "dicom", shown)
    qtbot.waitUntil(lambda: getattr(window, "last_dicom_export", None) is not None, timeout=120000)
    sr = pydicom.dcmread(window.last_dicom_export.sr)
    assert (sr.VerificationFlag, sr.PreliminaryFlag) == ("VERIFIED", "FINAL")
    assert str(sr.VerifyingObserverSequence[0].VerifyingObserverName) == "Example^Ada"
    assert sr.VerifyingObserverSequence[0].VerifyingOrganization == "Example Hospital"
    assert sr.InstitutionName == "Example Hospital"


def test_an_export_finishing_as_the_window_closes_is_still_recorded(
    window, qtbot, cine_dicom, tmp_path
):
    """The window closed while an export runs: its result is not delivered to the closed
    window, but the SR it wrote is recorded with the study (a later report supersedes it)."""
    assert window.open_paths([cine_dicom])
    qtbot.waitUntil(
        lambda: window.review.finding is not None and not window.review.awaiting, timeout=120000
    )
    window.accept_proposal()
    window.export_dicom(tmp_path / "dicom", StudyInfo(operator="Dr Example"))
    window.close()  # waits for the running job, then closes
    assert getattr(window, "last_dicom_export", None) is None  # the result was not delivered
    written = pydicom.dcmread(tmp_path / "dicom" / "report_sr.dcm")
    (version,) = window.session.state.study.sr_versions
    assert version.sop_instance_uid == written.SOPInstanceUID


def test_a_new_version_leaving_out_an_earlier_nodule_asks_first(
    window, qtbot, tmp_path, monkeypatch
):
    """N1 on one image and N2 on another are exported; in a new reading only the second
    image is reopened (its nodule comes back as N1). Exporting again would supersede the
    report that had both: the window asks first (No writes nothing), and the version written
    says what it leaves out."""
    import cv2

    from thyroid_desktop.core.io.phantom import make_phantom
    from thyroid_desktop.ui import pacs_dialog

    paths = []
    for i in range(2):
        paths.append(tmp_path / f"scan{i}.png")
        cv2.imwrite(str(paths[-1]), make_phantom(seed=i).pixels)
    study = StudyInfo(operator="Dr Example", patient_id="P-5")
    assert window.open_paths(paths)
    for row in range(2):
        window.study_list.setCurrentRow(row)
        qtbot.waitUntil(lambda: window.review.proposal is not None, timeout=120000)
        window.accept_proposal()
    first_uids = [n.uid for n in window.session.state.nodules]
    window.export_dicom(tmp_path / "v1", study)
    qtbot.waitUntil(lambda: getattr(window, "last_dicom_export", None) is not None, timeout=60000)
    assert window.last_dicom_export.left_out == ()

    window.new_study()
    assert window.open_paths([paths[1]])
    (back,) = window.session.state.nodules
    assert (back.id, back.uid) == ("N1", first_uids[1])
    asked = []

    def answer(reply):
        def question(_parent, _title, text, *_args):
            asked.append(text)
            return reply

        return question

    monkeypatch.setattr(pacs_dialog.QMessageBox, "question", answer(pacs_dialog.QMessageBox.No))
    window.last_dicom_export = None
    window.export_dicom(tmp_path / "v2", study)
    qtbot.wait(200)
    assert "Nodule N1 of version 1" in asked[0] and not (tmp_path / "v2").exists()
    monkeypatch.setattr(pacs_dialog.QMessageBox, "question", answer(pacs_dialog.QMessageBox.Yes))
    window.export_dicom(tmp_path / "v2", study)
    qtbot.waitUntil(lambda: window.last_dicom_export is not None, timeout=60000)
    assert len(asked) == 2
    assert window.last_dicom_export.left_out == ("Nodule N1 of version 1",)
    assert "does not report Nodule N1 of version 1" in window.statusBar().currentMessage()


def test_a_send_the_pacs_refuses_is_audited_as_queued_not_sent(window, qtbot, tmp_path):
    """The report written into the outbox is audited at once (``queue-pacs``); ``send-pacs``
    only once the PACS stored it (a review: the line was written before the send)."""
    from thyroid_desktop.core.report.audit import AuditLog

    said = []
    window.show_message = lambda title, text, *a, **k: said.append((title, text, k))
    outbox = Outbox(tmp_path / "outbox")
    _failed_send(window, qtbot, tmp_path, outbox)
    assert not window.last_send.ok and said[-1][0] == "Not everything reached the PACS"
    # one line for the panel (a trial's six lines of UIDs pushed the estimate down); each
    # object with its reason behind Show Details…
    text, details = said[-1][1], said[-1][2]["details"]
    assert text.startswith("0 of 3 object(s) stored on") and "3 not stored: " in text
    assert text.count("\n") == 2 and details.count("\n") == 3
    actions = [r["action"] for r in AuditLog().read()]
    assert "queue-pacs" in actions and "send-pacs" not in actions
    assert len(outbox.pending()) == 3


def test_resending_after_a_failed_send_can_send_only_what_waits(
    window,
    qtbot,
    tmp_path,
    monkeypatch,
    orthanc,  # noqa: F811
):
    """A GUI trial retried File > Send to PACS after the PACS came back: the same report was
    written again as version 2 and the PACS got two of each. Now it asks, and "Send waiting
    only" sends what waits without a new version."""
    from thyroid_desktop.core.report.audit import AuditLog
    from thyroid_desktop.ui import pacs_dialog

    window.show_message = lambda *a, **k: None
    _failed_send(window, qtbot, tmp_path, Outbox())

    monkeypatch.setattr(pacs_dialog, "load_settings", lambda: orthanc.settings)
    asked = []
    monkeypatch.setattr(
        window, "ask_waiting", lambda n, outbox: asked.append(n) or pacs_dialog.WAITING_ONLY
    )
    window.last_send = None
    monkeypatch.setattr(window, "service", None)  # what waits is sent without a model too
    window.send_to_pacs_dialog()
    qtbot.waitUntil(lambda: window.last_send is not None, timeout=120000)
    assert asked == [3] and window.last_send.ok, window.last_send.message
    assert len(orthanc.json("/instances")) == 3 and Outbox().pending() == []  # no version 2
    actions = [r["action"] for r in AuditLog().read()]
    assert actions.count("queue-pacs") == 1
    assert actions.count("send-pacs") == 1 and actions[-1] == "send-pacs"  # arrived now


def test_a_failed_connection_test_is_shown_whole(qtbot):
    """A GUI trial read only "the PACS ORTHANC@127.0.0.1:14242" of the failure, cut off
    beside the button: it could not tell a pass from a failure."""
    from tests.core.test_dicom_out import free_port

    port = free_port()
    dialog = PacsDialog(None)
    qtbot.addWidget(dialog)
    dialog.show()
    dialog.ae_title.setText("ORTHANC")
    dialog.host.setText("127.0.0.1")
    dialog.port.setValue(port)
    dialog.test()
    qtbot.waitUntil(lambda: dialog.status.text().startswith("Not reached"), timeout=60000)
    assert "cannot be reached" in dialog.status.text()
    qtbot.wait(50)
    label = dialog.status
    assert label.height() >= label.heightForWidth(label.width())  # every line shown


def _failed_send(window, qtbot, tmp_path, outbox):
    """A phantom's nodule accepted and its report sent to a PACS that is down (a port
    nothing listens on): it waits in ``outbox``."""
    import cv2
    import numpy as np

    from thyroid_desktop.core.io.phantom import make_phantom

    path = tmp_path / "scan.png"
    cv2.imwrite(str(path), np.asarray(make_phantom(seed=0).pixels))
    window.open_paths([path])
    qtbot.waitUntil(
        lambda: window.review.finding is not None and not window.review.awaiting, timeout=120000
    )
    window.accept_proposal()
    window.send_to_pacs(_down(), StudyInfo(operator="Dr Example"), outbox)
    qtbot.waitUntil(lambda: getattr(window, "last_send", None) is not None, timeout=120000)
    assert not window.last_send.ok and len(outbox.pending()) == 3


def test_another_studys_objects_waiting_are_not_offered_as_this_reports_resend(
    window, qtbot, tmp_path, monkeypatch
):
    """A review: "Send waiting only" with yesterday's study waiting would have sent that and
    not today's report, saying "stored". Then no question: this report is written and sent
    with what waits."""
    import shutil

    from pydicom.data import get_testdata_file

    from thyroid_desktop.ui import pacs_dialog

    window.show_message = lambda *a, **k: None
    _failed_send(window, qtbot, tmp_path, Outbox())  # this study's report waits
    assert window._waiting_is_this_study(Outbox())
    shutil.copy(get_testdata_file("CT_small.dcm"), Outbox().folder / "other.dcm")
    assert not window._waiting_is_this_study(Outbox())  # and another study's object
    asked = []
    monkeypatch.setattr(window, "ask_waiting", lambda *a: asked.append(a))
    sent = []
    monkeypatch.setattr(window, "send_to_pacs", lambda settings, study, outbox: sent.append(study))
    monkeypatch.setattr(pacs_dialog, "load_settings", _down)
    monkeypatch.setattr(window, "_study_details", lambda: StudyInfo(operator="Dr Example"))
    versions = []  # version 1 was written (it waits): version 2 is asked for first
    monkeypatch.setattr(window, "ask_yes_no", lambda title, text: versions.append(text) or True)
    window.send_to_pacs_dialog()
    assert asked == [] and sent == [StudyInfo(operator="Dr Example")]  # a new version
    assert len(versions) == 1 and "as version 2" in versions[0]


def _down():
    from tests.core.test_dicom_out import free_port
    from thyroid_desktop.core.report.pacs import PacsSettings

    return PacsSettings("NOBODY", "127.0.0.1", free_port(), timeout_s=2)
