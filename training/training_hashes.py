"""``python -m training.training_hashes``: the list of the training collections' image hashes
that ``validate`` checks a site's images against (``core.site.training_images``).

Every image under ``<data>/<collection>/images/`` of each collection is opened with the app's
own reader (``core.io.images.open_image``, so the pixel hash is the one ``validate`` computes)
and hashed twice (file bytes, decoded luminance). The list is written next to the model card
as ``training_hashes.txt.gz`` and the card's ``training_hashes`` entry names it with its
sha256, the collections and their image counts, and which models each trained.

Usage: python -m training.training_hashes [--data ../shared/data]
       [--collections ddti chaouchi arcegor tg3k] [--models resources/models]
"""

from __future__ import annotations

import argparse
import datetime as dt
import hashlib
import json
import sys
from collections.abc import Iterator
from pathlib import Path

from thyroid_desktop.core.io.files import write_atomically
from thyroid_desktop.core.io.images import ImageLoadError, open_image
from thyroid_desktop.core.models.shipped import CARD_FILE, models_dir
from thyroid_desktop.core.site.training_images import (
    CARD_KEY,
    HEX_DIGITS,
    TrainingHashes,
)
from training.data import DEFAULT_DATA

#: What each collection trained (model card: ``data``, ``segmenter``, ``gland_segmenter``,
#: ``tirads_heads``, ``novelty``); all four are thyroid ultrasound.
COLLECTIONS = {
    "ddti": "classifier, calibration, nodule segmenter, TI-RADS heads, novelty reference",
    "chaouchi": "classifier, calibration, novelty reference",
    "arcegor": "nodule segmenter/detector, novelty reference",
    "tg3k": "gland segmenter, novelty reference",
}
OUT_FILE = "training_hashes.txt.gz"
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".dcm"}


def collection_images(data: Path, collection: str) -> Iterator[Path]:
    folder = data / collection / "images"
    if not folder.is_dir():
        raise SystemExit(f"error: {folder} is not a folder (is --data right?)")
    for path in sorted(folder.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES:
            yield path


def build(data: Path, collections: list[str]) -> TrainingHashes:
    def images():
        for name in collections:
            n = 0
            for path in collection_images(data, name):
                try:
                    yield name, open_image(path)
                except ImageLoadError as err:  # listed, never silently dropped
                    print(f"warning: not hashed: {err}", file=sys.stderr)
                    continue
                n += 1
            print(f"{name}: {n} images hashed", file=sys.stderr, flush=True)

    return TrainingHashes.of_images(images())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--data", type=Path, default=DEFAULT_DATA)
    p.add_argument("--collections", nargs="+", default=list(COLLECTIONS))
    p.add_argument("--models", type=Path, default=None, help="default: the bundled models")
    args = p.parse_args(argv)
    models = Path(args.models or models_dir())
    hashes = build(args.data, args.collections)
    out = hashes.save(models / OUT_FILE)
    sha = hashlib.sha256(out.read_bytes()).hexdigest()
    card_path = models / CARD_FILE
    card = json.loads(card_path.read_text())
    card[CARD_KEY] = {
        "file": OUT_FILE,
        "sha256": sha,
        "what": "hashes of every image of the training collections: validate excludes a "
        "site's images that match (they cannot measure the model at a site)",
        "hash": f"first {HEX_DIGITS} hex digits of SHA-256 of the file's bytes, and of the "
        "decoded frame's 8-bit luminance (matches lossless re-saves and DICOM wrappings; not "
        "lossy re-encodes, crops or resizes)",
        "collections": {
            name: {"images": n, "trained": COLLECTIONS.get(name, "")}
            for name, n in hashes.images.items()
        },
        "n_hashes": len(hashes.hashes),
        "bytes": out.stat().st_size,
        "created": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "command": "python -m training.training_hashes --data ../shared/data --collections "
        + " ".join(hashes.collections),
    }
    write_atomically(card_path, lambda t: t.write_text(json.dumps(card, indent=2) + "\n"))
    print(
        f"{out}: {hashes.describe()}, {len(hashes.hashes)} distinct hashes, "
        f"{out.stat().st_size} bytes, sha256 {sha[:16]}; card entry {CARD_KEY!r} updated"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
