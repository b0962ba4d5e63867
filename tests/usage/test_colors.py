"""Model colours stay apart on one chart, and an operator's colour wins."""

import itertools

from usage.dashboard.colors import MIN_DISTANCE, PALETTE, chart_colors, color_for_index, distance
from usage.models import Model


def test_the_palette_stays_apart_and_comes_first():
    assert len(set(PALETTE)) == 24
    assert min(distance(a, b) for a, b in itertools.combinations(PALETTE, 2)) >= MIN_DISTANCE
    assert [color_for_index(index) for index in range(1, 25)] == PALETTE


def test_near_twins_on_one_chart_are_separated_and_own_colours_kept():
    models = [Model(pk=1, name="public/deepseek-r1", color="#7c3aed")]
    models += [Model(pk=pk, name=f"m{pk}") for pk in range(100, 140)]  # beyond the palette: golden-angle colours
    colors = chart_colors(models)
    assert colors[1] == "#7c3aed"
    assert len(colors) == 41
    first_24 = [colors[model.pk] for model in models[:24]]
    assert min(distance(a, b) for a, b in itertools.combinations(first_24, 2)) >= MIN_DISTANCE
    assert distance("#db2777", "#dd3c72") < MIN_DISTANCE  # the pair the issue saw is now "too close"
