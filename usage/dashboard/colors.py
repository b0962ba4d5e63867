"""One colour per model, the same on every page, chart and reload.

An operator's ``Model.color`` wins. Otherwise the colour comes from the model's catalog id: the
first ids take a hand-picked palette of 24 colours that stay apart (hue and lightness), later ones
step by the golden angle through three tones. (A hash of the name was tried first: it is just as
stable, but random hues cluster, and five models already gave two pairs of near-twins; the golden
angle alone still gave near-twins such as #db2777 and #dd3c72 among 20 models.)

On one chart, ``chart_colors`` keeps every model's colour unless it would be hard to tell from a
busier model's: then it takes the first palette colour that is far from all colours already used.
"""

import colorsys
import hashlib

GOLDEN_RATIO = 0.6180339887498949
# Dark, medium and light tones (lightness, saturation), cycled along with the hue.
_TONES = [(0.42, 0.75), (0.32, 0.80), (0.55, 0.70)]

# Distinct on white and from each other (pairwise distance >= MIN_DISTANCE, tested).
PALETTE = [
    "#2563eb",  # blue
    "#ea580c",  # orange
    "#16a34a",  # green
    "#dc2626",  # red
    "#0891b2",  # cyan
    "#ca8a04",  # amber
    "#db2777",  # pink
    "#4b5563",  # grey
    "#65a30d",  # lime
    "#1e3a8a",  # navy
    "#facc15",  # yellow
    "#0f766e",  # teal
    "#a21caf",  # magenta
    "#854d0e",  # brown
    "#60a5fa",  # light blue
    "#fb923c",  # light orange
    "#4ade80",  # light green
    "#f87171",  # light red
    "#c084fc",  # lilac
    "#14532d",  # forest
    "#7f1d1d",  # maroon
    "#f472b6",  # light pink
    "#22d3ee",  # light cyan
    "#a3a3a3",  # silver
]
MIN_DISTANCE = 90  # "redmean" RGB distance (0-765); closer than this, two thin lines read as one colour


def _hex(hue, tone):
    lightness, saturation = _TONES[tone % len(_TONES)]
    red, green, blue = colorsys.hls_to_rgb(hue % 1, lightness, saturation)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def color_for_index(index):
    """The ``index``-th colour (1-based ids): the palette first, then an endless spread sequence."""
    if 1 <= index <= len(PALETTE):
        return PALETTE[index - 1]
    return _hex(index * GOLDEN_RATIO, index)


def color_for_name(name):
    """For a model not saved yet (no id): a colour from its name alone."""
    digest = hashlib.sha256(name.encode()).digest()
    return _hex(int.from_bytes(digest[:2], "big") / 65536, digest[2])


def model_color(model):
    if model.color:
        return model.color
    return color_for_index(model.pk) if model.pk else color_for_name(model.name)


def _rgb(color):
    color = color.lstrip("#")
    if len(color) == 3:
        color = "".join(part * 2 for part in color)
    return tuple(int(color[index : index + 2], 16) for index in (0, 2, 4))


def distance(first, second):
    """Perceptual-ish distance of two hex colours (the "redmean" weighting of RGB)."""
    (r1, g1, b1), (r2, g2, b2) = _rgb(first), _rgb(second)
    mean = (r1 + r2) / 2
    dr, dg, db = r1 - r2, g1 - g2, b1 - b2
    return ((2 + mean / 256) * dr * dr + 4 * dg * dg + (2 + (255 - mean) / 256) * db * db) ** 0.5


def chart_colors(models):
    """{model pk: colour} for models drawn together, busiest first.

    Operator colours are kept as they are; any other model keeps its own colour when it is far
    enough from those already taken, else it takes the first palette colour that is.
    """
    taken, result = [], {}
    for model in models:
        if model.color:
            result[model.pk] = model.color
            taken.append(model.color)
    for model in models:
        if model.color:
            continue
        color = model_color(model)
        if any(distance(color, other) < MIN_DISTANCE for other in taken):
            color = next((c for c in PALETTE if all(distance(c, o) >= MIN_DISTANCE for o in taken)), color)
        result[model.pk] = color
        taken.append(color)
    return result
