"""Is this a grey-scale (B-mode) ultrasound frame at all? A check run before every analysis,
so a photo, a blank or pure-noise frame or a colour Doppler frame gets a visible warning
instead of a confident-looking probability.

Three measurements inside the field of view, with thresholds set well outside what all
3,384 frames of ../shared/data show (README, "Out-of-scope images"):

- colour: share of saturated, non-dark pixels (B-mode is grey; Doppler boxes and photos are not);
- contrast: grey-level standard deviation (blank or nearly uniform frames have none);
- structure: correlation of each pixel with its neighbour two pixels away (ultrasound
  speckle is spatially correlated, >= 0.83 in these data; pure noise is ~0, fine textures low).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import cv2
import numpy as np

from thyroid_desktop.core.io.images import UltrasoundImage
from thyroid_desktop.core.pipeline.fov import FieldOfView

#: DICOM storage classes that hold ultrasound (PS3.4 B.5): US image, US multi-frame, their
#: retired predecessors, enhanced US volume; secondary capture (a scanner's screen grab) is
#: allowed when the Modality says US.
ULTRASOUND_SOP_CLASSES = frozenset(
    {
        "1.2.840.10008.5.1.4.1.1.6.1",
        "1.2.840.10008.5.1.4.1.1.6",
        "1.2.840.10008.5.1.4.1.1.3.1",
        "1.2.840.10008.5.1.4.1.1.3",
        "1.2.840.10008.5.1.4.1.1.6.2",
    }
)
SECONDARY_CAPTURE_PREFIX = "1.2.840.10008.5.1.4.1.1.7"


def modality_reason(image: UltrasoundImage) -> str:
    """Why the file's own header says it is not ultrasound ("" when it does not say so).

    A DICOM Modality other than US wins; without a Modality, a storage class that is neither
    ultrasound nor secondary capture does. Non-DICOM files have neither and pass.
    """
    modality = image.metadata.get("Modality", "").strip().upper()
    if modality and modality != "US":
        return f"not an ultrasound image: Modality {modality}"
    sop = image.metadata.get("SOPClassUID", "").strip()
    if (
        not modality
        and sop
        and sop not in ULTRASOUND_SOP_CLASSES
        and not sop.startswith(SECONDARY_CAPTURE_PREFIX)
    ):
        from pydicom.uid import UID

        return f"not an ultrasound image: stored as {UID(sop).name}"
    return ""


COLOUR_MAX = 0.01
STD_MIN = 12.0
CORR_MIN = 0.75


@dataclass(frozen=True)
class ScopeCheck:
    """``in_scope`` is False with one human reason per failed check."""

    colour_fraction: float
    grey_std: float
    neighbour_corr: float
    reasons: list[str] = field(default_factory=list)

    @property
    def in_scope(self) -> bool:
        return not self.reasons


def check_scope(image: UltrasoundImage, fov: FieldOfView) -> ScopeCheck:
    """Measures the frame inside ``fov`` and says why it does not look like B-mode ultrasound."""
    inside = fov.mask
    hsv = cv2.cvtColor(np.asarray(image.pixels), cv2.COLOR_RGB2HSV)
    coloured = (hsv[..., 1] > 90) & (hsv[..., 2] > 50) & inside
    colour = float(coloured.sum()) / max(int(inside.sum()), 1)
    grey = image.gray.astype(np.float32)
    std = float(grey[inside].std()) if inside.any() else 0.0
    both = inside[:, :-2] & inside[:, 2:]
    a, b = grey[:, :-2][both], grey[:, 2:][both]
    corr = float(np.corrcoef(a, b)[0, 1]) if a.size > 16 and a.std() > 0 and b.std() > 0 else 0.0
    reasons = []
    if colour > COLOUR_MAX:
        reasons.append(
            f"{100 * colour:.0f} % of the scan area is in colour: a colour Doppler or "
            "elastography frame, or not an ultrasound image; the model was trained on grey B-mode only"
        )
    if std < STD_MIN:
        reasons.append("the frame is blank or nearly uniform")
    elif corr < CORR_MIN:
        reasons.append(
            "the frame has no ultrasound speckle structure (noise or another kind of image)"
        )
    return ScopeCheck(colour, std, corr, reasons)
