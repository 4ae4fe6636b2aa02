"""``python -m training all`` (``make models``): rebuild every shipped model in order.

Runs the retraining steps of the developer guide one after the other, each as its own
``python -m ...`` process from the repository root, reading the images under ``--data``.

A step is skipped when its inputs did not change since it last succeeded: the hashes of the
data collections it reads (every file under ``<data>/<collection>/``), of its code (its
module, the ``training`` modules it imports, ``training/data.py`` and the app code that
reads and crops images: ``thyroid_desktop/core/{io,models,pipeline}``), its command line,
and the inputs of the model-writing step before it (a new segmenter re-runs everything
after it; a report step, such as an evaluation, re-runs alone). What each step saw is kept
in ``runs/rebuild/stamps.json``.

Each step's time is printed; at the end the card (``model_card.json``) gets a ``rebuild``
entry, and only that entry: the command, the data hashes, each step's command and recorded
seconds, and their sum (the time a full rebuild takes on the machine that ran it).

Usage: python -m training all [--data ../shared/data] [--dry-run] [--force] [--steps A B]
"""

from __future__ import annotations

import argparse
import ast
import datetime as dt
import hashlib
import json
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
STAMP_DIR = Path("runs/rebuild")
STAMP_FILE = "stamps.json"
HASH_CACHE = "file_hashes.json"
CARD_KEY = "rebuild"
#: App code every step depends on: how images are read, masked and cropped, and the models.
SHARED_CODE = (
    "training/data.py",
    "thyroid_desktop/core/io",
    "thyroid_desktop/core/models",
    "thyroid_desktop/core/pipeline",
)
THYROID = ("ddti", "chaouchi", "arcegor", "tg3k")
_TRAIN = ("-m", "training", "--data", "{data}", "--datasets", "ddti", "chaouchi")
_LITE2 = ("--backbone", "efficientnet_lite2", "--input-size", "260")
_LINEAR = ("--head", "linear", *_LITE2, "--c", "0.03")
#: The shipped classifier (issue 25): recipe R4 on crops with the marks step, pasted marks
#: and +-30 % resampling (``training.app_path``).
_V2 = "runs/app_path_v2"
#: The full app-path cache (every view) that the TI-RADS heads read.
_FULL = "runs/app_path"
_DESC = "runs/descriptors"


def _app_path(out: str) -> tuple[str, ...]:
    return ("-m", "training.app_path", "--data", "{data}", "--out", out)


_APP_PATH = _app_path(_V2)


@dataclass(frozen=True)
class Step:
    """One retraining command.

    Attributes:
        name: short name (``--steps``, the stamps, the card).
        argv: the arguments after ``python``; ``{data}`` is replaced by ``--data``.
        collections: the data collections it reads.
        module: the module it runs (its imports within ``training`` are its code).
        report: it only measures (nothing later reads what it writes), so a change of its
            inputs does not re-run the steps after it.
        minutes: its time in the timed rebuilds of 2026-12-06 (steps 1-14 by ``make models``,
            15-23 by ``--steps``; developer guide, "Retraining"; 2-core CPU shared with other
            jobs), for the plan (None: unknown).
        makes: files under ``runs/`` it writes that later steps read (not shipped, not in git).
        needs: such files it reads: when it runs and one is missing (a cache deleted, or
            never made), the step that makes it runs first, whatever its stamp says.
    """

    name: str
    argv: tuple[str, ...]
    collections: tuple[str, ...]
    module: str
    report: bool = False
    minutes: float | None = None
    extra_code: tuple[str, ...] = field(default=())
    makes: tuple[str, ...] = ()
    needs: tuple[str, ...] = ()

    def command(self, data: Path) -> list[str]:
        return [a.replace("{data}", str(data)) for a in self.argv]


