"""The feature cache: the boxes the app would cut (auto box, expert box, jitters, scan area),
their crops through the frozen backbone once per development image, and the ``cache`` command."""

from __future__ import annotations

import argparse
import json
import logging
import time
import zlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import cv2
import numpy as np

from thyroid_desktop.core.io.images import UltrasoundImage, open_image
from thyroid_desktop.core.pipeline.fov import FieldOfView
from thyroid_desktop.core.pipeline.roi import CROP_MARGIN, JITTERS, ROI, roi_from_mask
from training.app_path.recipes import (
    APP_SCORED,
    AUGMENT_SEED,
    AUGMENTED_APP,
    AUGMENTED_VIEWS,
    AUTO_VIEWS,
    BACKBONE,
    CHUNK_IMAGES,
    CONTEXT,
    CONTEXT_MARGIN,
    EXTRACT_BATCH,
    FEATURE_TOLERANCE,
    INPUT_SIZE,
    JITTER_SCALE,
    JITTER_SEED,
    JITTER_SHIFT,
    JPEG_BANDS,
    JPEG_PROBE,
    JPEG_PROBE_QUALITY,
    JPEG_VIEWS,
    LEGACY_INPUT_SIZE,
    MARKED_VIEWS,
    N_JITTERS,
    SCALE_BANDS,
    SCALED_VIEWS,
    SITES,
    VIEWS,
)
from training.data import Sample, load_dataset, read_mask, sample_key

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ImageBoxes:
    """The boxes cut from one image, in image pixels."""

    fov: ROI
    auto: ROI
    found: bool
    expert: ROI | None
    auto_jitter: tuple[ROI, ...]
    expert_jitter: tuple[ROI, ...]


