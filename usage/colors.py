"""One colour per model, the same on every page, chart and reload."""

import colorsys
import hashlib

# Lightness / saturation pairs: a second hash picks one, so two models whose hues land close
# together still tend to differ in tone (20 models on one chart stay apart).
_TONES = [(0.45, 0.70), (0.38, 0.80), (0.52, 0.60)]


def color_for_name(name):
    """A #rrggbb colour derived from the name alone, so it never depends on what else is shown."""
    digest = hashlib.sha256(name.encode()).digest()
    hue = int.from_bytes(digest[:2], "big") / 65536
    lightness, saturation = _TONES[digest[2] % len(_TONES)]
    red, green, blue = colorsys.hls_to_rgb(hue, lightness, saturation)
    return f"#{round(red * 255):02x}{round(green * 255):02x}{round(blue * 255):02x}"


def model_color(model):
    """The model's catalog colour if an operator set one, else the derived one."""
    return model.color or color_for_name(model.name)