#: The steps, in order (docs/developer-guide.md, "Retraining").
STEPS: tuple[Step, ...] = (
    Step(
        "baseline",
        (*_TRAIN, "--repeats", "3", "--out", "runs/baseline", "baseline", *_LITE2),
        ("ddti", "chaouchi"),
        "training.__main__",
        minutes=1.1,
        makes=("runs/baseline/baseline.json",),
    ),
    Step(
        "cv",
        (*_TRAIN, "--repeats", "3", "--out", "runs/cv", "cv", *_LINEAR),
        ("ddti", "chaouchi"),
        "training.__main__",
        minutes=10.4,
        makes=("runs/cv/cv.json",),
    ),
    Step(
        "cross-site",
        (*_TRAIN, "--out", "runs/cross", "cross-site", *_LINEAR),
        ("ddti", "chaouchi"),
        "training.__main__",
        minutes=1.9,
        makes=("runs/cross/cross_site.json",),
    ),
    Step(
        "fit",
        (
            *_TRAIN,
            "--out",
            "runs/final",
            "fit",
            *_LINEAR,
            "--cv",
            "runs/cv/cv.json",
            "--baseline",
            "runs/baseline/baseline.json",
            "--cross-site",
            "runs/cross/cross_site.json",
        ),
        ("ddti", "chaouchi"),
        "training.__main__",
        minutes=5.6,
        needs=("runs/cv/cv.json", "runs/baseline/baseline.json", "runs/cross/cross_site.json"),
    ),  # fmt: skip
    Step(
        "segmenter",
        ("-m", "training.segmenter", "--data", "{data}"),
        ("ddti", "arcegor"),
        "training.segmenter",
        minutes=47,
    ),
    Step(
        "gland",
        ("-m", "training.gland", "--data", "{data}", "--epochs", "10"),
        ("tg3k",),
        "training.gland",
        minutes=7.8,
    ),
    Step(
        "presence",
        ("-m", "training.presence", "--data", "{data}"),
        ("ddti", "arcegor"),
        "training.presence",
        minutes=0.75,
    ),
    Step(
        "detector-eval",
        ("-m", "training.detector_eval", "--data", "{data}"),
        ("ddti", "arcegor", "tg3k"),
        "training.detector_eval",
        minutes=4.8,
        report=True,
    ),
    Step(
        "app-path-cache",
        (*_APP_PATH, "cache", "--marks", "inpaint", "--augment", "--force"),
        ("ddti", "chaouchi"),
        "training.app_path.__main__",
        minutes=7.4,
        makes=(f"{_V2}/features_ddti.npz", f"{_V2}/features_chaouchi.npz"),
    ),
    Step(
        "app-path-cv",
        (*_APP_PATH, "cv"),
        ("ddti", "chaouchi"),
        "training.app_path.__main__",
        minutes=3.4,
        makes=(f"{_V2}/cv.json", f"{_V2}/oof.npz"),
        needs=(f"{_V2}/features_ddti.npz", f"{_V2}/features_chaouchi.npz"),
    ),
    Step(
        "app-path-fit",
        # the novelty reference, scope model and TI-RADS heads of the card before it (step
        # 4's, 260 px, or the last shipped one) may read other features: then they are left
        # out and the steps below refit them
        (*_APP_PATH, "fit", "--recipe", "R4", "--version", "1.3.0", "--without-feature-models"),
        ("ddti", "chaouchi"),
        "training.app_path.__main__",
        minutes=0.3,
        needs=(
            f"{_V2}/features_ddti.npz",
            f"{_V2}/features_chaouchi.npz",
            f"{_V2}/cv.json",
            f"{_V2}/oof.npz",
        ),
    ),
    Step(
        "auto-roi-eval",
        ("-m", "training.auto_roi_eval", "--data", "{data}"),
        ("ddti", "chaouchi"),
        "training.auto_roi_eval",
        minutes=1.4,
        report=True,
    ),
    Step(
        "reliability",
        ("-m", "training.reliability", "--data", "{data}"),
        THYROID,
        "training.reliability",
        minutes=5.5,
    ),
    Step(
        "review-gradcam",
        ("-m", "training.review_gradcam", "--data", "{data}"),
        ("ddti",),
        "training.review_gradcam",
        minutes=0.3,
        report=True,
    ),
    Step(
        "app-path-full-cache",
        (*_app_path(_FULL), "cache", "--marks", "inpaint", "--force"),
        ("ddti", "chaouchi"),
        "training.app_path.__main__",
        minutes=16.5,
        makes=(f"{_FULL}/features_ddti.npz",),
    ),
    Step(
        "descriptors-intensity",
        ("-m", "training.descriptors", "intensity", "--data", "{data}"),
        ("ddti",),
        "training.descriptors",
        minutes=0.9,
        makes=(f"{_DESC}/intensity.npz",),
        needs=(f"{_FULL}/features_ddti.npz",),
    ),
    Step(
        "descriptors-cv",
        ("-m", "training.descriptors", "cv", "--data", "{data}"),
        ("ddti",),
        "training.descriptors",
        minutes=12.5,
        makes=(f"{_DESC}/cv.json",),
        needs=(f"{_FULL}/features_ddti.npz", f"{_DESC}/intensity.npz"),
    ),
    Step(
        "descriptors-fit",
        ("-m", "training.descriptors", "fit", "--data", "{data}"),
        ("ddti",),
        "training.descriptors",
        minutes=0.2,
        needs=(
            f"{_FULL}/features_ddti.npz",
            f"{_DESC}/intensity.npz",
            f"{_DESC}/cv.json",
        ),
    ),
    Step(
        "descriptors-test",
        ("-m", "training.descriptors", "test", "--data", "{data}"),
        ("ddti",),
        "training.descriptors",
        minutes=0.7,
        report=True,
    ),
    Step(
        "scope",
        ("-m", "training.scope", "all", "--data", "{data}"),
        (*THYROID, "nonthyroid"),
        "training.scope",
        minutes=7.2,
    ),
    Step(
        "training-hashes",
        ("-m", "training.training_hashes", "--data", "{data}", "--collections", *THYROID),
        THYROID,
        "training.training_hashes",
        minutes=0.2,
    ),
    Step(
        "onnx-export",
        (
            "-m",
            "training.onnx_export",
        ),
        (),
        "training.onnx_export",
        minutes=0.25,
    ),  # fmt: skip
    Step(
        "quantize",
        ("-m", "training.quantize", "--data", "{data}"),
        ("ddti", "chaouchi"),
        "training.quantize",
        minutes=3.3,
    ),
)


