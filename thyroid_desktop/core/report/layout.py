"""Page layout for the PDF reports: text that wraps to the page width and flows onto the next
page, tables whose rows break between pages, and image panels; drawn with Matplotlib.

Content is first laid out into pages (lists of drawing operations, in points from the top-left
corner of an A4 page), so the page count is known before any page is drawn: every page then
gets the same header with "Page x of y" and the same footer. Nothing is placed outside the
content area and nothing is clipped: a line that does not fit starts a new page.

Speed: text in the PDF core fonts (Helvetica, not embedded: nothing to subset) whenever every
character can be written in them (Windows-1252), else DejaVu Sans embedded as TrueType; one
figure reused for every page, each page drawn by one artist straight through the renderer (no
``Text`` or ``Axes`` per line or image); images reduced to the resolution the page shows them
at, grey ones as one channel, a view under its heat map embedded once.
"""

from __future__ import annotations

import io
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from functools import cache

import numpy as np

#: A4 in points (1/72 inch).
PAGE_W, PAGE_H = 595.28, 841.89
MARGIN_X = 42.0
#: The content area between the header and the footer (points from the top).
CONTENT_TOP, CONTENT_BOTTOM = 92.0, PAGE_H - 46.0
CONTENT_W = PAGE_W - 2 * MARGIN_X
#: Between columns (image panels, a picture and the text beside it).
GAP = 14.0
#: Line pitch as a multiple of the font size.
LEADING = 1.28
#: Images are embedded at no more than this resolution where the page shows them.
IMAGE_DPI = 150.0
#: Measured widths are stretched by this much before wrapping (kerning, rounding).
WIDTH_SAFETY = 1.03

INK = "#111111"
MUTED = "#555555"
WARN = "#b00020"
RULE = "#999999"
SHADE = "#e8ecef"


# ----------------------------------------------------------------------------- measuring
@cache
def _char_widths(bold: bool) -> dict[str, float]:
    """Each character's advance (per point of font size), filled as characters are met."""
    return {}


@cache
def _font(bold: bool):
    from matplotlib.font_manager import FontProperties, findfont, get_font

    path = findfont(FontProperties(family="DejaVu Sans", weight="bold" if bold else "normal"))
    return get_font(path)


def text_width(text: str, size: float, bold: bool = False) -> float:
    """The width of ``text`` in points at ``size`` in DejaVu Sans, which is wider than the core
    font Helvetica: a line that fits by this measure fits in either font."""
    widths = _char_widths(bold)
    total = 0.0
    for ch in text:
        w = widths.get(ch)
        if w is None:
            font = _font(bold)
            font.set_size(100.0, 72)
            font.set_text(ch, 0.0)
            w = widths[ch] = font.get_width_height()[0] / 64.0 / 100.0
        total += w
    return total * size * WIDTH_SAFETY


def _break_word(word: str, width: float, size: float, bold: bool) -> list[str]:
    """A word longer than a line (a path, a hash) cut into pieces that fit."""
    pieces, current = [], ""
    for ch in word:
        if current and text_width(current + ch, size, bold) > width:
            pieces.append(current)
            current = ch
        else:
            current += ch
    return pieces + ([current] if current else [])


def wrap(text: str, width: float, size: float, bold: bool = False) -> list[str]:
    """``text`` as lines no wider than ``width`` points; its own line breaks are kept (an
    empty line stays empty). Nothing is dropped."""
    lines: list[str] = []
    for paragraph in str(text).replace("\r\n", "\n").split("\n"):
        words = paragraph.split()
        if not words:
            lines.append("")
            continue
        current = ""
        for word in words:
            candidate = f"{current} {word}" if current else word
            if text_width(candidate, size, bold) <= width:
                current = candidate
                continue
            if current:
                lines.append(current)
            if text_width(word, size, bold) <= width:
                current = word
            else:
                *full, current = _break_word(word, width, size, bold)
                lines.extend(full)
        lines.append(current)
    return lines


def line_height(size: float) -> float:
    return size * LEADING


# ----------------------------------------------------------------------------- operations
@dataclass(frozen=True)
class Text:
    """One line of text; ``y`` is the top of its line box."""

    x: float
    y: float
    text: str
    size: float
    bold: bool = False
    color: str = INK
    align: str = "left"


@dataclass(frozen=True)
class Rule:
    x0: float
    y0: float
    x1: float
    y1: float
    color: str = RULE
    width: float = 0.6


@dataclass(frozen=True)
class Shade:
    x: float
    y: float
    w: float
    h: float
    color: str = SHADE


