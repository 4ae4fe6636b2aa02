"""Sending the report to a real PACS: an Orthanc server started by the test (Debian package
``orthanc``; ``.ci/run`` installs it) on free ports with a generated configuration, checked
through its REST API. Skipped, with the reason, only where the ``Orthanc`` binary is absent."""

from __future__ import annotations

import json
import shutil
import subprocess
import time
import urllib.error
import urllib.request
from io import BytesIO
from pathlib import Path

import pydicom
import pytest

from tests.core.test_dicom_out import (
    ENCAPSULATED_PDF,
    PDF,
    SECONDARY_CAPTURE,
    check_sr,
    free_port,
    nodule_item,
    phantom_dicom,
    study_of,
)
from thyroid_desktop.core.io.images import open_image
from thyroid_desktop.core.report.dicom_out import export_study_dicom
from thyroid_desktop.core.report.pacs import Outbox, PacsSettings, send_files

#: Debian installs the server as /usr/sbin/Orthanc, which a user's PATH may not list.
ORTHANC = shutil.which("Orthanc") or shutil.which("Orthanc", path="/usr/sbin:/usr/local/sbin")
AE_TITLE = "TESTPACS"
#: Seconds Orthanc may take to open its REST API (it starts in well under a second).
STARTUP_S = 30.0
COMPREHENSIVE_3D_SR = "1.2.840.10008.5.1.4.1.1.88.34"
INSCOPE = Path(__file__).resolve().parent / "assets" / "inscope_bmode.png"
#: The nodule drawn into the in-scope image (tests/assets/make_inscope_image.py, NODULE).
INSCOPE_ROI = "220,120,130,100"


class Orthanc:
    """A running Orthanc: its DICOM address and its REST API."""

    def __init__(self, dicom_port: int, http_port: int) -> None:
        self.dicom_port, self.http_port = dicom_port, http_port
        self.settings = PacsSettings(AE_TITLE, "127.0.0.1", dicom_port, timeout_s=10)

    def get(self, path: str) -> bytes:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.http_port}{path}", timeout=10) as r:
            return r.read()

    def json(self, path: str):
        return json.loads(self.get(path))

    def instances(self) -> list[pydicom.Dataset]:
        """Every stored instance, read back from its file."""
        return [
            pydicom.dcmread(BytesIO(self.get(f"/instances/{i}/file")))
            for i in self.json("/instances")
        ]


@pytest.fixture
def orthanc(tmp_path):
    if ORTHANC is None:
        pytest.skip(
            "the Orthanc DICOM server is not installed (Debian: apt-get install orthanc; "
            ".ci/run installs it when it runs as root)"
        )
    storage = tmp_path / "orthanc-storage"
    storage.mkdir()
    dicom_port, http_port = free_port(), free_port()
    config = {
        "Name": "thyroid-review-test",
        "StorageDirectory": str(storage),
        "IndexDirectory": str(storage),
        "HttpPort": http_port,
        "DicomPort": dicom_port,
        "DicomAet": AE_TITLE,
        "RemoteAccessAllowed": False,
        "AuthenticationEnabled": False,
        "HttpServerEnabled": True,
        "DicomServerEnabled": True,
        "DicomAlwaysAllowStore": True,
        "DicomAlwaysAllowEcho": True,
        "DicomCheckCalledAet": True,
        "DicomModalities": {},
        "Plugins": [],
        "StorageCompression": False,
    }
    path = tmp_path / "orthanc.json"
    path.write_text(json.dumps(config))
    log = (tmp_path / "orthanc.log").open("w")
    proc = subprocess.Popen([ORTHANC, str(path)], stdout=log, stderr=subprocess.STDOUT)
    server = Orthanc(dicom_port, http_port)
    deadline = time.monotonic() + STARTUP_S
    try:
        while True:
            try:
                if server.json("/system").get("DicomAet") == AE_TITLE:
                    break
            except (urllib.error.URLError, ConnectionError, ValueError):
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                log.flush()
                text = (tmp_path / "orthanc.log").read_text()[-2000:]
                pytest.fail(f"Orthanc did not start (exit {proc.poll()}):\n{text}")
            time.sleep(0.1)  # polling the server's startup, not waiting for our own code
        yield server
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def exported(tmp_path, classifier):
    source = phantom_dicom(tmp_path / "us.dcm")
    image = open_image(source)
    item = nodule_item(image, classifier)
    out = export_study_dicom(tmp_path / "out", [item], classifier.card, study_of(image), PDF)
    return source, item, out


