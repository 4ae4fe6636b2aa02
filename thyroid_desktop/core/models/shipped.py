"""Finding, verifying and loading the bundled models.

The model card (``model_card.json``) is the single source of truth for what the app says
about the model. TensorFlow is imported only when a model is loaded, never at import time,
so the window can appear before it.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import sys
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

from thyroid_desktop.core.site.calibration import SHIPPED, Calibration

log = logging.getLogger(__name__)

CLASSIFIER_FILE = "classifier.keras"
SEGMENTER_FILE = "segmenter.keras"
#: The thyroid-gland segmenter (same architecture and input as the nodule segmenter).
GLAND_CARD_KEY = "gland_segmenter"
GLAND_FILE = "gland.keras"
CARD_FILE = "model_card.json"
#: The segmenter's section in the model card.
SEGMENTER_CARD_KEY = "segmenter"
#: The entry inside the segmenter's section holding its "nodule present" model
#: (``core.pipeline.presence``, fitted by ``training.presence``).
PRESENCE_CARD_KEY = "presence"
#: The card sections of the novelty reference and of the stability (spread) limit.
NOVELTY_CARD_KEY = "novelty"
STABILITY_CARD_KEY = "stability"
#: The card entry (top level for the classifier, inside each segmenter's section) naming the
#: model's ONNX graph for the fast runtime (``core.runtime``).
ONNX_CARD_KEY = "onnx"
#: Key, inside the classifier's ``onnx`` entry, of its int8 graph (``training.quantize``).
INT8_CARD_KEY = "int8"
#: The sites whose figures the app and the report show.
SITES = ("ddti", "chaouchi")
#: What the output is (the labels are TI-RADS categories, not pathology).
DEFAULT_OUTPUT_NAME = "AI estimate: likelihood of TI-RADS 4-5 (suspicious)"


@dataclass(frozen=True)
class SiteFigure:
    """A held-out AUROC with its 95 % CI for one site."""

    site: str
    auroc: float
    low: float
    high: float
    n: int


class ModelError(Exception):
    """The bundled model is missing, damaged or unusable; the message says which and why."""


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def resources_dir() -> Path:
    """``resources/`` next to the package, or inside a PyInstaller bundle."""
    bundle = getattr(sys, "_MEIPASS", None)
    if bundle:
        return Path(bundle) / "resources"
    return Path(__file__).resolve().parents[3] / "resources"


def models_dir() -> Path:
    """Where the models are; ``THYROID_MODELS_DIR`` overrides it."""
    return Path(os.environ.get("THYROID_MODELS_DIR") or resources_dir() / "models")


@dataclass(frozen=True)
class ModelCard:
    """What the card states; ``raw`` keeps every field for the report."""

    raw: dict[str, Any]
    directory: Path

    @property
    def id(self) -> str:
        return str(self.raw["id"])

    @property
    def version(self) -> str:
        return str(self.raw.get("version", ""))

    @property
    def threshold(self) -> float:
        return float(self.raw["threshold"])

    @property
    def input_size(self) -> int:
        return int(self.raw["input_size"])

    @property
    def crop_margin(self) -> float:
        return float(self.raw["crop"]["margin"])

    @property
    def crop_resolution(self) -> int | None:
        """The crop's detail limit (``crop.resolution``, `roi.crop_square`); None: no limit
        (cards before it)."""
        value = (self.raw.get("crop") or {}).get("resolution")
        return int(value) if value else None

    @property
    def last_conv_layer(self) -> str:
        return str(self.raw["last_conv_layer"])

    @property
    def logit_layer(self) -> str:
        return str(self.raw["logit_layer"])

    @property
    def weights_path(self) -> Path:
        return self.directory / str(self.raw["file"])

    @property
    def tta(self) -> bool:
        return bool(self.raw.get("training", {}).get("tta", False))

    @property
    def spread_limit(self) -> float:
        """Estimates whose views (box jitters, mirror) disagree by more than this are marked
        unstable; infinite when the card sets no limit."""
        return float(self.raw.get(STABILITY_CARD_KEY, {}).get("spread_limit", float("inf")))

    @property
    def novelty(self) -> dict[str, Any] | None:
        """The novelty reference's card section (file, sha256, limit...), if any."""
        return self.raw.get(NOVELTY_CARD_KEY) or None

    @property
    def tirads_heads(self) -> dict[str, Any] | None:
        """The TI-RADS descriptor heads' card section (file, sha256, metrics...), if any."""
        info = self.raw.get("tirads_heads") or None
        return info if info and info.get("file") else None

    @property
    def onnx(self) -> dict[str, Any] | None:
        """The classifier's ONNX graph entry (file, sha256, source_sha256, platt), if any."""
        return onnx_entry(self.raw)

    @property
    def output_name(self) -> str:
        """What the estimate is, in the words the app, the report, the CSV and the CLI use."""
        return str(self.raw.get("output_name", DEFAULT_OUTPUT_NAME))

    def site_auroc(self, site: str) -> SiteFigure | None:
        """The default path's (auto-ROI) test-split AUROC with its 95 % CI for a site."""
        entry = self.raw.get("metrics", {}).get("auto_roi", {}).get(site, {}).get("auto_roi")
        if not entry:
            return None
        lo, hi = entry.get("auroc_ci95", (float("nan"), float("nan")))
        n = int(self.raw["metrics"]["auto_roi"][site].get("n", 0))
        return SiteFigure(site, float(entry["auroc"]), float(lo), float(hi), n)

    def site_cv(self, site: str) -> tuple[float, float] | None:
        """Grouped-CV AUROC (mean, SD) of the development split for a site."""
        entry = self.raw.get("metrics", {}).get("cv", {}).get(site)
        return (float(entry["mean"]), float(entry["sd"])) if entry else None

    def performance_text(self) -> str:
        """Per-site performance of the default path, with CIs, in one or two lines."""
        parts = []
        for site in SITES:
            fig, cv = self.site_auroc(site), self.site_cv(site)
            text = f"{site}: "
            if fig is not None:
                text += f"AUROC {fig.auroc:.2f} (95 % CI {fig.low:.2f}-{fig.high:.2f}, n={fig.n})"
            if cv is not None:
                text += ("; " if fig is not None else "") + f"CV {cv[0]:.2f} ± {cv[1]:.2f}"
            parts.append(text)
        return "Auto-detected box, held-out test split - " + " | ".join(parts)