@dataclass(frozen=True)
class Mark:
    """A line drawn over a picture, in the original image's pixels: a polyline (a polygon
    when ``closed``), with a "+" at both ends when ``ends``, and ``label`` beside its end."""

    points: tuple[tuple[float, float], ...]
    colour: str
    width: float = 1.0
    closed: bool = False
    ends: bool = False
    label: str = ""


@dataclass(frozen=True)
class Picture:
    """An image in the box (x, y, w, h) in points, with ``marks`` over it (box, outline,
    calipers) in the pixels of the original image, whose width and height are ``size`` when
    ``pixels`` is a reduced copy."""

    x: float
    y: float
    w: float
    h: float
    pixels: np.ndarray = field(repr=False)
    marks: tuple[Mark, ...] = ()
    size: tuple[int, int] | None = None
    #: An RGBA image drawn over ``pixels`` (a heat map): the image underneath is the same
    #: object as the plain view's, so the PDF holds it once.
    layer: np.ndarray | None = field(default=None, repr=False)

    @property
    def original_size(self) -> tuple[int, int]:
        return self.size or (self.pixels.shape[1], self.pixels.shape[0])


Operation = Text | Rule | Shade | Picture


def picture_size(pixels: np.ndarray, w: float, h: float) -> tuple[float, float]:
    """The size in points of an image fitted into ``w`` x ``h`` points."""
    ih, iw = pixels.shape[:2]
    s = min(w / iw, h / ih)
    return iw * s, ih * s


def reduced(pixels: np.ndarray, w_pt: float) -> np.ndarray:
    """The image at no more pixels than the page shows (``IMAGE_DPI``), for speed and size;
    ``pixels`` itself when it is small enough."""
    import cv2

    target = int(np.ceil(w_pt / 72.0 * IMAGE_DPI))
    h, w = pixels.shape[:2]
    if w <= target:
        return pixels
    return cv2.resize(pixels, (target, max(1, round(h * target / w))), interpolation=cv2.INTER_AREA)


def _resized(image: np.ndarray, w: int, h: int) -> np.ndarray:
    import cv2

    return cv2.resize(image, (w, h), interpolation=cv2.INTER_AREA)


class _Reduced:
    """The reduced copies made for one report, by (image, width): a view drawn twice (plain
    and under its heat map) is reduced, converted and embedded once."""

    def __init__(self) -> None:
        self._cache: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, pixels: np.ndarray, w_pt: float) -> np.ndarray:
        key = (id(pixels), round(w_pt))
        hit = self._cache.get(key)
        if hit is None or hit[0] is not pixels:
            hit = self._cache[key] = (pixels, reduced(pixels, w_pt))
        return hit[1]