def module_file(module: str, root: Path = ROOT) -> Path | None:
    """The source file of a module of this repository, or None."""
    base = root.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


@lru_cache(maxsize=64)
def training_imports(module: str, root: Path = ROOT) -> list[Path]:
    """The files of ``module`` and of every ``training`` module it imports, transitively
    (its package's ``__init__`` and sibling modules included); sorted, relative to root."""
    seen: set[Path] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        path = module_file(name, root)
        if path is None or path in seen:
            continue
        seen.add(path)
        if "." in name:  # the package a module lives in runs first
            todo.append(name.rsplit(".", 1)[0])
        tree = ast.parse(path.read_text(encoding="utf-8"))
        package = name if path.name == "__init__.py" else name.rsplit(".", 1)[0]
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                todo += [a.name for a in node.names if a.name.split(".")[0] == "training"]
            elif isinstance(node, ast.ImportFrom):
                base = node.module or ""
                if node.level:
                    parts = package.split(".")[: len(package.split(".")) - node.level + 1]
                    base = ".".join(parts + ([base] if base else []))
                if base.split(".")[0] == "training":
                    todo.append(base)
                    todo += [f"{base}.{a.name}" for a in node.names]
    return sorted(p.relative_to(root) for p in seen)


def code_files(step: Step, root: Path = ROOT) -> list[Path]:
    """Every source file a step's result depends on, relative to root."""
    files = set(training_imports(step.module, root))
    for entry in (*SHARED_CODE, *step.extra_code):
        path = root / entry
        if path.is_dir():
            files.update(p.relative_to(root) for p in path.rglob("*.py"))
        elif path.is_file():
            files.add(Path(entry))
    return sorted(files)


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