def load_card(directory: Path | None = None) -> ModelCard:
    """Reads and checks the model card.

    Raises:
        ModelError: the card is missing, unreadable or lacks a required field.
    """
    directory = Path(directory or models_dir())
    path = directory / CARD_FILE
    try:
        raw = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError as err:
        raise ModelError(f"The model card {path} is missing; reinstall the application.") from err
    except (OSError, ValueError) as err:
        raise ModelError(f"The model card {path} cannot be read ({err}).") from err
    required = (
        "id",
        "file",
        "sha256",
        "input_size",
        "threshold",
        "last_conv_layer",
        "logit_layer",
        "crop",
    )
    missing = [k for k in required if k not in raw]
    if missing:
        raise ModelError(f"The model card {path} lacks {', '.join(missing)}.")
    return ModelCard(raw, directory)


def verify(card: ModelCard) -> None:
    """Checks the classifier's weight file exists and matches the card's sha256.

    Raises:
        ModelError: missing or corrupted (checksum mismatch) weight file.
    """
    _verify_file(card.weights_path, str(card.raw["sha256"]))


def _verify_file(path: Path, expected: str) -> None:
    if not path.is_file():
        raise ModelError(f"The model file {path} is missing; reinstall the application.")
    digest = sha256_file(path)
    if digest != expected:
        raise ModelError(
            f"The model file {path} is corrupted (sha256 {digest[:12]}... does not match the "
            f"card's {expected[:12]}...); reinstall the application."
        )


def onnx_entry(section: dict[str, Any]) -> dict[str, Any] | None:
    """A card section's ONNX entry, or None when it names none or when it was converted from
    other Keras weights than the section's (a model retrained without re-export)."""
    entry = section.get(ONNX_CARD_KEY) or None
    if not entry or not entry.get("file"):
        return None
    if entry.get("source_sha256") != section.get("sha256"):
        log.warning("%s was converted from other weights; using Keras", entry["file"])
        return None
    return entry


def _check_platt(card: ModelCard) -> None:
    """The graph entry's calibration must be the card's (the Keras file freezes it)."""
    platt = card.onnx.get("platt") if card.onnx else None
    calibration = card.raw.get("calibration") or {}
    if not platt or len(platt) != 2:
        raise ModelError("The model card's ONNX entry has no calibration; reinstall.")
    if "a" in calibration and "b" in calibration:
        want = (float(calibration["a"]), float(calibration["b"]))
        if max(abs(float(p) - w) for p, w in zip(platt, want, strict=True)) > 1e-5:
            raise ModelError("The ONNX graph's calibration is not the model card's; reinstall.")