# ----------------------------------------------------------------------------- flow
class Flow:
    """Lays content down the pages. Each page is a list of operations; ``new_page`` starts
    another (with ``continued``, a line saying what continues, when given)."""

    def __init__(self, top: float = CONTENT_TOP) -> None:
        self.pages: list[list[Operation]] = []
        self.top = top
        self.y = top
        self.continued = ""
        self._reduced = _Reduced()

    @property
    def page(self) -> list[Operation]:
        return self.pages[-1]

    @property
    def room(self) -> float:
        return CONTENT_BOTTOM - self.y

    def new_page(self, continued: str = "") -> None:
        """Starts a page; ``continued`` (e.g. "N3 (continued)") heads it and every later
        page this section flows onto, until the next ``new_page``."""
        self.pages.append([])
        self.y = self.top
        self.continued = continued

    def _overflow(self) -> None:
        self.pages.append([])
        self.y = self.top
        if self.continued:
            for line in wrap(self.continued, CONTENT_W, 9.0, True):
                self.add(Text(MARGIN_X, self.y, line, 9.0, True, MUTED))
                self.y += line_height(9.0)
            self.y += 4

    def need(self, height: float) -> None:
        """A page break unless ``height`` points still fit on this page."""
        if self.y + height > CONTENT_BOTTOM and self.y > self.top + 30:
            self._overflow()

    def add(self, op: Operation) -> None:
        self.page.append(op)

    def space(self, points: float) -> None:
        self.y = min(self.y + points, CONTENT_BOTTOM)

    def lines(
        self,
        lines: Sequence[str],
        x: float = MARGIN_X,
        size: float = 8.5,
        bold: bool = False,
        color: str = INK,
        keep_last: int = 0,
        keep_after: float = 0.0,
    ) -> None:
        """Places lines one under another, breaking pages between lines; the last
        ``keep_last`` lines stay on one page with ``keep_after`` points of what follows."""
        h = line_height(size)
        n = len(lines)
        for i, line in enumerate(lines):
            if keep_last and i == max(0, n - keep_last):
                self.need(h * (n - i) + keep_after)
            self.need(h)
            if line:
                self.add(Text(x, self.y, line, size, bold, color))
            self.y += h

    def paragraph(self, text: str, x: float = MARGIN_X, width: float = CONTENT_W, **style) -> None:
        size = style.get("size", 8.5)
        self.lines(wrap(text, width, size, style.get("bold", False)), x, **style)

    def heading(
        self, text: str, size: float = 10.5, x: float = MARGIN_X, width: float = CONTENT_W
    ) -> None:
        """A section heading, kept with at least three lines of what follows."""
        self.need(line_height(size) + 6 + 3 * line_height(8.5))
        self.space(4)
        for line in wrap(text, width, size, True):
            self.add(Text(x, self.y, line, size, True))
            self.y += line_height(size)
        self.add(Rule(x, self.y, x + width, self.y, RULE, 0.4))
        self.y += 3

    def row(
        self,
        key: str,
        value: str,
        key_w: float = 112.0,
        size: float = 8.5,
        color: str = INK,
        x: float = MARGIN_X,
        width: float = CONTENT_W,
    ) -> None:
        """``key`` in bold, ``value`` wrapped beside it; breaks between the value's lines."""
        key_lines = wrap(key, key_w - 6, size, True)
        value_lines = wrap(value or "-", width - key_w, size)
        h = line_height(size)
        self.need(h * min(len(value_lines), 2))
        for i, line in enumerate(value_lines):
            if i:
                self.need(h)
            if i < len(key_lines):
                self.add(Text(x, self.y, key_lines[i], size, True))
            if line:
                self.add(Text(x + key_w, self.y, line, size, False, color))
            self.y += h
        for extra in key_lines[len(value_lines) :]:
            self.add(Text(x, self.y, extra, size, True))
            self.y += h

    def table(
        self,
        header: Sequence[str],
        rows: Sequence[Sequence[str]],
        widths: Sequence[float],
        size: float = 7.8,
    ) -> None:
        """A table with a shaded header row, repeated on every page it flows onto; each cell
        wraps in its column and a row never splits across pages."""
        pad, h = 3.0, line_height(size)
        xs = [MARGIN_X + sum(widths[:i]) for i in range(len(widths))]
        right = MARGIN_X + sum(widths)

        def cells(values: Sequence[str], bold: bool) -> list[list[str]]:
            return [
                wrap(v or "-", w - 2 * pad, size, bold) for v, w in zip(values, widths, strict=True)
            ]

        def draw_row(wrapped: list[list[str]], bold: bool, shaded: bool) -> None:
            height = max(len(c) for c in wrapped) * h + 2 * pad
            if shaded:
                self.add(Shade(MARGIN_X, self.y, right - MARGIN_X, height))
            for x, lines in zip(xs, wrapped, strict=True):
                for i, line in enumerate(lines):
                    if line:
                        self.add(Text(x + pad, self.y + pad + i * h, line, size, bold))
            self.y += height
            self.add(Rule(MARGIN_X, self.y, right, self.y, RULE, 0.4))

        head = cells(header, True)
        head_h = max(len(c) for c in head) * h + 2 * pad
        first = True
        for values in rows:
            wrapped = cells(values, False)
            height = max(len(c) for c in wrapped) * h + 2 * pad
            if first:
                self.need(head_h + height)
            elif self.y + height > CONTENT_BOTTOM:
                self._overflow()
                first = True
            if first:
                draw_row(head, True, True)
                first = False
            draw_row(wrapped, False, False)
        self.y += 4

    def pictures(
        self, panels: Sequence[tuple[str, Picture | str]], height: float, columns: int = 0
    ) -> float:
        """A row of captioned image panels side by side (a panel given as text says why there
        is no image), in ``columns`` equal columns (default: one per panel); returns the
        row's bottom."""
        n = columns or len(panels)
        w = (CONTENT_W - GAP * (n - 1)) / n
        caption_size = 7.6
        captions = [wrap(c, w, caption_size, True) for c, _ in panels]
        cap_h = max(len(c) for c in captions) * line_height(caption_size) + 2
        sizes = [
            picture_size(c.pixels, w, height) if isinstance(c, Picture) else (w, height * 0.4)
            for _, c in panels
        ]
        row_h = max(h for _, h in sizes)  # as tall as the tallest picture, no taller
        self.need(cap_h + row_h)
        top = self.y
        for i, ((_, content), caption, (pw, ph)) in enumerate(
            zip(panels, captions, sizes, strict=True)
        ):
            x = MARGIN_X + i * (w + GAP)
            for k, line in enumerate(caption):
                self.add(Text(x, top + k * line_height(caption_size), line, caption_size, True))
            if isinstance(content, Picture):
                small = self._reduced(content.pixels, pw)
                layer = content.layer
                if layer is not None and layer.shape[:2] != small.shape[:2]:
                    layer = _resized(layer, small.shape[1], small.shape[0])
                size = content.original_size
                self.add(Picture(x, top + cap_h, pw, ph, small, content.marks, size, layer))
            else:
                self.add(Shade(x, top + cap_h, pw, ph, "#f4f4f4"))
                for k, line in enumerate(wrap(content, w - 12, 8.0)):
                    self.add(Text(x + 6, top + cap_h + 8 + k * line_height(8.0), line, 8.0))
        self.y = top + cap_h + row_h + 6
        return self.y