class FileHashes:
    """sha256 of files, remembered by (size, modification time) between runs."""

    def __init__(self, cache: Path | None = None):
        self.cache = cache
        self.known: dict[str, list] = {}
        if cache is not None and cache.is_file():
            self.known = json.loads(cache.read_text())

    def __call__(self, path: Path) -> str:
        st = path.stat()
        key = str(path.resolve())
        hit = self.known.get(key)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
        digest = _sha256(path)
        self.known[key] = [st.st_size, st.st_mtime_ns, digest]
        return digest

    def save(self) -> None:
        if self.cache is not None:
            self.cache.parent.mkdir(parents=True, exist_ok=True)
            self.cache.write_text(json.dumps(self.known))


def collection_hash(data: Path, name: str, hashes: FileHashes) -> dict:
    """Files and one sha256 over (relative path, file sha256) of everything under a
    collection's folder; ``missing`` when the folder is absent."""
    folder = data / name
    if not folder.is_dir():
        return {"files": 0, "sha256": "missing"}
    h = hashlib.sha256()
    n = 0
    for path in sorted(p for p in folder.rglob("*") if p.is_file()):
        h.update(f"{path.relative_to(folder).as_posix()}\0{hashes(path)}\n".encode())
        n += 1
    return {"files": n, "sha256": h.hexdigest()}


def _digest(obj) -> str:
    return hashlib.sha256(json.dumps(obj, sort_keys=True).encode()).hexdigest()


@dataclass
class Planned:
    """A step with what it would see now and why it runs (empty: skipped)."""

    step: Step
    command: list[str]
    inputs: dict
    key: str
    reasons: list[str]
    recorded_seconds: float | None

    missing: bool = False  # its module is not in this checkout

    @property
    def runs(self) -> bool:
        return bool(self.reasons) and not self.missing


def plan(
    data: Path,
    stamps: dict,
    steps: Sequence[Step] = STEPS,
    only: Iterable[str] | None = None,
    force: bool = False,
    root: Path = ROOT,
    hashes: FileHashes | None = None,
    outputs: Path | None = None,
) -> tuple[list[Planned], dict]:
    """What a rebuild would run and skip, and why; also the data collections' hashes.
    ``outputs``: where the steps' ``makes`` files are looked for (default ``root``)."""
    hashes = hashes or FileHashes()
    only = set(only) if only else None
    wanted = {c for s in steps for c in s.collections}
    data_hashes = {c: collection_hash(data, c, hashes) for c in sorted(wanted)}
    code_hash: dict[str, str] = {}
    out: list[Planned] = []
    upstream = ""
    for step in steps:
        files = code_files(step, root)
        for f in files:
            if str(f) not in code_hash:
                code_hash[str(f)] = _sha256(root / f)
        command = step.command(data)
        inputs = {
            "data": {c: data_hashes[c]["sha256"] for c in step.collections},
            "code": {str(f): code_hash[str(f)] for f in files},
            "command": command,
            "upstream": upstream,
        }
        key = _digest(inputs)
        before = stamps.get(step.name)
        reasons = _why(step, inputs, before, force, only)
        recorded = before.get("seconds") if before else None
        missing = module_file(step.module, root) is None
        out.append(Planned(step, command, inputs, key, reasons, recorded, missing))
        if not step.report:
            upstream = key
    _make_what_is_needed(out, outputs or root)
    return out, data_hashes


def _make_what_is_needed(planned: list[Planned], outputs: Path) -> None:
    """A running step whose ``needs`` are missing under ``outputs`` gets their maker run
    (latest first, so a maker's own needs are looked at too)."""
    makers = {f: i for i, p in enumerate(planned) for f in p.step.makes}
    for i in range(len(planned) - 1, -1, -1):
        if not planned[i].runs:
            continue
        for need in planned[i].step.needs:
            j = makers.get(need)
            if j is None or j >= i or (outputs / need).exists():
                continue
            why = f"{need} is missing and {planned[i].step.name} reads it"
            if why not in planned[j].reasons:
                planned[j].reasons.append(why)


