"""One colour per model, the same on every page, chart and reload.

An operator's ``Model.color`` wins. Otherwise the colour comes from the model's catalog id: hues
step by the golden angle, so models added one after another land far apart on the colour wheel
and 20 lines on one chart stay distinguishable. (A hash of the name was tried first: it is just
as stable, but random hues cluster, and five models already gave two pairs of near-twins.)
"""

import colorsys
import hashlib

GOLDEN_RATIO = 0.6180339887498949
# Dark, medium and light tones (lightness, saturation), cycled along with the hue.
_TONES = [(0.42, 0.75), (0.32, 0.80), (0.55, 0.70)]


def _hex(hue, tone):
    lightness, saturation = _TONES[tone % len(_TONES)]
    red, green, blue = colorsys.hls_to_rgb(hue % 1, lightness, saturation)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def color_for_index(index):
    """The ``index``-th colour of an endless, evenly spread sequence."""
    return _hex(index * GOLDEN_RATIO, index)


def color_for_name(name):
    """For a model not saved yet (no id): a colour from its name alone."""
    digest = hashlib.sha256(name.encode()).digest()
    return _hex(int.from_bytes(digest[:2], "big") / 65536, digest[2])


def model_color(model):
    if model.color:
        return model.color
    return color_for_index(model.pk) if model.pk else color_for_name(model.name)