# ----------------------------------------------------------------------------- drawing
def core_fonts_suffice(pages: Sequence[Sequence[Operation]], *extra: str) -> bool:
    """True when every text can be written in the PDF core fonts (Windows-1252)."""
    texts = [op.text for page in pages for op in page if isinstance(op, Text)] + list(extra)
    try:
        "".join(texts).encode("cp1252")
    except UnicodeEncodeError:
        return False
    return True


#: The regular weight by the name each font has it under: the core font Helvetica's AFM
#: says "medium", DejaVu Sans says "normal" (another name makes findfont warn).
_REGULAR = {True: "medium", False: "normal"}


def _page_artist(ops: Sequence[Operation], for_pdf: _PdfImages, core: bool):
    """One artist that draws a page straight through the renderer (text, rules, shades and
    pictures with their marks): hundreds of lines per page without a Matplotlib ``Text``, and
    images without an ``Axes``, each of which costs milliseconds to set up."""
    from matplotlib.artist import Artist
    from matplotlib.font_manager import FontProperties
    from matplotlib.path import Path
    from matplotlib.transforms import Affine2D, Bbox, IdentityTransform

    props: dict[tuple[float, bool], FontProperties] = {}

    def prop(size: float, bold: bool) -> FontProperties:
        key = (size, bold)
        if key not in props:
            props[key] = FontProperties(size=size, weight="bold" if bold else _REGULAR[core])
        return props[key]

    class PageArtist(Artist):
        def draw(self, renderer) -> None:
            k = renderer.points_to_pixels(1.0)
            top = PAGE_H * k
            identity = IdentityTransform()

            def text(gc, x: float, y: float, s: str, size: float, bold: bool, right=False):
                fp = prop(size, bold)
                if right:
                    x -= renderer.get_text_width_height_descent(s, fp, False)[0]
                renderer.draw_text(gc, x, y, s, fp, 0)

            for op in ops:
                gc = renderer.new_gc()
                if isinstance(op, Text):
                    gc.set_foreground(op.color)
                    # The line box's top is op.y; the baseline lies about 0.8 em below it.
                    y = top - (op.y + 0.8 * op.size) * k
                    text(gc, op.x * k, y, op.text, op.size, op.bold, op.align == "right")
                elif isinstance(op, Rule):
                    gc.set_foreground(op.color)
                    gc.set_linewidth(op.width)
                    path = Path([[op.x0 * k, top - op.y0 * k], [op.x1 * k, top - op.y1 * k]])
                    renderer.draw_path(gc, path, identity)
                elif isinstance(op, Shade):
                    gc.set_linewidth(0)
                    x0, x1 = op.x * k, (op.x + op.w) * k
                    y0, y1 = top - op.y * k, top - (op.y + op.h) * k
                    path = Path([[x0, y0], [x1, y0], [x1, y1], [x0, y1], [x0, y0]], closed=True)
                    renderer.draw_path(gc, path, identity, _rgb(op.color))
                elif isinstance(op, Picture):
                    x0, y0 = op.x * k, top - (op.y + op.h) * k
                    w, h = op.w * k, op.h * k
                    unit = Affine2D().scale(w, h)
                    renderer.draw_image(gc, x0, y0, for_pdf(op.pixels), unit)
                    if op.layer is not None:
                        renderer.draw_image(gc, x0, y0, for_pdf(op.layer), unit)
                    iw, ih = op.original_size
                    to_page = Affine2D().scale(w / iw, -h / ih).translate(x0, y0 + h)
                    gc.set_clip_rectangle(Bbox.from_bounds(x0, y0, w, h))
                    for mark in op.marks:
                        _draw_mark(renderer, gc, mark, to_page, (x0, y0, w, h), text, k)
                gc.restore()

    return PageArtist()