def test_sr_pdf_and_key_image_arrive_and_read_back(tmp_path, classifier, orthanc):
    source, item, out = exported(tmp_path, classifier)
    seen = []
    result = send_files(out.files, orthanc.settings, lambda *a: seen.append(a))
    assert result.ok and result.sent == 3, result.message
    assert [s[:2] for s in seen] == [(0, 3), (1, 3), (2, 3), (3, 3)]
    stored = {ds.SOPClassUID: ds for ds in orthanc.instances()}
    assert set(stored) == {COMPREHENSIVE_3D_SR, ENCAPSULATED_PDF, SECONDARY_CAPTURE}
    src = pydicom.dcmread(source)
    for ds in stored.values():  # one study: the source images'
        assert (ds.StudyInstanceUID, ds.PatientID) == (src.StudyInstanceUID, src.PatientID)
    (study,) = orthanc.json("/studies")
    assert orthanc.json(f"/studies/{study}")["MainDicomTags"]["StudyInstanceUID"] == (
        src.StudyInstanceUID
    )
    sr_file = tmp_path / "from-orthanc-sr.dcm"
    stored[COMPREHENSIVE_3D_SR].save_as(sr_file)
    check_sr(sr_file, item, classifier.card)
    assert stored[ENCAPSULATED_PDF].EncapsulatedDocument.startswith(PDF)


def test_a_refused_object_gets_its_own_error(tmp_path, classifier, orthanc):
    _, _, out = exported(tmp_path, classifier)
    junk = tmp_path / "junk.dcm"
    junk.write_bytes(b"not dicom")
    wrong_ae = PacsSettings("NOTTHEPACS", "127.0.0.1", orthanc.dicom_port, timeout_s=10)
    refused = send_files(out.files[:1], wrong_ae)
    assert not refused.ok and "refused the association" in refused.failed[0].error
    result = send_files([junk, *out.files], orthanc.settings)
    assert result.sent == 3 and [o.path for o in result.failed] == [junk]
    assert "not a readable DICOM file" in result.failed[0].error


def test_outbox_keeps_objects_while_the_pacs_is_down_and_retry_empties_it(
    tmp_path, classifier, orthanc
):
    _, _, out = exported(tmp_path, classifier)
    outbox = Outbox(tmp_path / "outbox")
    outbox.add(out.files)
    down = PacsSettings(AE_TITLE, "127.0.0.1", free_port(), timeout_s=2)
    assert not outbox.send(down).ok and len(outbox.pending()) == 3
    assert orthanc.json("/instances") == []
    retry = outbox.send(orthanc.settings)
    assert retry.ok and retry.sent == 3 and outbox.pending() == []
    assert len(orthanc.json("/instances")) == 3


def report_cli(*args, audit: bool = False) -> int:
    from thyroid_desktop import cli

    return cli.main(["report", *([] if audit else ["--no-audit"]), *map(str, args)])