@dataclass
class FeatureCache:
    """Features of every view of every image, in one order.

    Attributes:
        keys, sites, labels, groups: per image (``sample_key``, dataset, 0/1, split group).
        found: the segmenter proposed a candidate (else the auto box is the scan area).
        has_mask: an expert mask exists (else ``expert`` is the scan area, jitters absent).
        features: view -> ``N x 2 x D`` float32 (index 1: the mirror image); zeros where the
            view does not exist for an image (expert jitters and context without a mask).
        boxes: name -> ``N x 4`` int (x, y, w, h) of ``fov``, ``auto`` and ``expert``.
        app_views: ``APP_SCORED`` (an augmented cache: ``AUGMENTED_APP``) view -> ``N x J x D``:
            the app's jitter views of that box (``core.pipeline.estimate.jitter_views``,
            mirrored where the jitter says so).
        app_jitters: ``J x 4``: the ``roi.JITTERS`` rows the app views were cut with.
        marks: the crop step every view was cut with (``core.pipeline.marks.MarksStep``).
        backbone: the ``training.backbones`` network the features come from.
        resolution: the crops' detail limit (``roi.crop_square``; 0: none).
        grey_levels: ``none`` (the app's crops) or an experimental grey-level normalisation
            applied to every crop before the backbone (``training.grey_levels``; CV and
            cross-site only, ``fit`` refuses it).
        input_size: the crops' side in pixels, the backbone's input (``INPUT_SIZE`` as
            shipped; ``LEGACY_INPUT_SIZE`` in a cache written before the field existed).
    """

    keys: np.ndarray
    sites: np.ndarray
    labels: np.ndarray
    groups: np.ndarray
    found: np.ndarray
    has_mask: np.ndarray
    features: dict[str, np.ndarray]
    boxes: dict[str, np.ndarray] = field(default_factory=dict)
    app_views: dict[str, np.ndarray] = field(default_factory=dict)
    app_jitters: np.ndarray = field(default_factory=lambda: np.zeros((0, 4)))
    marks: str = "keep"
    backbone: str = BACKBONE
    resolution: int = 0
    grey_levels: str = "none"
    input_size: int = INPUT_SIZE

    def __len__(self) -> int:
        return len(self.keys)

    @staticmethod
    def cut_of(
        marks: str,
        backbone: str,
        resolution: int,
        grey_levels: str = "none",
        input_size: int = INPUT_SIZE,
    ) -> dict[str, str | int]:
        """How crops are made, as :attr:`cut` says it: the grey-level step only when it is
        not ``none`` (so caches and CV results written before it existed still match)."""
        cut: dict[str, str | int] = {
            "marks": str(marks),
            "backbone": backbone,
            "resolution": int(resolution),
        }
        if grey_levels != "none":
            cut["grey_levels"] = str(grey_levels)
        cut["input_size"] = int(input_size)
        return cut

    @property
    def cut(self) -> dict[str, str | int]:
        """How its crops were made: the marks step, the backbone, the detail limit, the input
        side and (only when not ``none``) the grey-level step."""
        return self.cut_of(
            self.marks, self.backbone, self.resolution, self.grey_levels, self.input_size
        )

    def save(self, path: Path) -> None:
        """Writes one ``.npz`` (uncompressed: written once, read often)."""
        path.parent.mkdir(parents=True, exist_ok=True)
        arrays = {
            "keys": self.keys,
            "sites": self.sites,
            "labels": self.labels,
            "groups": self.groups,
            "found": self.found,
            "has_mask": self.has_mask,
            **{f"feat_{k}": v for k, v in self.features.items()},
            **{f"box_{k}": v for k, v in self.boxes.items()},
            **{f"app_{k}": v for k, v in self.app_views.items()},
            "app_jitters": np.asarray(self.app_jitters, np.float64),
            "marks": np.asarray(self.marks),
            "backbone": np.asarray(self.backbone),
            "resolution": np.asarray(self.resolution),
            "grey_levels": np.asarray(self.grey_levels),
            "input_size": np.asarray(self.input_size),
        }
        tmp = path.with_name(path.stem + ".tmp.npz")
        np.savez(tmp, **arrays)
        tmp.replace(path)

    @classmethod
    def load(cls, path: Path) -> FeatureCache:
        with np.load(path, allow_pickle=False) as z:
            return cls(
                keys=z["keys"],
                sites=z["sites"],
                labels=z["labels"],
                groups=z["groups"],
                found=z["found"],
                has_mask=z["has_mask"],
                features={k[5:]: z[k] for k in z.files if k.startswith("feat_")},
                boxes={k[4:]: z[k] for k in z.files if k.startswith("box_")},
                app_views={
                    k[4:]: z[k] for k in z.files if k.startswith("app_") and k != "app_jitters"
                },
                app_jitters=z["app_jitters"] if "app_jitters" in z.files else np.zeros((0, 4)),
                marks=str(z["marks"]) if "marks" in z.files else "keep",
                backbone=str(z["backbone"]) if "backbone" in z.files else BACKBONE,
                resolution=int(z["resolution"]) if "resolution" in z.files else 0,
                grey_levels=str(z["grey_levels"]) if "grey_levels" in z.files else "none",
                input_size=(int(z["input_size"]) if "input_size" in z.files else LEGACY_INPUT_SIZE),
            )

    @classmethod
    def concat(cls, parts: Sequence[FeatureCache]) -> FeatureCache:
        cuts = [p.cut for p in parts]
        if any(c != cuts[0] for c in cuts):  # e.g. one site recut with --force, the other not
            raise SystemExit(f"the caches were cut differently {cuts}: rerun `cache`")
        cat = np.concatenate
        return cls(
            keys=cat([p.keys for p in parts]),
            sites=cat([p.sites for p in parts]),
            labels=cat([p.labels for p in parts]),
            groups=cat([p.groups for p in parts]),
            found=cat([p.found for p in parts]),
            has_mask=cat([p.has_mask for p in parts]),
            features={v: cat([p.features[v] for p in parts]) for v in parts[0].features},
            boxes={b: cat([p.boxes[b] for p in parts]) for b in parts[0].boxes},
            app_views={v: cat([p.app_views[v] for p in parts]) for v in parts[0].app_views},
            app_jitters=parts[0].app_jitters,
            marks=parts[0].marks,
            backbone=parts[0].backbone,
            resolution=parts[0].resolution,
            grey_levels=parts[0].grey_levels,
            input_size=parts[0].input_size,
        )

    def jitter_columns(self) -> list[int]:
        """Which cached app views are today's ``roi.JITTERS``, in their order."""
        rows = [tuple(float(v) for v in row) for row in self.app_jitters]
        missing = [j for j in JITTERS if tuple(map(float, j)) not in rows]
        if missing:
            raise SystemExit(f"the cache has no app views for jitters {missing}: rerun `cache`")
        return [rows.index(tuple(map(float, j))) for j in JITTERS]