def int8_entry(onnx: dict[str, Any] | None) -> dict[str, Any] | None:
    """The classifier's int8 graph entry, or None when there is none or when it was quantised
    from another float graph than the card's (re-exported without re-quantising)."""
    entry = (onnx or {}).get(INT8_CARD_KEY) or None
    if not entry or not entry.get("file"):
        return None
    if entry.get("source_sha256") != onnx.get("sha256"):
        log.warning("%s was quantised from another float graph; running float", entry["file"])
        return None
    return entry


def _classifier_graph(card: ModelCard, precision: str | None) -> tuple[dict[str, Any], str]:
    """The ONNX entry to run and its precision: the int8 graph where asked (``precision``, else
    ``THYROID_PRECISION``, else the card's ``onnx.int8.default``) and current, else float."""
    from thyroid_desktop.core.models.runtime import requested_precision

    int8 = int8_entry(card.onnx)
    default = "int8" if int8 is not None and int8.get("default") else "float"
    precision = precision or requested_precision(default)
    if precision == "int8" and int8 is not None:
        return int8, "int8"
    if precision == "int8":
        log.warning("int8 was asked for but the card names no current int8 graph; running float")
    return card.onnx, "float"


def _onnx_session(directory: Path, entry: dict[str, Any]):
    """The verified ONNX graph of a card entry, as an ONNX Runtime session."""
    from thyroid_desktop.core.models.runtime import onnx_session

    path = directory / str(entry["file"])
    _verify_file(path, str(entry["sha256"]))
    try:
        return onnx_session(path)
    except Exception as err:  # ONNX Runtime raises its own types for a bad graph
        raise ModelError(f"The model file {path} cannot be loaded: {err}") from err


def _keras_installed() -> bool:
    import importlib.util

    try:
        return sys.modules.get("keras", True) is not None and bool(
            importlib.util.find_spec("keras")
        )
    except (ImportError, ValueError):
        return False


def _use_onnx(entry: dict[str, Any] | None, backend: str | None) -> bool:
    from thyroid_desktop.core.models.runtime import available, requested_backend

    backend = backend or requested_backend()
    if entry is not None and backend == "keras" and not _keras_installed():
        log.warning("Keras was asked for but is not installed; running the ONNX graph")
        backend = "onnx"
    return entry is not None and backend == "onnx" and available()


def _verify_if_present(path: Path, expected: str) -> None:
    """A Keras file beside its ONNX graph must still be the one the card names (a replaced
    file is refused as before); the bundle ships none."""
    if path.is_file():
        _verify_file(path, expected)


def _require_keras(path: Path) -> None:
    """Raises the reason when a model must run on Keras and this installation has none."""
    if not _keras_installed():  # the bundle: ONNX graphs only
        raise ModelError(
            f"{path.name} has no current ONNX graph and this installation has no Keras to run "
            "it; reinstall the application."
        )


def _load_keras(path: Path):
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    _require_keras(path)
    import keras

    try:
        return keras.saving.load_model(path, compile=False)
    except Exception as err:  # Keras raises many types for a bad file
        raise ModelError(f"The model file {path} cannot be loaded: {err}") from err


def device_description() -> str:
    """``GPU: <name>`` when TensorFlow sees a GPU, else ``CPU``."""
    import tensorflow as tf

    gpus = tf.config.list_physical_devices("GPU")
    if not gpus:
        return "CPU"
    try:
        name = tf.config.experimental.get_device_details(gpus[0]).get("device_name", gpus[0].name)
    except (RuntimeError, ValueError):
        name = gpus[0].name
    return f"GPU: {name}"


