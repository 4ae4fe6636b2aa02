"""Launch figures of the real app: process start -> window shown -> first result on screen
(demo phantom, auto-detect, classifier, Grad-CAM), and peak memory.

Usage: QT_QPA_PLATFORM=offscreen python benchmarks/bench_launch.py [--runs 3]
Targets: window shown <= 1.5 s after launch; first result <= 3 s after the window appears
(issue 11). Also says whether TensorFlow was imported (the app runs ONNX Runtime; set
THYROID_BACKEND=keras to time the Keras path).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]

CHILD = r"""
import os, resource, sys, time
t0 = float(os.environ["BENCH_T0"])
from PySide6.QtWidgets import QApplication
from thyroid_desktop.core.io.images import from_array
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.ui.main_window import MainWindow
app = QApplication([])
w = MainWindow(); w.show(); app.processEvents()
print("shown", time.time() - t0, flush=True)
p = make_phantom(); w.show_image(from_array(p.pixels)); w.start_model_loading()
def done(_f):
    print("result", time.time() - t0, flush=True)
    print("rss_mb", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, flush=True)
    print("tensorflow", int("tensorflow" in sys.modules), flush=True)
    app.quit()
w.findingShown.connect(done)
app.exec()
"""


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    env = {
        **os.environ,
        "QT_QPA_PLATFORM": os.environ.get("QT_QPA_PLATFORM", "offscreen"),
        "TF_CPP_MIN_LOG_LEVEL": "3",
        "PYTHONPATH": str(ROOT),
    }
    shown, result, rss = [], [], []
    for _ in range(args.runs):
        env["BENCH_T0"] = repr(time.time())
        out = subprocess.run(
            [sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=300
        ).stdout
        values = dict(
            line.split()
            for line in out.splitlines()
            if line.split()[0] in {"shown", "result", "rss_mb", "tensorflow"}
        )
        shown.append(float(values["shown"]))
        result.append(float(values["result"]))
        rss.append(float(values["rss_mb"]))
        tf_imported = values["tensorflow"] == "1"
    print(
        f"launch -> window shown: median {statistics.median(shown):.2f} s (target <= 1.5 s), runs {[round(v, 2) for v in shown]}"
    )
    print(
        f"launch -> first result on screen (auto-detect + predict + Grad-CAM): median {statistics.median(result):.2f} s"
    )
    after = [r - s for r, s in zip(result, shown, strict=True)]
    print(
        f"window shown -> first result: median {statistics.median(after):.2f} s (target <= 3 s), runs {[round(v, 2) for v in after]}"
    )
    print(f"peak RSS: median {statistics.median(rss):.0f} MB")
    print(f"TensorFlow imported: {'yes' if tf_imported else 'no'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