def image_seed(key: str) -> int:
    """A stable per-image seed (``hash`` is salted per process, crc32 is not)."""
    return zlib.crc32(key.encode("utf-8"))


def jitter_boxes(box: ROI, n: int, seed: Sequence[int], width: int, height: int) -> list[ROI]:
    """``n`` copies of ``box`` shifted by up to ``JITTER_SHIFT`` of its size in x and y and
    scaled by up to ``JITTER_SCALE`` about its centre; clipped to the image. Deterministic
    for a given ``seed``."""
    rng = np.random.default_rng(list(seed))
    out = []
    for _ in range(n):
        dx, dy = rng.uniform(-JITTER_SHIFT, JITTER_SHIFT, 2)
        s = rng.uniform(1.0 - JITTER_SCALE, 1.0 + JITTER_SCALE)
        w, h = max(1.0, box.w * s), max(1.0, box.h * s)
        cx, cy = box.x + box.w / 2.0 + dx * box.w, box.y + box.h / 2.0 + dy * box.h
        jit = ROI(int(round(cx - w / 2)), int(round(cy - h / 2)), int(round(w)), int(round(h)))
        try:
            out.append(jit.clipped(width, height))
        except ValueError:  # shifted off a tiny image: keep the box itself
            out.append(box)
    return out


def find_boxes(sample: Sample, image: UltrasoundImage, segmenter) -> tuple[ImageBoxes, FieldOfView]:
    """The app's auto box (best candidate, else the scan area), the expert box and jitters."""
    from thyroid_desktop.core.analysis import AnalysisService

    w, h = image.width, image.height
    det = AnalysisService(None, segmenter, None).detect(image)  # the app's candidates
    fov = det.fov
    found = det.best is not None
    auto = (det.best.roi if found else fov.box).clipped(w, h)
    mask = read_mask(sample.mask_path, w, h)
    expert = roi_from_mask(mask) if mask is not None else None
    seed = image_seed(sample_key(sample))
    boxes = ImageBoxes(
        fov=fov.box,
        auto=auto,
        found=found,
        expert=expert,
        auto_jitter=tuple(jitter_boxes(auto, N_JITTERS, (JITTER_SEED, seed, 0), w, h)),
        expert_jitter=tuple(
            jitter_boxes(expert, N_JITTERS, (JITTER_SEED, seed, 1), w, h) if expert else ()
        ),
    )
    return boxes, fov


def view_boxes(boxes: ImageBoxes) -> dict[str, ROI]:
    """Box per view name (without the context views); expert views only with a mask."""
    out = {"auto": boxes.auto, "scan": boxes.fov}
    out.update({f"auto_j{i}": b for i, b in enumerate(boxes.auto_jitter)})
    if boxes.expert is not None:
        out["expert"] = boxes.expert
        out.update({f"expert_j{i}": b for i, b in enumerate(boxes.expert_jitter)})
    return out


def cut_crops(
    image: UltrasoundImage,
    boxes: ImageBoxes,
    fov: FieldOfView,
    size: int,
    margin: float = CROP_MARGIN,
    context_margin: float = CONTEXT_MARGIN,
    marks: str = "keep",
    resolution: int = 0,
) -> dict[str, np.ndarray]:
    """Every view's crop, cut by the app's own ``classifier_crop`` (``marks``: its marks step,
    ``resolution``: its detail limit)."""
    from thyroid_desktop.core.pipeline.estimate import classifier_crop
    from thyroid_desktop.core.pipeline.marks import MarksStep

    crops, step = {}, MarksStep(marks)
    for view, roi in view_boxes(boxes).items():
        crops[view], _ = classifier_crop(image, roi, size, margin, fov, step, resolution)
        if view != "scan":
            crops[view + CONTEXT], _ = classifier_crop(
                image, roi, size, context_margin, fov, step, resolution
            )
    return crops