def test_cli_report_writes_pdf_and_dicom_and_sends_them(tmp_path, orthanc, capsys, monkeypatch):
    from thyroid_desktop.core.report.audit import AuditLog

    monkeypatch.setenv("THYROID_AUDIT_LOG", str(tmp_path / "audit.jsonl"))
    pdf, folder, outbox = tmp_path / "study.pdf", tmp_path / "dicom", tmp_path / "outbox"
    send = f"{AE_TITLE}@127.0.0.1:{orthanc.dicom_port}"
    code = report_cli(
        INSCOPE,
        "--roi",
        INSCOPE_ROI,
        "--pdf",
        pdf,
        "--dicom",
        folder,
        "--send",
        send,
        "--outbox",
        outbox,
        "--patient-id",
        "SYN-1",
        audit=True,
    )
    text = capsys.readouterr().out
    assert code == 0, text
    actions = [r["action"] for r in AuditLog().read()]
    assert actions[-4:] == ["export-report", "export-dicom", "queue-pacs", "send-pacs"]
    assert pdf.read_bytes().startswith(b"%PDF") and "NEW study" in text
    assert "3 of 3 object(s) stored" in text and list(outbox.glob("*.dcm")) == []
    stored = orthanc.instances()
    assert {ds.SOPClassUID for ds in stored} == {
        COMPREHENSIVE_3D_SR,
        ENCAPSULATED_PDF,
        SECONDARY_CAPTURE,
    }
    assert {ds.PatientID for ds in stored} == {"SYN-1"}
    import highdicom as hd

    sr = hd.sr.srread(folder / "report_sr.dcm")
    (group,) = sr.content.get_planar_roi_measurement_groups()
    assert group.tracking_identifier == "Nodule N1"
    assert any(m.name.value == "AI-TR45" for m in group.get_measurements())
    # The PACS down: kept in the outbox, exit 1; `outbox --send` sends them later.
    dead = f"{AE_TITLE}@127.0.0.1:{free_port()}"
    code = report_cli(
        INSCOPE, "--accept-auto", "--pdf", pdf, "--send", dead, "--outbox", outbox, audit=True
    )
    assert code == 1 and len(list(outbox.glob("*.dcm"))) == 3
    actions = [r["action"] for r in AuditLog().read()]
    assert actions[-2:] == ["export-report", "queue-pacs"]  # not stored: no send-pacs
    from thyroid_desktop import cli

    assert cli.main(["outbox", "--outbox", str(outbox), "--send", send]) == 0
    assert list(outbox.glob("*.dcm")) == [] and len(orthanc.json("/instances")) == 6
    # ... and that send writes the report's send-pacs line (it used to get none)
    last = AuditLog().read()[-1]
    assert last["action"] == "send-pacs" and "all 3 object(s) stored" in last["detail"]
    assert list(outbox.glob(".audit-*")) == []


def test_cli_report_supersedes_an_earlier_sr(tmp_path, capsys):
    """``--supersedes``: the corrected report's SR names the earlier one as its predecessor,
    in the same (new) study and SR series; a file that is not an SR is refused up front."""
    first, second = tmp_path / "first", tmp_path / "second"
    common = (INSCOPE, "--roi", INSCOPE_ROI, "--pdf", tmp_path, "--patient-id", "SYN-1")
    assert report_cli(*common, "--dicom", first) == 0
    old = pydicom.dcmread(first / "report_sr.dcm")
    sr = first / "report_sr.dcm"
    # before the images, and given twice: named once
    code = report_cli("--supersedes", sr, "--supersedes", sr, *common, "--dicom", second)
    assert code == 0, capsys.readouterr()
    new = pydicom.dcmread(second / "report_sr.dcm")
    assert (new.StudyInstanceUID, new.SeriesInstanceUID) == (
        old.StudyInstanceUID,
        old.SeriesInstanceUID,
    )
    assert new.InstanceNumber == 2
    (series,) = new.PredecessorDocumentsSequence[0].ReferencedSeriesSequence
    (ref,) = series.ReferencedSOPSequence  # once, though given twice
    assert ref.ReferencedSOPInstanceUID == old.SOPInstanceUID

    def tracking(ds) -> str:
        import highdicom as hd

        sr = hd.sr.Comprehensive3DSR.from_dataset(ds)
        return sr.content.get_planar_roi_measurement_groups()[0].tracking_uid

    assert tracking(new) == tracking(old)  # the same nodule, the same tracking UID
    assert "Report version 2, superseding 1 earlier" in capsys.readouterr().out
    for bad, why in ((first / "report_pdf.dcm", "not a Comprehensive 3D SR"), (INSCOPE, "not a")):
        assert report_cli(*common, "--dicom", tmp_path / "x", "--supersedes", bad) == 2
        assert why in capsys.readouterr().err
    assert report_cli(*common, "--supersedes", first / "report_sr.dcm") == 2
    assert "needs --dicom or --send" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()
    other = (INSCOPE, "--roi", INSCOPE_ROI, "--pdf", tmp_path, "--patient-id", "SYN-2")
    assert report_cli(*other, "--dicom", tmp_path / "y", "--supersedes", sr) == 2
    assert "another study or patient" in capsys.readouterr().err
    assert not (tmp_path / "y").exists()


@pytest.mark.realdata
def test_cli_report_on_a_real_image(tmp_path, shared_data, capsys):
    image = shared_data / "ddti" / "images" / "100_1.png"
    pdf, folder = tmp_path / "real.pdf", tmp_path / "dicom"
    code = report_cli(image, "--accept-auto", "--pdf", pdf, "--dicom", folder)
    text = capsys.readouterr().out
    assert code == 0, text
    assert pdf.exists() and len(list(folder.glob("*.dcm"))) == 3