@dataclass(eq=False)
class Classifier:
    """A loaded, verified classifier with a compiled function giving probability, logit and
    the Grad-CAM map in one pass: the ONNX graph (``session``) or the Keras model
    (``model``)."""

    card: ModelCard
    model: Any
    device: str
    load_seconds: float
    #: Mahalanobis reference of the training crops' features (None: no novelty check).
    novelty: Any = None
    #: TI-RADS descriptor heads (``core.pipeline.tirads_ai.DescriptorHeads``; None: no suggestions).
    tirads_heads: Any = None
    #: "Is this thyroid ultrasound?" (``core.pipeline.scope.ScopeModel``; None: not checked).
    scope: Any = None
    #: An active site calibration (``core.site.profile.SiteProfile``): its own probability
    #: mapping and threshold replace the card's. None: the shipped calibration.
    profile: Any = None
    #: The ONNX Runtime session of the classifier's graph (None: the Keras model runs).
    session: Any = None
    #: ``float`` or ``int8`` (the quantised ONNX graph, ``training.quantize``).
    precision: str = "float"

    @property
    def runtime(self) -> str:
        """``ONNX Runtime`` or ``Keras``: what runs the model."""
        return "ONNX Runtime" if self.session is not None else "Keras"

    @cached_property
    def shipped_calibration(self) -> Calibration:
        """The model card's calibration, as frozen in the graph the classifier runs."""
        a, b = self.gradcam.platt
        card = self.card
        return Calibration(
            SHIPPED, a, b, card.threshold, f"model card of {card.id} v{card.version}"
        )

    @property
    def calibration(self) -> Calibration:
        """The calibration estimates use: the active site profile's, else the shipped one."""
        if self.profile is not None:
            return self.profile.calibration
        return self.shipped_calibration

    @cached_property
    def gradcam(self):
        if self.session is not None:
            from thyroid_desktop.core.models.runtime import OnnxGradCAM

            return OnnxGradCAM(self.session, tuple(self.card.onnx["platt"]))
        from thyroid_desktop.core.models.gradcam import GradCAM

        return GradCAM(self.model, self.card.last_conv_layer, self.card.logit_layer)


def load_classifier(
    directory: Path | None = None, backend: str | None = None, precision: str | None = None
) -> Classifier:
    """Loads the verified classifier: its ONNX graph (ONNX Runtime, under a second) unless
    ``backend`` (default: ``THYROID_BACKEND``, else ``onnx``) is ``keras`` or the card names no
    current graph; the Keras model imports TensorFlow (seconds). Call it off the GUI thread.
    ``precision`` (default: ``THYROID_PRECISION``, else the card's ``onnx.int8.default``):
    ``float`` or ``int8``, which ONNX graph runs (int8: ``training.quantize``).

    Raises:
        ModelError: missing/corrupted files, or a file the runtime cannot load.
    """
    import time

    t0 = time.perf_counter()
    card = load_card(directory)
    if _use_onnx(card.onnx, backend):  # the graph's own sha256 is checked; the Keras file
        # may be absent (the bundle ships no TensorFlow)
        from thyroid_desktop.core.models.runtime import session_device

        _verify_if_present(card.weights_path, str(card.raw["sha256"]))
        _check_platt(card)
        entry, precision = _classifier_graph(card, precision)
        session = _onnx_session(card.directory, entry)
        model, device = None, session_device(session)
    else:
        _require_keras(card.weights_path)
        verify(card)
        session, precision = None, "float"
        model = _load_keras(card.weights_path)
        for name in (card.last_conv_layer, card.logit_layer):
            try:
                model.get_layer(name)
            except ValueError as err:
                raise ModelError(f"The model has no layer {name!r} named in its card.") from err
        device = device_description()
    clf = Classifier(
        card,
        model,
        device,
        0.0,
        _load_novelty(card),
        _load_tirads_heads(card),
        _load_scope(card),
        session=session,
        precision=precision,
    )
    from thyroid_desktop.core.pipeline.roi import JITTERS

    clf.gradcam.warm_up(card.input_size, len(JITTERS))
    clf.load_seconds = time.perf_counter() - t0
    log.info(
        "loaded %s (%s, %s) on %s in %.2f s",
        card.id,
        clf.runtime,
        clf.precision,
        clf.device,
        clf.load_seconds,
    )
    return clf


def _load_novelty(card: ModelCard):
    """The verified novelty reference named in the card, or None if it names none."""
    from thyroid_desktop.core.models.novelty import NoveltyModel

    return _load_side_file(card, card.novelty, NoveltyModel.load, "novelty reference")


def _load_tirads_heads(card: ModelCard):
    """The verified TI-RADS descriptor heads named in the card, or None if it names none."""
    from thyroid_desktop.core.pipeline.tirads_ai import DescriptorHeads

    return _load_side_file(card, card.tirads_heads, DescriptorHeads.load, "TI-RADS heads")


def _load_scope(card: ModelCard):
    """The verified scope model named in the card, or None if it names none."""
    from thyroid_desktop.core.pipeline.scope import ScopeModel

    info = card.raw.get("scope")
    threshold = float(info["threshold"]) if info else 0.0
    return _load_side_file(card, info, lambda p: ScopeModel.load(p, threshold), "scope model")


