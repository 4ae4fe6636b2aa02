"""The dependency directions of DESIGN.md: core never imports Qt (nor TensorFlow at import
time, so the window can appear before it), and the app never imports training."""

import subprocess
import sys
import textwrap

BLOCKER = textwrap.dedent(
    """
    import importlib.abc, pkgutil, sys
    class Block(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path=None, target=None):
            if name.split('.')[0] in {BLOCKED}:
                raise ImportError(f'{name} is blocked in this test')
    sys.meta_path.insert(0, Block())
    import thyroid_desktop.core as core
    for m in pkgutil.walk_packages(core.__path__, 'thyroid_desktop.core.'):
        __import__(m.name)
    {CHECK}
    """
)


def run(blocked: set[str], check: str = "") -> subprocess.CompletedProcess:
    code = BLOCKER.replace("{BLOCKED}", repr(blocked)).replace("{CHECK}", check)
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)


def test_core_imports_without_qt():
    result = run({"PySide6", "shiboken6", "PyQt5", "PyQt6"})
    assert result.returncode == 0, result.stderr


def test_core_import_does_not_load_tensorflow():
    check = "assert 'tensorflow' not in sys.modules and 'keras' not in sys.modules, 'TF loaded'"
    result = run(set(), check)
    assert result.returncode == 0, result.stderr


def test_app_never_imports_training():
    from pathlib import Path

    root = Path(__file__).resolve().parents[1] / "thyroid_desktop"
    offenders = [
        str(p)
        for p in root.rglob("*.py")
        if "from training" in p.read_text() or "import training" in p.read_text()
    ]
    assert not offenders