def resampled(image: UltrasoundImage, factor: float) -> UltrasoundImage:
    """``image`` resampled by ``factor`` (area averaging down, linear up), as another scanner's
    pixel size would show the same anatomy."""
    from thyroid_desktop.core.io.images import from_array

    w, h = max(1, round(image.width * factor)), max(1, round(image.height * factor))
    interp = cv2.INTER_AREA if factor < 1 else cv2.INTER_LINEAR
    return from_array(cv2.resize(np.asarray(image.pixels), (w, h), interpolation=interp))


def scaled_box(roi: ROI, factor: float, scaled: UltrasoundImage) -> ROI:
    """``roi`` on the image resampled by ``factor`` (:func:`resampled`), clipped to it."""
    x, y = round(roi.x * factor), round(roi.y * factor)
    w, h = max(1, round(roi.w * factor)), max(1, round(roi.h * factor))
    return ROI(x, y, w, h).clipped(scaled.width, scaled.height)


def augmented_crops(
    image: UltrasoundImage,
    boxes: ImageBoxes,
    fov: FieldOfView,
    size: int,
    marks: str,
    seed: int,
    resolution: int = 0,
) -> dict[str, np.ndarray]:
    """The auto box and its jitters (``AUTO_VIEWS``), the box and its first jitter with pasted
    marks (``MARKED_VIEWS``), the second and third jitters cut from the image resampled by
    a factor from each of ``SCALE_BANDS`` (``SCALED_VIEWS``), the fourth jitter and the box
    from the frame re-encoded as a JPEG of a quality from each of ``JPEG_BANDS``
    (``JPEG_VIEWS``) and the box from the frame re-encoded at ``JPEG_PROBE_QUALITY``
    (``JPEG_PROBE``), every one through the marks step ``marks`` and the app's
    ``classifier_crop``. Deterministic for a given ``seed``."""
    from thyroid_desktop.core.io.images import from_array
    from thyroid_desktop.core.pipeline.estimate import classifier_crop
    from thyroid_desktop.core.pipeline.marks import MarksStep
    from training.compression import reencode
    from training.pasted_marks import paste_marks

    step, rng = MarksStep(marks), np.random.default_rng([AUGMENT_SEED, seed])
    plain = (boxes.auto, *boxes.auto_jitter)
    crops = {
        v: classifier_crop(image, roi, size, CROP_MARGIN, fov, step, resolution)[0]
        for v, roi in zip(AUTO_VIEWS, plain, strict=True)
    }
    for view, roi in zip(MARKED_VIEWS, plain, strict=False):
        marked = from_array(paste_marks(image.pixels, (roi.x, roi.y, roi.w, roi.h), rng))
        crops[view] = classifier_crop(marked, roi, size, CROP_MARGIN, fov, step, resolution)[0]
    for view, roi, (lo, hi) in zip(SCALED_VIEWS, plain[2:], SCALE_BANDS, strict=False):
        f = float(rng.uniform(lo, hi))
        scaled = resampled(image, f)
        box = scaled_box(roi, f, scaled)
        crops[view] = classifier_crop(scaled, box, size, CROP_MARGIN, None, step, resolution)[0]
    # qualities drawn last: the views above are those of a cache cut before the JPEG views
    jpeg = [(v, roi, int(rng.integers(lo, hi))) for v, roi, (lo, hi) in
            zip(JPEG_VIEWS, (boxes.auto_jitter[-1], boxes.auto), JPEG_BANDS, strict=True)]  # fmt: skip
    for view, roi, q in [*jpeg, (JPEG_PROBE, boxes.auto, JPEG_PROBE_QUALITY)]:
        pressed = from_array(reencode(image.pixels, q))
        crops[view] = classifier_crop(pressed, roi, size, CROP_MARGIN, fov, step, resolution)[0]
    return crops


def make_extractor(
    model, batch_size: int = EXTRACT_BATCH, grey_levels: str = "none"
) -> Callable[..., np.ndarray]:
    """``f(crops, mirror) -> features`` with one compiled function (traced once per shape);
    ``grey_levels``: the step (``training.grey_levels``) applied to the crops first."""
    import tensorflow as tf

    from training import grey_levels as grey

    fn = tf.function(lambda x: model(x, training=False), reduce_retracing=True)

    def extract(crops: np.ndarray, mirror: bool = False) -> np.ndarray:
        crops = grey.apply(crops, grey_levels)
        out = []
        for i in range(0, len(crops), batch_size):
            x = tf.cast(crops[i : i + batch_size], tf.float32)
            out.append(fn(x[:, :, ::-1, :] if mirror else x).numpy())
        return np.concatenate(out) if out else np.zeros((0, model.output_shape[-1]), "float32")

    return extract


