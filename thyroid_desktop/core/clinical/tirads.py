"""ACR TI-RADS: points, level and the size-based FNA / follow-up recommendation.

Tessler F.N. et al., "ACR Thyroid Imaging, Reporting and Data System (TI-RADS): White Paper
of the ACR TI-RADS Committee", J Am Coll Radiol 2017;14:587-595. Points per descriptor group
are summed (echogenic foci: every kind that applies); spongiform nodules get no further
points. The recommendation uses the nodule's maximum diameter in cm.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from enum import Enum

from thyroid_desktop.core.clinical.measure import NoduleSize


class Composition(Enum):
    CYSTIC = ("cystic or almost completely cystic", 0)
    SPONGIFORM = ("spongiform", 0)
    MIXED = ("mixed cystic and solid", 1)
    SOLID = ("solid or almost completely solid", 2)


class Echogenicity(Enum):
    ANECHOIC = ("anechoic", 0)
    HYPER_ISO = ("hyperechoic or isoechoic", 1)
    HYPO = ("hypoechoic", 2)
    VERY_HYPO = ("very hypoechoic", 3)


class Shape(Enum):
    WIDER = ("wider-than-tall", 0)
    TALLER = ("taller-than-wide", 3)


class Margin(Enum):
    SMOOTH = ("smooth", 0)
    ILL_DEFINED = ("ill-defined", 0)
    LOBULATED = ("lobulated or irregular", 2)
    EXTRATHYROIDAL = ("extra-thyroidal extension", 3)


class EchogenicFoci(Enum):
    NONE = ("none or large comet-tail artifacts", 0)
    MACRO = ("macrocalcifications", 1)
    PERIPHERAL = ("peripheral (rim) calcifications", 2)
    PUNCTATE = ("punctate echogenic foci", 3)


def label(choice: Enum) -> str:
    """The lexicon wording of a choice."""
    return choice.value[0]


def points_of(choice: Enum) -> int:
    return int(choice.value[1])


@dataclass(frozen=True)
class Level:
    """A TR level with its name and size thresholds (cm) for FNA and follow-up."""

    tr: int
    name: str
    fna_cm: float | None
    follow_cm: float | None
    follow_schedule: str


LEVELS = {
    1: Level(1, "benign", None, None, ""),
    2: Level(2, "not suspicious", None, None, ""),
    3: Level(3, "mildly suspicious", 2.5, 1.5, "ultrasound at 1, 3 and 5 years"),
    4: Level(4, "moderately suspicious", 1.5, 1.0, "ultrasound at 1, 2, 3 and 5 years"),
    5: Level(5, "highly suspicious", 1.0, 0.5, "ultrasound every year for up to 5 years"),
}


@dataclass(frozen=True)
class TiradsDescriptors:
    """The five ACR descriptor groups for one nodule (echogenic foci: all that apply)."""

    composition: Composition
    echogenicity: Echogenicity
    shape: Shape
    margin: Margin
    foci: frozenset[EchogenicFoci] = field(default_factory=lambda: frozenset({EchogenicFoci.NONE}))

    @property
    def points(self) -> int:
        """Total points; a spongiform nodule gets none beyond its composition."""
        if self.composition is Composition.SPONGIFORM:
            return 0
        foci = sum(points_of(f) for f in self.foci)
        return (
            sum(
                points_of(c) for c in (self.composition, self.echogenicity, self.shape, self.margin)
            )
            + foci
        )

    @property
    def level(self) -> Level:
        p = self.points
        if p == 0:
            return LEVELS[1]
        if p <= 2:
            return LEVELS[2]
        if p == 3:
            return LEVELS[3]
        return LEVELS[4] if p <= 6 else LEVELS[5]


@dataclass(frozen=True)
class Recommendation:
    """What ACR TI-RADS advises for this level and size."""

    action: str  # "FNA", "follow-up", "no FNA", or "size needed"
    text: str


def recommend(level: Level, size: NoduleSize | float | None) -> Recommendation:
    """FNA / follow-up advice for the nodule's ``size`` (``core.clinical.measure.nodule_size``,
    or its maximum diameter in mm); without a calibrated size, says what the thresholds are."""
    max_diameter_mm = size.max_diameter_mm if isinstance(size, NoduleSize) else size
    if level.fna_cm is None:
        return Recommendation("no FNA", f"TR{level.tr} ({level.name}): no FNA.")
    fna_mm = round(level.fna_cm * 10)
    follow_mm = round(level.follow_cm * 10) if level.follow_cm is not None else None
    thresholds = f"FNA from {fna_mm} mm" + (
        f"; follow-up from {follow_mm} mm, {level.follow_schedule}" if follow_mm else ""
    )
    if max_diameter_mm is None:
        return Recommendation(
            "size needed", f"TR{level.tr} ({level.name}): {thresholds}. Size not calibrated."
        )
    # decided on the size as printed (0.1 mm), in mm as the panel gives it, so that the text
    # never shows a rounded size on the other side of a threshold from the advice (14.96 mm
    # prints "15.0 mm": FNA at TR4; a GUI trial read "1.5 cm: follow-up" for 14.8 mm)
    mm = float(f"{max_diameter_mm:.1f}")
    shown = f"TR{level.tr}, {mm:.1f} mm"
    if mm >= fna_mm:
        return Recommendation("FNA", f"{shown}: FNA recommended (TR{level.tr}: {thresholds}).")
    if follow_mm is not None and mm >= follow_mm:
        return Recommendation(
            "follow-up", f"{shown}: follow-up, {level.follow_schedule} (FNA from {fna_mm} mm)."
        )
    below = f" ({follow_mm} mm)" if follow_mm is not None else ""
    return Recommendation("no FNA", f"{shown}: below the follow-up size{below}; no FNA.")


def points_text(points: int) -> str:
    """ "1 point", "3 points"."""
    return f"{points} point" + ("" if points == 1 else "s")


#: The single-choice groups, in the panel's order, and the enum of each.
GROUPS: dict[str, type[Enum]] = {
    "composition": Composition,
    "echogenicity": Echogenicity,
    "shape": Shape,
    "margin": Margin,
}


#: What each group is called when it is still open (the panel's and the PDF's wording).
GROUP_NAMES = {
    "composition": "composition",
    "echogenicity": "echogenicity",
    "shape": "shape",
    "margin": "margin",
    "echogenic_foci": "echogenic foci",
}


@dataclass(frozen=True)
class TiradsChoices:
    """What the clinician has chosen so far (any group may still be open; nothing is
    pre-selected). Echogenic foci follow the lexicon: "none" excludes every other kind, and
    choosing a kind clears "none"; an empty ``foci`` means the clinician has not set them."""

    composition: Composition | None = None
    echogenicity: Echogenicity | None = None
    shape: Shape | None = None
    margin: Margin | None = None
    foci: frozenset[EchogenicFoci] = field(default_factory=frozenset)
    #: The groups (``GROUPS``' names, "echogenic_foci") whose choice came from accepting the
    #: AI's suggestion, not from the clinician's own pick: the report says who set each one
    #: even after the box, and so the suggestion, changed. Setting a group again clears it.
    by_ai: frozenset[str] = field(default_factory=frozenset)

    @property
    def foci_set(self) -> bool:
        """The clinician has set the echogenic foci (possibly "none")."""
        return bool(self.foci)

    @property
    def open_groups(self) -> list[str]:
        """The groups not set yet, in the panel's order, as people name them."""
        out = [GROUP_NAMES[g] for g in GROUPS if getattr(self, g) is None]
        return out + ([] if self.foci_set else [GROUP_NAMES["echogenic_foci"]])

    def with_choice(self, group: str, choice: Enum | None) -> TiradsChoices:
        """``choice`` (or None: not chosen) in the single-choice ``group``."""
        if group not in GROUPS or (choice is not None and not isinstance(choice, GROUPS[group])):
            raise ValueError(f"{choice!r} is not a {group} choice")
        return dataclasses.replace(self, **{group: choice}, by_ai=self.by_ai - {group})

    def with_focus(self, focus: EchogenicFoci, on: bool) -> TiradsChoices:
        """Ticks or clears one kind of echogenic focus; "none" and the others exclude each
        other; clearing the last one leaves the group open."""
        if focus is EchogenicFoci.NONE:
            foci = {EchogenicFoci.NONE} if on else set()
        else:
            foci = (set(self.foci) - {EchogenicFoci.NONE}) | {focus}
            if not on:
                foci.discard(focus)
        by_ai = self.by_ai - {"echogenic_foci"}
        return dataclasses.replace(self, foci=frozenset(foci), by_ai=by_ai)

    def set_by_ai(self, groups) -> TiradsChoices:
        """The same choices, ``groups`` marked as set by accepting the AI's suggestion
        (those still open are not)."""
        done = {g for g in groups if (self.foci_set if g == "echogenic_foci" else getattr(self, g))}
        return dataclasses.replace(self, by_ai=self.by_ai | done)

    @property
    def descriptors(self) -> TiradsDescriptors | None:
        """The full descriptors, or None while any of the five groups is open."""
        chosen = {g: getattr(self, g) for g in GROUPS}
        if any(v is None for v in chosen.values()) or not self.foci_set:
            return None
        return TiradsDescriptors(**chosen, foci=self.foci)

    @classmethod
    def of(cls, d: TiradsDescriptors | None) -> TiradsChoices:
        if d is None:
            return cls()
        foci = frozenset(d.foci) or frozenset({EchogenicFoci.NONE})  # a full reading
        return cls(d.composition, d.echogenicity, d.shape, d.margin, foci)

    def to_json(self) -> dict:
        return {
            **{g: (getattr(self, g).name if getattr(self, g) else None) for g in GROUPS},
            "foci": sorted(f.name for f in self.foci),
            "foci_set": self.foci_set,
            "by_ai": sorted(self.by_ai),
        }

    @classmethod
    def from_json(cls, data: dict) -> TiradsChoices:
        groups = {g: (GROUPS[g][data[g]] if data.get(g) else None) for g in GROUPS}
        foci = frozenset(EchogenicFoci[f] for f in data.get("foci", ()))
        # Sessions saved while "none" was pre-ticked: a "none" the clinician never set (their
        # ``foci_set`` false) is open; saved before ``foci_set`` existed, foci count as set
        # once they differ from that default or the four single-choice groups were chosen.
        was_default = foci == {EchogenicFoci.NONE}
        default_set = not was_default or all(groups.values())
        if was_default and not bool(data.get("foci_set", default_set)):
            foci = frozenset()
        by_ai = data.get("by_ai")
        by_ai = by_ai if isinstance(by_ai, list) else []  # damaged: nobody credited
        chosen = cls(**groups, foci=foci)
        known = [g for g in by_ai if isinstance(g, str) and (g in GROUPS or g == "echogenic_foci")]
        return chosen.set_by_ai(known)


def tirads_text(choices: TiradsChoices) -> str:
    """The clinician's TI-RADS as the panel and the PDF both print it: the level, points
    and descriptors once all five groups are set, else which groups are still open, e.g.
    "Not scored; open: echogenic foci, margin"."""
    d = choices.descriptors
    if d is None:
        return f"Not scored; open: {', '.join(choices.open_groups)}"
    kinds = d.foci - {EchogenicFoci.NONE} or d.foci  # "none" only when alone
    foci = ", ".join(sorted(label(f) for f in kinds))
    level = d.level
    return (
        f"TR{level.tr} ({level.name}), {points_text(d.points)}: {label(d.composition)}; "
        f"{label(d.echogenicity)}; {label(d.shape)}; {label(d.margin)}; {foci}"
    )