def _why(step: Step, inputs: dict, before: dict | None, force: bool, only) -> list[str]:
    if only is not None and step.name not in only:
        return []
    if force:
        return ["--force"]
    if before is None:
        return ["never ran"]
    old = before.get("inputs", {})
    reasons = [
        f"data {c} changed" for c, h in inputs["data"].items() if old.get("data", {}).get(c) != h
    ]
    old_code = old.get("code", {})
    changed = [f for f, h in inputs["code"].items() if old_code.get(f) != h]
    changed += [f for f in old_code if f not in inputs["code"]]
    if changed:
        shown = ", ".join(changed[:3]) + (
            f" (+{len(changed) - 3} more)" if len(changed) > 3 else ""
        )
        reasons.append(f"code changed: {shown}")
    if old.get("command") != inputs["command"]:
        reasons.append("command/flags changed")
    if old.get("upstream") != inputs["upstream"]:
        reasons.append("an earlier model-writing step's inputs changed")
    return reasons


def _fmt_seconds(s: float | None) -> str:
    if s is None:
        return "time unknown"
    return f"{s:.0f} s" if s < 120 else f"{s / 60:.1f} min"


def _took(p: Planned) -> str:
    if p.recorded_seconds is not None:
        return f"took {_fmt_seconds(p.recorded_seconds)} last time"
    if p.step.minutes:
        return f"about {_fmt_seconds(60.0 * p.step.minutes)} in the timed rebuild (developer guide)"
    return "never timed"


def print_plan(planned: list[Planned], out=print) -> None:
    todo = [p for p in planned if p.runs]
    for i, p in enumerate(planned, 1):
        head = f"[{i:2d}/{len(planned)}] {p.step.name:22s}"
        if p.missing:
            out(f"{head} skip  (module {p.step.module} is not in this checkout)")
        elif p.runs:
            out(f"{head} run   ({'; '.join(p.reasons)}; {_took(p)})")
        else:
            out(f"{head} skip  (inputs unchanged; {_took(p)})")
        out(f"          python {' '.join(p.command)}")
    known = [p.recorded_seconds for p in todo if p.recorded_seconds is not None]
    # Where this machine never ran a step, the timed rebuild's minutes stand in for it.
    expected = [
        p.recorded_seconds if p.recorded_seconds is not None else 60.0 * p.step.minutes
        for p in todo
        if p.recorded_seconds is not None or p.step.minutes
    ]
    out(
        f"{len(todo)} to run, {len(planned) - len(todo)} skipped; recorded time of those to run: "
        f"{_fmt_seconds(sum(known)) if known else 'none recorded'}"
        + (f" ({len(todo) - len(known)} never timed here)" if len(known) < len(todo) else "")
        + (f"; expected about {_fmt_seconds(sum(expected))}" if expected else "")
        + (f" ({len(todo) - len(expected)} without a time)" if len(expected) < len(todo) else "")
    )


def run_subprocess(command: list[str], cwd: Path) -> int:
    return subprocess.run([sys.executable, *command], cwd=cwd).returncode


