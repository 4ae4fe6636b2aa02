"""The app's inference runtime: the shipped models as ONNX graphs run by ONNX Runtime.

ONNX Runtime imports in about 0.2 s where TensorFlow takes 3-5 s, so the first result comes
within seconds of launch (issue 11). The graphs are converted from the Keras files by
``training.onnx_export``, which checks that both give the same numbers; Keras stays
available (``THYROID_BACKEND=keras``) and is used when the ONNX files are absent or were
converted from other Keras files.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import numpy as np

from thyroid_desktop.core.models.gradcam import Explainer, normalised_cam

log = logging.getLogger(__name__)

#: Output names of the converted graphs.
LOGIT_OUTPUT = "logit"
FEATURES_OUTPUT = "features"
CAM_OUTPUT = "cam"
PROBABILITY = "probability"
#: Optional input of the classifier's graph: how many leading views of the batch get a
#: Grad-CAM map (int64, shape [1]); graphs from before it compute a map for every view.
CAM_ROWS_INPUT = "cam_rows"
#: ``cam_rows``'s default in the graph: every view.
ALL_ROWS = 2**62

#: Execution providers in order of preference (GPU when an ONNX Runtime build has one).
PREFERRED_PROVIDERS = ("CUDAExecutionProvider", "DmlExecutionProvider", "CPUExecutionProvider")


def available() -> bool:
    """Whether ONNX Runtime can be imported."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return False
    return True


def onnx_session(path: Path) -> Any:
    """An ONNX Runtime session for a graph file, on the best provider this build has."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.log_severity_level = 3  # errors only
    # The worker threads spin inside a run (fast) but stop when it ends: left spinning they
    # take the CPU from the OpenCV and NumPy steps between two model calls. Measured on 2
    # cores, separate processes, 3 rounds (end to end / predict, median ms): spinning
    # 237-264 / 111-121, no spinning 126-158 / 110-133, this 114-148 / 88-115.
    options.add_session_config_entry("session.intra_op.allow_spinning", "1")
    options.add_session_config_entry("session.force_spinning_stop", "1")
    have = set(ort.get_available_providers())
    providers = [p for p in PREFERRED_PROVIDERS if p in have] or ["CPUExecutionProvider"]
    return ort.InferenceSession(str(path), sess_options=options, providers=providers)


def session_device(session: Any) -> str:
    """``CPU`` or ``GPU: <provider>`` for the provider a session runs on."""
    first = session.get_providers()[0]
    return (
        "CPU"
        if first == "CPUExecutionProvider"
        else f"GPU: {first.removesuffix('ExecutionProvider')}"
    )


def requested_backend() -> str:
    """``onnx`` (default) or ``keras``, from ``THYROID_BACKEND``."""
    value = os.environ.get("THYROID_BACKEND", "onnx").strip().lower()
    if value not in ("onnx", "keras"):
        log.warning("THYROID_BACKEND=%r is not onnx or keras; using onnx", value)
        return "onnx"
    return value


#: The classifier graphs the app can run (``THYROID_PRECISION``).
PRECISIONS = ("float", "int8")


def requested_precision(default: str = "float") -> str:
    """``float`` or ``int8`` from ``THYROID_PRECISION``; ``default`` (the card's choice) when
    it is unset or not one of them."""
    value = os.environ.get("THYROID_PRECISION", "").strip().lower()
    if not value:
        return default
    if value not in PRECISIONS:
        log.warning("THYROID_PRECISION=%r is not float or int8; using %s", value, default)
        return default
    return value


class OnnxGradCAM(Explainer):
    """The classifier's logits, features and Grad-CAM map from its ONNX graph.

    The graph's ``cam`` output is the Grad-CAM weighting, computed in the graph by the reverse
    pass ``training.onnx_export`` builds (the logit's gradient at the conv layer, averaged over
    positions, times the conv map, summed over channels); only the ReLU and the normalisation
    are left to do here. The reverse pass runs only for the views whose maps are used (the
    graph's ``cam_rows`` input): the crop and its mirror, not the box jitters, in the same run.
    """

    def __init__(self, session: Any, platt: tuple[float, float]) -> None:
        super().__init__(platt)
        self._session = session
        self._input = session.get_inputs()[0].name
        #: Whether the graph computes maps only for the views that use them (``cam_rows``, an
        #: input with a default: ONNX Runtime lists it among the overridable initialisers).
        self.maps_where_used = CAM_ROWS_INPUT in {
            i.name for i in (*session.get_inputs(), *session.get_overridable_initializers())
        }
        names = {o.name for o in session.get_outputs()}
        self.has_features = FEATURES_OUTPUT in names
        self._outputs = [LOGIT_OUTPUT, CAM_OUTPUT] + (
            [FEATURES_OUTPUT] if self.has_features else []
        )

    def _forward(self, x: np.ndarray, cam_rows: int | None = None):
        feed = {self._input: x}
        if self.maps_where_used and cam_rows is not None:
            feed[CAM_ROWS_INPUT] = np.array([cam_rows], np.int64)
        logits, cams, *features = self._session.run(self._outputs, feed)
        cams = normalised_cam(cams if cam_rows is None else cams[:cam_rows])
        return logits[:, 0], cams, (features[0] if features else None)


class OnnxSegmenterFn:
    """A segmenter's ONNX graph: float batch ``N x S x S x 3`` -> ``N x S x S x 1``."""

    def __init__(self, session: Any) -> None:
        self._session = session
        self._input = session.get_inputs()[0].name

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return self._session.run([PROBABILITY], {self._input: np.asarray(x, np.float32)})[0]
