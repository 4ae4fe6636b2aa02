"""Out-of-scope frames get a warning; ultrasound-like frames do not."""

import numpy as np
import pytest
import skimage.data

from thyroid_desktop.core.io.images import from_array
from thyroid_desktop.core.io.phantom import make_phantom
from thyroid_desktop.core.pipeline.fov import detect_fov
from thyroid_desktop.core.pipeline.scope import check_scope


def check(pixels):
    image = from_array(pixels)
    return check_scope(image, detect_fov(image.gray))


def test_speckle_correlation_is_pearsons():
    from thyroid_desktop.core.pipeline.scope import _correlation

    rng = np.random.default_rng(1)
    a = rng.normal(100, 20, 5000).astype(np.float32)
    b = (0.6 * a + rng.normal(0, 15, 5000)).astype(np.float32)
    assert _correlation(a, b) == pytest.approx(np.corrcoef(a, b)[0, 1], abs=1e-9)
    assert _correlation(a, -a) == pytest.approx(-1.0)
    assert _correlation(a, np.full_like(a, 7.0)) == 0.0


def test_phantom_is_in_scope():
    assert check(make_phantom().pixels).in_scope


def test_sonographers_marks_do_not_lower_the_speckle_measure():
    """Calipers, dotted lines and labels are thin strokes: on a small frame they once pulled
    the neighbour correlation of a real chaouchi frame below the limit (refused as 'no
    speckle'); the measure now skips the marks the crop step finds."""
    import cv2

    px = make_phantom(seed=2).pixels.copy()
    clean = check(px).neighbour_corr
    for x in range(40, px.shape[1] - 40, 24):
        for y in range(40, px.shape[0] - 40, 24):
            cv2.line(px, (x - 5, y), (x + 5, y), (255, 255, 255), 1)
            cv2.line(px, (x, y - 5), (x, y + 5), (255, 255, 255), 1)
    cv2.putText(px, "N1 1.2cm", (60, 60), cv2.FONT_HERSHEY_PLAIN, 1.0, (240, 240, 240), 1)
    marked = check(px)
    assert marked.in_scope and abs(marked.neighbour_corr - clean) < 0.02


def test_colour_doppler_box_is_flagged():
    px = make_phantom().pixels.copy()
    px[120:220, 200:330] = (200, 30, 30)  # a red/blue flow box
    px[150:180, 220:300] = (30, 60, 220)
    result = check(px)
    assert not result.in_scope and "colour" in result.reasons[0]


@pytest.mark.parametrize(
    ("pixels", "phrase"),
    [
        (np.full((300, 400), 90, np.uint8), "blank"),
        (np.random.default_rng(0).integers(0, 255, (300, 400), dtype=np.uint8), "speckle"),
        (skimage.data.coffee(), "colour"),
        (skimage.data.grass(), "speckle"),
    ],
)
def test_not_ultrasound_is_flagged(pixels, phrase):
    result = check(pixels)
    assert not result.in_scope and phrase in " ".join(result.reasons)


def test_finding_carries_the_warning(classifier):
    from thyroid_desktop.core.pipeline.estimate import predict

    rng = np.random.default_rng(1)
    finding = predict(from_array(rng.integers(0, 255, (200, 300), dtype=np.uint8)), classifier)
    assert finding.warnings and "speckle" in finding.warnings[0]
    assert predict(from_array(make_phantom().pixels), classifier).warnings == ()


def test_one_analysis_measures_the_frame_once(classifier, segmenter, monkeypatch):
    """The scope verdict and the finding both ask for the B-mode check (and a frame without a
    nodule a third time): the frame is measured once; another scan area measures again."""
    from thyroid_desktop.core.analysis import AnalysisService
    from thyroid_desktop.core.pipeline import scope
    from thyroid_desktop.core.pipeline.fov import FieldOfView

    calls = []
    measure = scope._measure
    monkeypatch.setattr(scope, "_measure", lambda im, fov: calls.append(1) or measure(im, fov))
    image = from_array(make_phantom(seed=3).pixels)
    result = AnalysisService(classifier, segmenter, None).analyse(image)
    assert result.finding is not None and len(calls) == 1
    whole = FieldOfView.whole(image.width, image.height)
    assert check_scope(image, whole) == scope._measure(image, whole) and len(calls) == 3
