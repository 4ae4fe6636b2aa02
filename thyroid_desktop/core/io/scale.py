"""How big a pixel is, and who said so: the one :class:`Scale` value.

The file states it (DICOM ultrasound regions, else DICOM Pixel Spacing), the clinician draws
it (a line along a known distance), or nobody does: then sizes stay in pixels, never guessed.
Which scale applies to a nodule is decided once, by ``core.clinical.measure.effective_scale``.
"""

from __future__ import annotations

import enum
import math
from dataclasses import dataclass


class ScaleSource(enum.StrEnum):
    """Where a scale came from, in the words the panel, the report and the CSV print."""

    DICOM_REGIONS = "DICOM ultrasound regions"
    DICOM_PIXEL_SPACING = "DICOM pixel spacing"
    #: Stated by whoever built an in-memory image (tests, benchmarks).
    GIVEN = "given with the image"
    #: The clinician's line along a known distance (isotropic).
    USER_LINE = "user scale"
    NONE = "uncalibrated"


#: The sources a file states; a user's line never overrides them.
FILE_SOURCES = frozenset(
    {ScaleSource.DICOM_REGIONS, ScaleSource.DICOM_PIXEL_SPACING, ScaleSource.GIVEN}
)


@dataclass(frozen=True)
class Scale:
    """Millimetres per pixel down the rows (``row_mm``) and across the columns (``col_mm``),
    and where they came from; both None (source ``NONE``) when nobody stated a scale.

    Raises:
        ValueError: a calibrated scale whose sizes are not positive finite numbers, or an
            uncalibrated one with sizes.
    """

    row_mm: float | None = None
    col_mm: float | None = None
    source: ScaleSource = ScaleSource.NONE

    def __post_init__(self) -> None:
        object.__setattr__(self, "source", ScaleSource(self.source))
        if self.source is ScaleSource.NONE:
            if self.row_mm is not None or self.col_mm is not None:
                raise ValueError("an uncalibrated scale has no pixel size")
            return
        try:
            row, col = float(self.row_mm), float(self.col_mm)  # type: ignore[arg-type]
        except (TypeError, ValueError):
            raise ValueError(
                f"spacing_mm must be (row_mm, col_mm), got {(self.row_mm, self.col_mm)!r}"
            ) from None
        if not (math.isfinite(row) and math.isfinite(col) and row > 0 and col > 0):
            raise ValueError(f"spacing_mm must be two positive finite numbers, got {(row, col)!r}")
        object.__setattr__(self, "row_mm", row)
        object.__setattr__(self, "col_mm", col)

    @classmethod
    def none(cls) -> Scale:
        """No scale: sizes in pixels only."""
        return cls()

    @classmethod
    def of_spacing(cls, spacing_mm: tuple[float, float] | None, source: ScaleSource | str) -> Scale:
        """A (row_mm, col_mm) pair from ``source``, or no scale for None."""
        if spacing_mm is None:
            return cls()
        try:
            row, col = spacing_mm
        except (TypeError, ValueError):
            raise ValueError(f"spacing_mm must be (row_mm, col_mm), got {spacing_mm!r}") from None
        return cls(row, col, ScaleSource(source))

    @classmethod
    def user_line(cls, mm_per_px: float) -> Scale:
        """The clinician's line: the same size both ways."""
        if not float(mm_per_px) > 0:
            raise ValueError(f"a scale must be positive, got {mm_per_px}")
        return cls(mm_per_px, mm_per_px, ScaleSource.USER_LINE)

    @property
    def calibrated(self) -> bool:
        return self.source is not ScaleSource.NONE

    @property
    def from_file(self) -> bool:
        """True when the image itself states this scale (a user's line cannot replace it)."""
        return self.source in FILE_SOURCES

    @property
    def spacing_mm(self) -> tuple[float, float] | None:
        """(row_mm, col_mm), or None when uncalibrated."""
        return None if not self.calibrated else (self.row_mm, self.col_mm)  # type: ignore[return-value]

    def length_mm(self, dx_px: float, dy_px: float) -> float | None:
        """Length of a line of (``dx_px``, ``dy_px``) pixels, each axis at its own size;
        None when uncalibrated."""
        if not self.calibrated:
            return None
        return math.hypot(dx_px * self.col_mm, dy_px * self.row_mm)  # type: ignore[operator]
