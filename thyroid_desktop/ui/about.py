"""Help > About: the app's version, the models in use and the licences it ships under."""

from __future__ import annotations

from importlib import metadata

#: Third-party parts of the installed app and their licences.
LICENCES = (
    ("Qt 6 / PySide6", "LGPL-3.0"),
    ("ONNX Runtime", "MIT"),
    ("TensorFlow, Keras (source install only: training, Keras fallback)", "Apache-2.0"),
    ("OpenCV", "Apache-2.0"),
    ("NumPy", "BSD-3-Clause"),
    ("Matplotlib", "PSF-based (Matplotlib licence)"),
    ("pydicom", "MIT"),
    ("pylibjpeg, -libjpeg, -openjpeg, -rle", "MIT (libjpeg: GPL-3.0; OpenJPEG: BSD-2-Clause)"),
    ("Pillow", "MIT-CMU"),
    ("platformdirs", "MIT"),
    ("EfficientNet-Lite ImageNet weights", "Apache-2.0"),
)


def app_version() -> str:
    try:
        return metadata.version("thyroid-review")
    except metadata.PackageNotFoundError:  # a source tree that was never installed
        return "0.1.0 (source)"


def about_text(classifier=None, segmenter=None) -> str:
    lines = [f"Thyroid Review {app_version()}", "Research use only; not a medical device.", ""]
    if classifier is not None:
        card = classifier.card
        lines.append(f"Classifier: {card.id} v{card.version} ({card.input_size} px crops)")
        lines.append(card.output_name)
        lines.append(f"Runs on: {classifier.device} ({classifier.runtime})")
    else:
        lines.append("Classifier: not loaded yet")
    if segmenter is not None:
        info = segmenter.info
        lines.append(f"Nodule segmenter: {info.get('name', '?')}, {info.get('created', '?')[:10]}")
    lines += ["", "Third-party software:"]
    lines += [f"  {name}: {licence}" for name, licence in LICENCES]
    return "\n".join(lines)
