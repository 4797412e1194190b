"""`dataengine gallery`: one image under every corruption and severity, as a labelled grid."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageFont

from corruptions import corrupt

LABEL_WIDTH = 150
HEADER_HEIGHT = 24


def corruption_gallery(
    image: np.ndarray, names: Sequence[str], severities: Sequence[int], seed: int = 0, tile_width: int = 240
) -> Image.Image:
    """Rows: corruptions; columns: the clean image, then each severity."""
    h, w = image.shape[:2]
    tile_height = max(1, round(h * tile_width / w))
    columns = 1 + len(severities)
    grid = Image.new("RGB", (LABEL_WIDTH + columns * tile_width, HEADER_HEIGHT + len(names) * tile_height), "white")
    draw = ImageDraw.Draw(grid)
    font = ImageFont.load_default(size=14)
    headers = ["clean"] + [f"severity {s}" for s in severities]
    for column, header in enumerate(headers):
        draw.text((LABEL_WIDTH + column * tile_width + 6, 4), header, fill="black", font=font)

    def tile(array: np.ndarray) -> Image.Image:
        return Image.fromarray(array).resize((tile_width, tile_height), Image.Resampling.LANCZOS)

    clean = tile(image)
    for row, name in enumerate(names):
        top = HEADER_HEIGHT + row * tile_height
        draw.text((6, top + tile_height // 2 - 8), name, fill="black", font=font)
        grid.paste(clean, (LABEL_WIDTH, top))
        for column, severity in enumerate(severities, start=1):
            grid.paste(tile(corrupt(image, name, severity, seed=seed)), (LABEL_WIDTH + column * tile_width, top))
    return grid