def build_cache(
    samples: Sequence[Sample],
    feature_model,
    segmenter,
    size: int = INPUT_SIZE,
    on_first_crops: Callable[[np.ndarray], None] | None = None,
    marks: str = "keep",
    augment: bool = False,
    backbone: str = BACKBONE,
    resolution: int = 0,
    grey_levels: str = "none",
) -> FeatureCache:
    """Runs detection and the frozen backbone over every image once.

    Args:
        samples: the images (their order is the cache's order).
        feature_model: image -> pooled feature vector (``linear_head.feature_graph``).
        segmenter: the app's segmenter (or any callable ``AnalysisService`` accepts).
        size: crop side in pixels.
        on_first_crops: called with the first chunk's auto-box crops (feature layout check).
        marks: the crop step (``core.pipeline.marks``) every view is cut with.
        augment: cache ``AUGMENTED_VIEWS`` (auto box, jitters, pasted marks, resampled,
            JPEG re-encoded, the quality-50 probe) and the app views of ``AUGMENTED_APP``
            (the auto box, clean and re-encoded at quality 50) only, instead of every view
            of ``VIEWS``.
        backbone: the name ``feature_model`` was built from (recorded in the cache).
        resolution: the crops' detail limit (``roi.crop_square``; 0: none).
        grey_levels: grey-level step of every crop (``training.grey_levels``).
    """
    extract = make_extractor(feature_model, grey_levels=grey_levels)
    n, dim = len(samples), int(feature_model.output_shape[-1])
    feats = {v: np.zeros((n, 2, dim), np.float32) for v in (AUGMENTED_VIEWS if augment else VIEWS)}
    boxes = {b: np.zeros((n, 4), np.int32) for b in ("fov", "auto", "expert")}
    found, has_mask = np.zeros(n, bool), np.zeros(n, bool)
    t0 = time.perf_counter()
    for start in range(0, n, CHUNK_IMAGES):
        chunk: list[tuple[int, str, np.ndarray]] = []
        for i in range(start, min(start + CHUNK_IMAGES, n)):
            image = open_image(samples[i].path)
            b, fov = find_boxes(samples[i], image, segmenter)
            found[i], has_mask[i] = b.found, b.expert is not None
            boxes["fov"][i], boxes["auto"][i] = b.fov.as_list(), b.auto.as_list()
            boxes["expert"][i] = (b.expert or b.fov).as_list()
            if augment:
                seed = image_seed(sample_key(samples[i]))
                crops = augmented_crops(image, b, fov, size, marks, seed, resolution)
            else:
                crops = cut_crops(image, b, fov, size, marks=marks, resolution=resolution)
            chunk += [(i, v, c) for v, c in crops.items()]
        crops = np.stack([c for _, _, c in chunk])
        if start == 0 and on_first_crops is not None:
            on_first_crops(np.stack([c for _, v, c in chunk if v == "auto"]))
        plain, mirrored = extract(crops), extract(crops, mirror=True)
        for k, (i, v, _) in enumerate(chunk):
            feats[v][i, 0], feats[v][i, 1] = plain[k], mirrored[k]
        done = min(start + CHUNK_IMAGES, n)
        log.info("%d/%d images, %.0f s", done, n, time.perf_counter() - t0)
    # Without a mask the expert box is the scan area (as sample_roi and the app fall back).
    if not augment:
        feats["expert"][~has_mask] = feats["scan"][~has_mask]
    cache = FeatureCache(
        keys=np.array([sample_key(s) for s in samples]),
        sites=np.array([s.dataset for s in samples]),
        labels=np.array([s.label for s in samples], dtype=int),
        groups=np.array([s.group for s in samples]),
        found=found,
        has_mask=has_mask,
        features=feats,
        boxes=boxes,
        marks=marks,
        backbone=backbone,
        resolution=resolution,
        grey_levels=grey_levels,
        input_size=size,
    )
    views = AUGMENTED_APP if augment else APP_SCORED
    add_app_views(cache, samples, feature_model, size, marks=marks, views=views)
    return cache


