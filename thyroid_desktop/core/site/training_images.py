"""Which images the shipped models were trained on: a validation at a site must not measure
the model on them.

The training collections (model card ``training_hashes``: ddti, chaouchi, arcegor, tg3k) are
shipped as a list of image hashes, two per image:

- ``file``: SHA-256 of the file's bytes (``UltrasoundImage.sha256``): an exact copy of the
  file, under any name;
- ``pixels``: SHA-256 of the decoded frame's 8-bit luminance with its size: the same image
  re-saved losslessly (PNG of a JPEG, BMP/TIFF, a DICOM wrapping the same pixels), grey or
  RGB.

Both are exact: a lossy re-encode, a crop or a resize does not match (a near-duplicate search
would also match a site's own look-alike frames). Each hash is cut to its first
:data:`HEX_DIGITS` hex digits (64 bits: a chance match among a site's images is about
1e-12). The list is a gzip'd text file, one ``collection kind hash`` per line, written by
``python -m training.training_hashes``.
"""

from __future__ import annotations

import gzip
import hashlib
import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from thyroid_desktop.core.io.files import write_atomically
from thyroid_desktop.core.io.images import UltrasoundImage

#: The model card's key for the list (file, sha256, collections, command).
CARD_KEY = "training_hashes"
#: Hex digits kept of each SHA-256 (64 bits).
HEX_DIGITS = 16
FORMAT_LINE = "# thyroid-review training image hashes, format 1"
KINDS = ("file", "pixels")


class TrainingHashesError(ValueError):
    """The list cannot be read or does not match the model card; the message says why."""


def file_hash(image: UltrasoundImage) -> str:
    """The file's bytes (``UltrasoundImage.sha256``), cut to :data:`HEX_DIGITS`."""
    return image.sha256[:HEX_DIGITS]


def pixel_hash(image: UltrasoundImage) -> str:
    """The decoded frame's luminance and size, cut to :data:`HEX_DIGITS`: the same for a
    lossless re-save, grey or RGB, and for a DICOM holding the same pixels."""
    grey = np.ascontiguousarray(image.gray)
    digest = hashlib.sha256(f"{grey.shape[0]}x{grey.shape[1]}:".encode())
    digest.update(grey.tobytes())
    return digest.hexdigest()[:HEX_DIGITS]


@dataclass(frozen=True)
class TrainingHashes:
    """The hashes of the training collections' images.

    Attributes:
        hashes: ``(kind, hash) -> collection``.
        images: images hashed per collection.
    """

    hashes: Mapping[tuple[str, str], str] = field(repr=False)
    images: Mapping[str, int]

    @property
    def collections(self) -> tuple[str, ...]:
        return tuple(self.images)

    def describe(self) -> str:
        """E.g. "ddti 609, chaouchi 278 images (file and pixel hashes)"."""
        counts = ", ".join(f"{name} {n}" for name, n in self.images.items())
        return f"{counts} images (file and pixel hashes)"

    def match(self, image: UltrasoundImage) -> str:
        """The training collection ``image`` is from ("" when none): by its file's bytes,
        else by its pixels."""
        return self.hashes.get(("file", file_hash(image))) or self.hashes.get(
            ("pixels", pixel_hash(image)), ""
        )

    @classmethod
    def of_images(cls, images: Iterable[tuple[str, UltrasoundImage]]) -> TrainingHashes:
        """The list for ``(collection, image)`` pairs (the training command's input)."""
        hashes: dict[tuple[str, str], str] = {}
        counts: dict[str, int] = {}
        for collection, image in images:
            if not collection or any(c.isspace() for c in collection):
                raise TrainingHashesError(f"{collection!r} cannot name a collection")
            counts[collection] = counts.get(collection, 0) + 1
            hashes.setdefault(("file", file_hash(image)), collection)
            hashes.setdefault(("pixels", pixel_hash(image)), collection)
        return cls(hashes, counts)

    def to_text(self) -> str:
        lines = [
            FORMAT_LINE,
            "# made by: python -m training.training_hashes",
            f"# hash: first {HEX_DIGITS} hex digits of SHA-256; file = the file's bytes, "
            "pixels = the decoded frame's 8-bit luminance ('HxW:' + bytes)",
            "# images: " + " ".join(f"{name}={n}" for name, n in self.images.items()),
        ]
        order = {name: i for i, name in enumerate(self.images)}
        rows = sorted(self.hashes.items(), key=lambda kv: (order[kv[1]], kv[0]))
        lines += [f"{collection} {kind} {digest}" for (kind, digest), collection in rows]
        return "\n".join(lines) + "\n"

    @classmethod
    def from_text(cls, text: str) -> TrainingHashes:
        lines = text.splitlines()
        if not lines or lines[0].strip() != FORMAT_LINE:
            raise TrainingHashesError("it is not a training-hash list of a known format")
        images: dict[str, int] = {}
        hashes: dict[tuple[str, str], str] = {}
        for line in lines[1:]:
            if line.startswith("# images:"):
                for item in line.removeprefix("# images:").split():
                    name, _, n = item.partition("=")
                    images[name] = int(n)
                continue
            if not line.strip() or line.startswith("#"):
                continue
            parts = line.split()
            if len(parts) != 3 or parts[1] not in KINDS or len(parts[2]) != HEX_DIGITS:
                raise TrainingHashesError(f"a line is mangled: {line[:60]!r}")
            hashes.setdefault((parts[1], parts[2]), parts[0])
        if not hashes or not images:
            raise TrainingHashesError("the list is empty")
        return cls(hashes, images)

    def save(self, path: str | os.PathLike[str]) -> Path:
        """Writes the gzip'd list (byte-for-byte the same for the same images)."""
        data = gzip.compress(self.to_text().encode("ascii"), compresslevel=9, mtime=0)
        return write_atomically(path, lambda tmp: tmp.write_bytes(data))

    @classmethod
    def from_bytes(cls, data: bytes) -> TrainingHashes:
        """Reads :meth:`save`'s gzip'd bytes."""
        try:
            text = gzip.decompress(data).decode("ascii")
        except (OSError, EOFError, UnicodeDecodeError) as err:
            raise TrainingHashesError(f"it cannot be read ({err})") from err
        return cls.from_text(text)

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> TrainingHashes:
        try:
            data = Path(path).read_bytes()
        except OSError as err:
            raise TrainingHashesError(f"{path} cannot be read ({err})") from err
        return cls.from_bytes(data)


def load_training_hashes(card) -> TrainingHashes:
    """The list a model card names (``card.raw[CARD_KEY]``, next to the card), checked
    against the card's sha256.

    Raises:
        TrainingHashesError: the card names none, or the file is missing, altered or mangled.
    """
    entry = card.raw.get(CARD_KEY)
    if not isinstance(entry, dict) or not entry.get("file"):
        raise TrainingHashesError("the model card lists no training-image hashes")
    path = Path(card.directory) / str(entry["file"])
    try:
        data = path.read_bytes()
    except OSError as err:
        raise TrainingHashesError(f"the training-image hashes cannot be read ({err})") from err
    if entry.get("sha256") and hashlib.sha256(data).hexdigest() != entry["sha256"]:
        raise TrainingHashesError(
            f"{path.name} is not the file the model card lists (sha256 differs); reinstall"
        )
    try:
        return TrainingHashes.from_bytes(data)
    except TrainingHashesError as err:
        raise TrainingHashesError(f"{path.name}: {err}") from err