def execute(
    planned: list[Planned],
    stamps: dict,
    stamp_file: Path,
    root: Path = ROOT,
    runner: Callable[[list[str], Path], int] = run_subprocess,
    out=print,
) -> int:
    """Runs the planned steps that need it, in order, printing each one's time; a step's
    stamp is written as soon as it succeeds. Stops at the first failure (its exit code)."""
    for i, p in enumerate(planned, 1):
        head = f"[{i:2d}/{len(planned)}] {p.step.name}"
        if p.missing:
            out(f"{head}: skipped, module {p.step.module} is not in this checkout")
            continue
        if not p.runs:
            out(f"{head}: skipped, inputs unchanged ({_took(p)})")
            continue
        out(f"{head}: {'; '.join(p.reasons)}\n    python {' '.join(p.command)}")
        t0 = time.monotonic()
        code = runner(p.command, root)
        seconds = time.monotonic() - t0
        if code != 0:
            out(f"{head}: FAILED (exit {code}) after {_fmt_seconds(seconds)}")
            return code
        out(f"{head}: done in {_fmt_seconds(seconds)}")
        p.recorded_seconds = seconds
        stamps[p.step.name] = {
            "inputs": p.inputs,
            "key": p.key,
            "seconds": round(seconds, 1),
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        }
        _write_json(stamp_file, stamps)
    return 0


def card_entry(planned: list[Planned], stamps: dict, data_hashes: dict, command: str) -> dict:
    """The card's ``rebuild`` entry."""
    steps = {}
    for p in planned:
        st = stamps.get(p.step.name, {})
        steps[p.step.name] = {
            "command": "python " + " ".join(p.command),
            "seconds": st.get("seconds"),
            "finished": st.get("finished"),
        }
    recorded = [s["seconds"] for s in steps.values() if s["seconds"] is not None]
    return {
        "command": command,
        "data": data_hashes,
        "steps": steps,
        "total_seconds": round(sum(recorded), 1),
        "steps_timed": len(recorded),
        "written": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }


def write_card_entry(card_path: Path, entry: dict) -> None:
    """Sets the card's ``rebuild`` entry, leaving every other entry as it is."""
    from thyroid_desktop.core.io.files import write_atomically

    card = json.loads(card_path.read_text(encoding="utf-8"))
    card[CARD_KEY] = entry
    text = json.dumps(card, indent=2) + "\n"
    write_atomically(card_path, lambda tmp: tmp.write_text(text, encoding="utf-8"))


def _write_json(path: Path, obj) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(obj, indent=1))
    tmp.replace(path)


def main(argv: list[str] | None = None, runner=run_subprocess) -> int:
    from training.data import DEFAULT_DATA

    parser = argparse.ArgumentParser(prog="python -m training all", description=__doc__)
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA)
    parser.add_argument("--models", type=Path, default=None, help="default: resources/models")
    parser.add_argument("--stamps", type=Path, default=STAMP_DIR, help="stamp folder")
    parser.add_argument("--dry-run", action="store_true", help="print the plan, run nothing")
    parser.add_argument("--force", action="store_true", help="run every step")
    parser.add_argument("--steps", nargs="+", choices=[s.name for s in STEPS], help="only these")
    ns = parser.parse_args(argv)
    stamp_file = ns.stamps / STAMP_FILE
    stamps = json.loads(stamp_file.read_text()) if stamp_file.is_file() else {}
    hashes = FileHashes(ns.stamps / HASH_CACHE)
    planned, data_hashes = plan(ns.data, stamps, only=ns.steps, force=ns.force, hashes=hashes)
    missing = [c for c, h in data_hashes.items() if h["sha256"] == "missing"]
    if missing:
        print(f"warning: no {', '.join(missing)} under {ns.data}", file=sys.stderr)
    hashes.save()  # a cache of file hashes, so that the next plan is quick
    if ns.dry_run:
        print_plan(planned)
        return 0
    code = execute(planned, stamps, stamp_file, runner=runner)
    from thyroid_desktop.core.models.shipped import CARD_FILE, models_dir

    card_path = (ns.models or models_dir()) / CARD_FILE
    command = "python -m training all " + " ".join(argv if argv is not None else sys.argv[1:])
    entry = card_entry(planned, stamps, data_hashes, command.strip())
    if card_path.is_file():
        write_card_entry(card_path, entry)
    print(
        f"recorded time of all {entry['steps_timed']} timed steps: "
        f"{_fmt_seconds(entry['total_seconds'])} (card: {CARD_KEY}.total_seconds)"
    )
    return code


if __name__ == "__main__":
    sys.exit(main())
