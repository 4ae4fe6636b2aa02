"""``python -m training all``: the plan, what it skips, the stamps and the card's entry.

Nothing is trained: steps run through a fake runner that only records the command.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from training import rebuild
from training.__main__ import main as training_main

COLLECTIONS = ("ddti", "chaouchi", "arcegor", "tg3k", "nonthyroid")


@pytest.fixture
def data(tmp_path) -> Path:
    root = tmp_path / "data"
    for name in COLLECTIONS:
        (root / name / "images").mkdir(parents=True)
        (root / name / "images" / "1.png").write_bytes(name.encode())
        (root / name / "labels.csv").write_text("file,label\nimages/1.png,benign\n")
    return root


@pytest.fixture
def models(tmp_path) -> Path:
    folder = tmp_path / "models"
    folder.mkdir()
    (folder / "model_card.json").write_text(json.dumps({"id": "x", "metrics": {"a": 1}}))
    return folder


@pytest.fixture(autouse=True)
def _card_in_tmp(models, monkeypatch):
    """Without --models the rebuild writes the bundled card: point it at a copy."""
    monkeypatch.setenv("THYROID_MODELS_DIR", str(models))


class FakeRunner:
    def __init__(self, fail: str | None = None):
        self.commands: list[list[str]] = []
        self.fail = fail

    def __call__(self, command: list[str], cwd: Path) -> int:
        self.commands.append(command)
        return 3 if self.fail and self.fail in " ".join(command) else 0


def run(args: list[str], runner=None) -> int:
    return rebuild.main(args, runner=runner or FakeRunner())


def plan_lines(capsys, data, stamps) -> dict[str, str]:
    """Step name -> "run" / "skip" from a --dry-run."""
    assert training_main(["all", "--dry-run", "--data", str(data), "--stamps", str(stamps)]) == 0
    out = capsys.readouterr().out
    rows = {}
    for line in out.splitlines():
        if line.startswith("[") and "]" in line:
            name, status = line.split("]", 1)[1].split()[:2]
            rows[name] = status
    return rows


def available() -> set[str]:
    return {s.name for s in rebuild.STEPS if rebuild.module_file(s.module) is not None}


def test_steps_are_the_guides_commands_in_order():
    names = [s.name for s in rebuild.STEPS]
    assert names.index("fit") < names.index("segmenter") < names.index("gland")
    assert names.index("gland") < names.index("presence") < names.index("app-path-fit")
    assert names.index("app-path-fit") < names.index("reliability") < names.index("scope")
    assert names[-3:] == ["training-hashes", "onnx-export", "quantize"]
    assert len(set(names)) == len(names)
    guide = (rebuild.ROOT / "docs" / "developer-guide.md").read_text(encoding="utf-8")
    for step in rebuild.STEPS:  # the guide lists every step's module
        assert step.module.removesuffix(".__main__") in guide, step.module


def test_code_of_a_step_follows_its_training_imports():
    files = {str(f) for f in rebuild.code_files(rebuild.STEPS[0])}
    assert "training/__main__.py" in files and "training/experiment.py" in files
    assert "thyroid_desktop/core/pipeline/fov.py" in files  # crops depend on it
    app = {
        str(f)
        for f in rebuild.code_files(next(s for s in rebuild.STEPS if s.name == "app-path-fit"))
    }
    assert "training/app_path/fit.py" in app and "training/segmenter.py" not in app


def test_dry_run_plans_everything_first_then_nothing_and_runs_nothing(
    data, models, tmp_path, capsys
):
    stamps = tmp_path / "stamps"
    rows = plan_lines(capsys, data, stamps)
    assert [rows[s.name] for s in rebuild.STEPS if s.name in available()] == ["run"] * len(
        available()
    )
    assert not (stamps / rebuild.STAMP_FILE).exists(), "a dry run records no step"

    runner = FakeRunner()
    args = ["--data", str(data), "--stamps", str(stamps), "--models", str(models)]
    assert run(args, runner) == 0
    assert len(runner.commands) == len(available())
    assert runner.commands[0][:2] == ["-m", "training"]
    assert all("{data}" not in " ".join(c) for c in runner.commands)
    capsys.readouterr()
    rows = plan_lines(capsys, data, stamps)
    assert set(rows.values()) == {"skip"}

    runner = FakeRunner()
    assert run(args, runner) == 0
    assert runner.commands == [], "unchanged inputs: nothing runs again"


def test_a_changed_collection_reruns_its_steps_and_those_after_them(data, tmp_path, capsys):
    stamps = tmp_path / "stamps"
    assert run(["--data", str(data), "--stamps", str(stamps)]) == 0
    capsys.readouterr()
    (data / "tg3k" / "images" / "1.png").write_bytes(b"another frame")
    rows = plan_lines(capsys, data, stamps)
    names = [s.name for s in rebuild.STEPS]
    assert rows["gland"] == "run"
    for before in names[: names.index("gland")]:
        assert rows[before] == "skip", before
    assert rows["presence"] == "run" and rows["app-path-fit"] == "run"  # after the new gland


def test_report_steps_rerun_alone(data, tmp_path, capsys, monkeypatch):
    stamps = tmp_path / "stamps"
    assert run(["--data", str(data), "--stamps", str(stamps)]) == 0
    stamp = json.loads((stamps / rebuild.STAMP_FILE).read_text())
    stamp["detector-eval"]["inputs"]["command"] = ["-m", "training.detector_eval", "--old-flag"]
    (stamps / rebuild.STAMP_FILE).write_text(json.dumps(stamp))
    capsys.readouterr()
    rows = plan_lines(capsys, data, stamps)
    assert {n for n, s in rows.items() if s == "run"} == {"detector-eval"}


def test_card_gets_only_the_rebuild_entry_and_a_failure_stops(data, models, tmp_path, capsys):
    stamps = tmp_path / "stamps"
    args = ["--data", str(data), "--stamps", str(stamps), "--models", str(models)]
    runner = FakeRunner(fail="training.gland")
    assert run(args, runner) == 3
    assert runner.commands[-1][:2] == ["-m", "training.gland"], "stops at the failing step"
    card = json.loads((models / "model_card.json").read_text())
    assert card["id"] == "x" and card["metrics"] == {"a": 1}
    entry = card[rebuild.CARD_KEY]
    assert entry["command"].startswith("python -m training all")
    assert set(entry["data"]) == set(COLLECTIONS)
    assert all(len(h["sha256"]) == 64 for h in entry["data"].values())
    assert entry["steps"]["segmenter"]["seconds"] is not None
    assert entry["steps"]["gland"]["seconds"] is None  # failed: not recorded
    assert entry["total_seconds"] == pytest.approx(
        sum(s["seconds"] for s in entry["steps"].values() if s["seconds"] is not None), abs=0.5
    )
    out = capsys.readouterr().out
    assert "segmenter: done in" in out and "gland: FAILED (exit 3)" in out

    runner = FakeRunner()
    assert run(args, runner) == 0
    assert runner.commands[0][:2] == ["-m", "training.gland"], "resumes at the failed step"


def test_force_and_steps_options(data, tmp_path, capsys):
    stamps = tmp_path / "stamps"
    assert run(["--data", str(data), "--stamps", str(stamps)]) == 0
    runner = FakeRunner()
    assert (
        run(["--data", str(data), "--stamps", str(stamps), "--force", "--steps", "gland"], runner)
        == 0
    )
    assert runner.commands == [["-m", "training.gland", "--data", str(data), "--epochs", "10"]]


def test_every_file_a_step_reads_from_runs_is_made_by_an_earlier_step():
    made: set[str] = set()
    for step in rebuild.STEPS:
        assert set(step.needs) <= made, (step.name, set(step.needs) - made)
        made |= set(step.makes)
    assert "runs/app_path/features_ddti.npz" in made  # the TI-RADS heads' cache


def test_a_step_whose_output_a_later_step_reads_is_not_a_report_step():
    """A report step's change re-runs it alone: one that makes a file later steps read
    (descriptors-intensity's grey levels, read by the TI-RADS heads' CV and fit) must re-run
    them too."""
    needed = {f for step in rebuild.STEPS for f in step.needs}
    for step in rebuild.STEPS:
        assert not (step.report and set(step.makes) & needed), step.name


def test_a_step_that_runs_gets_its_missing_inputs_made_first(data, tmp_path):
    """The stamps say a cache was made, but it is gone (deleted, or runs/ copied without
    it): a step that runs and reads a missing intermediate file has that file's maker run
    first (and the maker's own maker), not skipped on its stamp."""
    stamps = tmp_path / "stamps"
    assert run(["--data", str(data), "--stamps", str(stamps)]) == 0
    recorded = json.loads((stamps / rebuild.STAMP_FILE).read_text())
    outputs = tmp_path / "checkout"  # nothing under its runs/
    only = {"only": ["descriptors-fit"], "force": True, "outputs": outputs}
    planned, _ = rebuild.plan(data, recorded, **only)
    why = {p.step.name: p.reasons for p in planned}
    assert why["descriptors-fit"] == ["--force"]
    for maker in ("app-path-full-cache", "descriptors-intensity", "descriptors-cv"):
        assert any("is missing" in r for r in why[maker]), (maker, why[maker])
    assert why["app-path-cache"] == [] and why["gland"] == []  # not read by it
    for path in ("runs/app_path/features_ddti.npz", "runs/descriptors/intensity.npz"):
        (outputs / path).parent.mkdir(parents=True, exist_ok=True)
        (outputs / path).write_bytes(b"x")
    planned, _ = rebuild.plan(data, recorded, **only)
    why = {p.step.name: p.reasons for p in planned}
    assert why["app-path-full-cache"] == [] and why["descriptors-intensity"] == []
    assert why["descriptors-cv"]  # runs/descriptors/cv.json is still missing


def test_every_step_has_a_time_and_the_plan_sums_them(data, tmp_path, capsys):
    """Each step carries the timed rebuild's minutes, so a dry run on a new machine says how
    long the whole rebuild takes; a step this machine has run counts with its own time."""
    assert all(s.minutes for s in rebuild.STEPS)
    first, second = rebuild.STEPS[:2]
    planned = [
        rebuild.Planned(first, ["python"], {}, "k", ["never ran"], None),
        rebuild.Planned(second, ["python"], {}, "k", ["never ran"], 30.0),
    ]
    lines: list[str] = []
    rebuild.print_plan(planned, lines.append)
    want = 60.0 * first.minutes + 30.0
    assert lines[-1].endswith(f"expected about {rebuild._fmt_seconds(want)}"), lines[-1]
