"""Time to write a 20-page study report (page 1 with the summary, impression and signature,
then one page per nodule for 19 nodules on phantom images, half of them with two views).

Usage: python benchmarks/bench_report.py [--runs 3] [--out report.pdf]
Target: under 2 s per report on a 2-core machine (issue 24; 7.6 s before the new layout).
Prints the first (cold: Matplotlib and the fonts loaded) and the best warm time, wall clock and
CPU (the CPU time is the steadier figure on a shared machine). No model needed.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--out", type=Path, default=None, help="keep the PDF here")
    args = parser.parse_args()

    from pypdf import PdfReader

    from tests.core.test_report_layout import CREATED, sample_study
    from thyroid_desktop.core.models.shipped import load_card
    from thyroid_desktop.core.report.pdf import write_study_report

    items, study = sample_study(19)
    card = load_card()
    out = args.out or Path(tempfile.mkdtemp()) / "study_report.pdf"
    times, cpu = [], []
    for _ in range(max(1, args.runs)):
        t0, c0 = time.perf_counter(), time.process_time()
        write_study_report(out, items, card, study, CREATED)
        times.append(time.perf_counter() - t0)
        cpu.append(time.process_time() - c0)
    pages = len(PdfReader(out).pages)
    best = min(range(1, len(times)), key=times.__getitem__) if len(times) > 1 else 0
    print(f"pages {pages}")
    print(f"cold {times[0]:.2f} s wall, {cpu[0]:.2f} s CPU (first report in this process)")
    print(f"warm {times[best]:.2f} s wall, {cpu[best]:.2f} s CPU (best of {len(times) - 1 or 1})")
    print(f"size {out.stat().st_size / 1e6:.1f} MB  {out}")


if __name__ == "__main__":
    main()
