"""Rendering: a scene drawn as a small RGB image, a pure function of the scene and the image size.

Shapes are drawn at SUPERSAMPLE times the size and box-filtered down, and text takes the largest default-font size
that fits its cell; nothing here draws from a random generator, so the same scene always gives the same pixels.
"""

from __future__ import annotations

from functools import lru_cache

from PIL import Image, ImageDraw, ImageFont

from raylayers.world.scene import SIZE_RADIUS, Scene

SUPERSAMPLE = 2
"""Draw at twice the size and box-filter down: smooth edges keep small diamonds apart from small squares."""


@lru_cache(maxsize=None)
def _font(size: int) -> ImageFont.FreeTypeFont:
    return ImageFont.load_default(size=size)


@lru_cache(maxsize=None)
def _fitted_font(text: str, cell_px: int) -> ImageFont.FreeTypeFont:
    """The largest font (up to ~60% of the cell) whose rendering of `text` fits the cell width."""
    size = max(6, int(cell_px * 0.6))
    while size > 6:
        left, _, right, _ = _font(size).getbbox(text)
        if right - left <= cell_px * 0.92:
            break
        size -= 1
    return _font(size)


def render_scene(scene: Scene, image_size: int) -> Image.Image:
    """The scene as an image_size x image_size RGB image: background clutter, then the shapes, then the text."""
    canvas_size = image_size * SUPERSAMPLE
    cell = canvas_size / scene.grid
    image = Image.new("RGB", (canvas_size, canvas_size), scene.background)
    draw = ImageDraw.Draw(image)
    grey = (scene.clutter_grey,) * 3
    for line in scene.clutter_lines:
        draw.line([value * canvas_size for value in line], fill=grey, width=SUPERSAMPLE)
    for x, y in scene.clutter_dots:
        draw.rectangle([x * canvas_size, y * canvas_size, x * canvas_size + SUPERSAMPLE - 1,
                        y * canvas_size + SUPERSAMPLE - 1], fill=grey)  # fmt: skip

    for obj in scene.objects:
        cx = (obj.col + 0.5 + obj.shift[0]) * cell
        cy = (obj.row + 0.5 + obj.shift[1]) * cell
        r = SIZE_RADIUS[obj.size] * cell
        if obj.shape == "circle":
            draw.ellipse([cx - r, cy - r, cx + r, cy + r], fill=obj.rgb)
        elif obj.shape == "square":
            half = r * 0.85  # a square of the full radius looks much bigger than a circle of it
            draw.rectangle([cx - half, cy - half, cx + half, cy + half], fill=obj.rgb)
        elif obj.shape == "triangle":
            draw.polygon([(cx, cy - r), (cx + r, cy + r * 0.8), (cx - r, cy + r * 0.8)], fill=obj.rgb)
        else:  # diamond
            draw.polygon([(cx, cy - r), (cx + r * 0.8, cy), (cx, cy + r), (cx - r * 0.8, cy)], fill=obj.rgb)

    if scene.text is not None:
        row, col = scene.text_cell
        font = _fitted_font(scene.text, int(cell))
        draw.text(((col + 0.5) * cell, (row + 0.5) * cell), scene.text, fill=scene.text_rgb, font=font, anchor="mm")
    return image.reduce(SUPERSAMPLE)