def add_app_views(
    cache: FeatureCache,
    samples: Sequence[Sample],
    feature_model,
    size: int | None = None,
    margin: float = CROP_MARGIN,
    marks: str = "keep",
    views: Sequence[str] = APP_SCORED,
) -> None:
    """Adds the features of the app's jitter views (``core.pipeline.estimate.jitter_views``, as
    ``predict`` scores a box) of the cached ``views`` boxes (auto, expert, scan area, and
    ``JPEG_PROBE``: the auto box of the frame re-encoded at ``JPEG_PROBE_QUALITY``), cut with
    the cache's own detail limit and (``size`` None) input side."""
    from thyroid_desktop.core.io.images import from_array
    from thyroid_desktop.core.pipeline.estimate import jitter_views
    from thyroid_desktop.core.pipeline.fov import detect_fov
    from thyroid_desktop.core.pipeline.marks import MarksStep
    from training.compression import reencode

    box_of = {"auto": "auto", "expert": "expert", "scan": "fov", JPEG_PROBE: "auto"}
    size = cache.input_size if size is None else size

    extract = make_extractor(feature_model, grey_levels=cache.grey_levels)
    n, dim = len(cache), int(feature_model.output_shape[-1])
    out = {v: np.zeros((n, len(JITTERS), dim), np.float32) for v in views}
    t0 = time.perf_counter()
    for start in range(0, n, CHUNK_IMAGES):
        chunk: list[tuple[int, str, np.ndarray]] = []
        for i in range(start, min(start + CHUNK_IMAGES, n)):
            if sample_key(samples[i]) != cache.keys[i]:
                raise ValueError(f"sample {i} is not the cache's {cache.keys[i]}")
            image = open_image(samples[i].path)
            fov = detect_fov(image.gray)  # what the detection found, deterministic
            for view in views:
                if view == "expert" and not cache.has_mask[i]:
                    continue
                roi = ROI(*(int(v) for v in cache.boxes[box_of[view]][i]))
                if view == JPEG_PROBE:
                    seen = from_array(reencode(image.pixels, JPEG_PROBE_QUALITY))
                else:
                    seen = image
                crops = jitter_views(
                    seen,
                    roi,
                    size,
                    margin,
                    fov,
                    marks=MarksStep(marks),
                    resolution=cache.resolution,
                )
                chunk += [(i, view, c) for c in crops]
        feats = extract(np.stack([c for _, _, c in chunk]))
        counts: dict[tuple[int, str], int] = {}
        for k, (i, view, _) in enumerate(chunk):
            j = counts.get((i, view), 0)
            counts[(i, view)] = j + 1
            out[view][i, j] = feats[k]
        log.info(
            "app views: %d/%d images, %.0f s",
            min(start + CHUNK_IMAGES, n),
            n,
            time.perf_counter() - t0,
        )
    if "expert" in out:
        out["expert"][~cache.has_mask] = out["scan"][~cache.has_mask]
    cache.app_views = out
    cache.app_jitters = np.asarray(JITTERS, np.float64)


def feature_layout_gap(feature_model, classifier_model, crops: np.ndarray) -> float:
    """Largest absolute difference between ``feature_model`` and the shipped classifier's
    ``features`` layer on the same crops (0 when the layout and weights are the same)."""
    import keras

    sub = keras.Model(classifier_model.inputs, classifier_model.get_layer("features").output)
    x = np.asarray(crops, np.float32)
    a = np.asarray(feature_model(x, training=False))
    b = np.asarray(sub(x, training=False))
    if a.shape != b.shape:
        return float("inf")
    return float(np.abs(a - b).max())


def shipped_card(models: Path | None = None) -> dict:
    from thyroid_desktop.core.models.shipped import CARD_FILE, models_dir

    return json.loads(((models or models_dir()) / CARD_FILE).read_text())