def _load_side_file(card: ModelCard, info: dict[str, Any] | None, load, what: str):
    """A small file beside the classifier (its card section ``info``: file, sha256),
    verified and read with ``load``; None when the card names none."""
    if not info:
        return None
    path = card.directory / str(info["file"])
    _verify_file(path, str(info["sha256"]))
    try:
        return load(path)
    except (OSError, ValueError, KeyError) as err:
        raise ModelError(f"The {what} {path} cannot be read ({err}).") from err


@dataclass(eq=False)
class Segmenter:
    """The loaded nodule segmenter: a uint8 batch of square inputs -> probability maps."""

    info: dict[str, Any]
    model: Any
    size: int
    #: The thyroid-gland segmenter run beside this one (None: none shipped).
    gland: Segmenter | None = None
    #: Whether candidates outside the gland are dropped (the card's ``filter_candidates``).
    filter_by_gland: bool = False
    #: The ONNX Runtime session of the graph (None: the Keras model runs).
    session: Any = None
    #: The "nodule present" model of the card (``core.pipeline.presence.PresenceModel``):
    #: candidates below its threshold are not proposed. None: every candidate is.
    presence: Any = None

    @cached_property
    def _fn(self):
        if self.session is not None:
            from thyroid_desktop.core.models.runtime import OnnxSegmenterFn

            return OnnxSegmenterFn(self.session)
        import tensorflow as tf

        fn = tf.function(
            lambda x: self.model(x, training=False), reduce_retracing=True, autograph=False
        )
        return lambda x: fn(x).numpy()

    @property
    def threshold(self) -> float | None:
        """The probability from which a pixel counts as nodule (or gland), as the card
        states it; None when it states none (``core.pipeline.detect`` then uses its own)."""
        value = self.info.get("threshold")
        return None if value is None else float(value)

    def __call__(self, batch) -> Any:
        import numpy as np

        return self._fn(np.asarray(batch, dtype=np.float32))[..., 0]


def load_segmenter(
    directory: Path | None = None, key: str = SEGMENTER_CARD_KEY, backend: str | None = None
) -> Segmenter | None:
    """Loads the verified segmenter named in the card under ``key`` (the nodule segmenter, or
    ``GLAND_CARD_KEY`` for the gland), or None if the card names none. Its ONNX graph runs
    unless ``backend`` is ``keras`` (as for ``load_classifier``).

    Raises:
        ModelError: the card names a segmenter whose file is missing, damaged or unloadable.
    """
    import numpy as np

    card = load_card(directory)
    info = card.raw.get(key)
    if not info:
        return None
    path = card.directory / str(info["file"])
    entry = onnx_entry(info)
    if _use_onnx(entry, backend):
        _verify_if_present(path, str(info["sha256"]))
        seg = Segmenter(info, None, int(info["input_size"]))
        seg.session = _onnx_session(card.directory, entry)
    else:
        _require_keras(path)
        _verify_file(path, str(info["sha256"]))
        seg = Segmenter(info, _load_keras(path), int(info["input_size"]))
    seg(np.zeros((1, seg.size, seg.size, 3), np.uint8))  # trace (Keras) or warm up once
    gland_info = card.raw.get(GLAND_CARD_KEY)
    if key == SEGMENTER_CARD_KEY and gland_info:
        seg.gland = load_segmenter(directory, GLAND_CARD_KEY, backend)
        if seg.gland.size != seg.size:  # both read the same input
            raise ModelError(f"The gland segmenter's input is not {seg.size} px like the nodule's.")
        seg.filter_by_gland = bool(gland_info.get("filter_candidates", False))
    if key == SEGMENTER_CARD_KEY:
        seg.presence = _load_presence(info)
    return seg


def _load_presence(info: dict[str, Any]):
    """The presence model of the segmenter's card section, or None when it states none or
    when it was fitted on another segmenter's maps (a retrained segmenter, not refitted).

    Raises:
        ModelError: the section is malformed.
    """
    from thyroid_desktop.core.pipeline.presence import PresenceModel

    section = info.get(PRESENCE_CARD_KEY) or None
    if section is None:
        return None
    if section.get("segmenter_sha256") not in (None, info.get("sha256")):
        log.warning("the presence model was fitted on another segmenter; not used")
        return None
    try:
        return PresenceModel.from_card(section)
    except (KeyError, TypeError, ValueError) as err:
        raise ModelError(f"The model card's presence model cannot be read ({err}).") from err