def _draw_mark(renderer, gc, mark: Mark, to_page, box, text, k: float) -> None:
    from matplotlib.path import Path

    pts = np.asarray(mark.points, float)
    if len(pts) == 0:
        return
    gc.set_foreground(mark.colour)
    gc.set_linewidth(mark.width)
    codes = None
    if mark.closed:
        pts = np.vstack([pts, pts[:1]])
        codes = [Path.MOVETO] + [Path.LINETO] * (len(pts) - 2) + [Path.CLOSEPOLY]
    renderer.draw_path(gc, Path(pts, codes), to_page)
    page = to_page.transform(pts)
    if mark.ends:
        arm = 2.5 * k
        for px, py in (page[0], page[-1]):
            for dx, dy in ((arm, 0), (0, arm)):
                segment = Path([[px - dx, py - dy], [px + dx, py + dy]])
                renderer.draw_path(gc, segment, _identity())
    if mark.label:
        x0, y0, w, h = box
        size = 6.5
        px, py = max(page, key=lambda p: p[0])  # beside the right-hand end
        width = text_width(mark.label, size) * k
        lx = px + 2 * k if px + 2 * k + width <= x0 + w else px - 2 * k - width
        ly = min(max(py + 2 * k, y0 + 2 * k), y0 + h - size * k)
        text(gc, max(lx, x0), ly, mark.label, size, False)


@cache
def _identity():
    from matplotlib.transforms import IdentityTransform

    return IdentityTransform()


class _PdfImages:
    """The images as the PDF renderer takes them: rows bottom-up; grey as one channel (a
    third of the bytes to compress); RGBA keeps its alpha (a soft mask). One array per image,
    so an image drawn twice is embedded once (the renderer keys images by the array)."""

    def __init__(self) -> None:
        self._cache: dict[int, tuple[np.ndarray, np.ndarray]] = {}

    def __call__(self, pixels: np.ndarray) -> np.ndarray:
        hit = self._cache.get(id(pixels))
        if hit is not None and hit[0] is pixels:
            return hit[1]
        out = pixels[..., None] if pixels.ndim == 2 else pixels
        if (
            out.shape[2] == 3
            and np.array_equal(out[..., 0], out[..., 1])
            and np.array_equal(out[..., 0], out[..., 2])
        ):
            out = out[..., :1]
        out = np.ascontiguousarray(out[::-1])
        self._cache[id(pixels)] = (pixels, out)
        return out


def _rgb(colour: str) -> tuple[float, float, float]:
    from matplotlib.colors import to_rgb

    return to_rgb(colour)


def render(
    pages: Sequence[Sequence[Operation]],
    decorate: Callable[[int, int], Sequence[Operation]],
    metadata: dict[str, str] | None = None,
) -> bytes:
    """The PDF of ``pages``; ``decorate(number, total)`` gives each page's header and footer
    (numbers from 1)."""
    import matplotlib
    from matplotlib.backends.backend_pdf import PdfPages
    from matplotlib.figure import Figure

    total = len(pages)
    decorations = [list(decorate(i + 1, total)) for i in range(total)]
    core = core_fonts_suffice([*pages, *decorations], *(metadata or {}).values())
    rc: dict[str, object] = {"pdf.fonttype": 42}  # TrueType, when DejaVu is embedded
    if core:
        rc |= {
            "pdf.use14corefonts": True,
            "font.family": "sans-serif",
            "font.sans-serif": ["Helvetica"],
        }
    else:
        rc |= {"font.family": "sans-serif", "font.sans-serif": ["DejaVu Sans"]}
    buffer = io.BytesIO()
    for_pdf = _PdfImages()
    with matplotlib.rc_context(rc), PdfPages(buffer, metadata=metadata) as pdf:
        fig = Figure(figsize=(PAGE_W / 72.0, PAGE_H / 72.0))
        for page, decoration in zip(pages, decorations, strict=True):
            fig.clear()
            fig.add_artist(_page_artist((*decoration, *page), for_pdf, core))
            pdf.savefig(fig)
    return buffer.getvalue()