def development_samples(data: Path, test_files: set[str]) -> list[Sample]:
    """ddti + chaouchi samples outside the card's test split, in the order the shipped
    ``fit_final`` uses (so the folds are the card's)."""
    out: list[Sample] = []
    for site in SITES:
        out += [s for s in load_dataset(data / site) if sample_key(s) not in test_files]
    return out


def load_cache(out: Path, samples: Sequence[Sample]) -> FeatureCache:
    cache = FeatureCache.concat([FeatureCache.load(out / f"features_{s}.npz") for s in SITES])
    if list(cache.keys) != [sample_key(s) for s in samples]:
        raise SystemExit("the feature cache does not match the development split: rerun `cache`")
    return cache


def _has_jitters(cache: FeatureCache) -> bool:
    try:
        cache.jitter_columns()
    except SystemExit:
        return False
    return True


def cmd_cache(args: argparse.Namespace) -> None:
    """Caches features of every development image's crops, per site."""
    from thyroid_desktop.core.models.shipped import load_classifier, load_segmenter
    from training.linear_head import feature_graph

    card = shipped_card()
    samples = development_samples(args.data, set(card["data"]["split"]["test_files"]))
    features, cam_layer = feature_graph(args.backbone, args.input_size)
    if cam_layer != card["last_conv_layer"]:
        raise SystemExit(f"feature graph taps {cam_layer}, the card says {card['last_conv_layer']}")
    segmenter = load_segmenter()
    if segmenter is None:
        raise SystemExit("the model card names no segmenter")
    # The layout check compares with the shipped model when it has the same backbone: at the
    # shipped model's own input side (the same weights; a cache of another side is checked on
    # its crops resized to that side).
    same = card.get("backbone") == args.backbone
    shipped = load_classifier(backend="keras").model if same else None
    shipped_size = int(card["input_size"])
    at_shipped_size = (
        feature_graph(args.backbone, shipped_size)[0]
        if same and shipped_size != args.input_size
        else features
    )
    checks: dict[str, float | str | None] = {"backbone": args.backbone}

    def check(crops: np.ndarray) -> None:
        if shipped is None:
            log.info("%s is not the shipped backbone: no layout check", args.backbone)
            checks["max_abs_feature_gap"] = None  # not checked (not the shipped backbone)
            return
        if shipped_size != args.input_size:
            crops = np.stack([cv2.resize(c, (shipped_size, shipped_size)) for c in crops[:4]])
        gap = feature_layout_gap(at_shipped_size, shipped, crops[:4])
        checks["max_abs_feature_gap"] = gap
        log.info("cached features vs shipped 'features' layer: max |diff| %.2e", gap)
        if gap > FEATURE_TOLERANCE:
            raise SystemExit(f"features differ from the shipped model's by {gap}")

    args.out.mkdir(parents=True, exist_ok=True)
    for site in SITES:
        path = args.out / f"features_{site}.npz"
        part = [s for s in samples if s.dataset == site]
        if path.exists() and not args.force:
            cache = FeatureCache.load(path)
            want = FeatureCache.cut_of(
                args.marks, args.backbone, args.resolution, args.grey_levels, args.input_size
            )
            if cache.cut != want:
                raise SystemExit(f"{path} was cut as {cache.cut}: use --force")
            wanted = AUGMENTED_APP if args.augment else APP_SCORED
            if set(cache.app_views) != set(wanted) or not _has_jitters(cache):
                add_app_views(cache, part, features, marks=args.marks, views=wanted)
                cache.save(path)
            log.info("%s: cached already (%s)", site, path)
            continue
        t0 = time.perf_counter()
        cache = build_cache(
            part,
            features,
            segmenter,
            size=args.input_size,
            on_first_crops=check,
            marks=args.marks,
            augment=args.augment,
            backbone=args.backbone,
            resolution=args.resolution,
            grey_levels=args.grey_levels,
        )
        cache.save(path)
        log.info("%s: %d images in %.0f s -> %s", site, len(part), time.perf_counter() - t0, path)
        checks[f"{site}_seconds"] = time.perf_counter() - t0
        checks[f"{site}_found_share"] = float(cache.found.mean())
    check_path = args.out / "cache_check.json"
    previous = json.loads(check_path.read_text()) if check_path.exists() else {}
    check_path.write_text(json.dumps({**previous, **checks}, indent=2))
