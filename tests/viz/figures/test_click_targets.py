"""Model-view thumbnails are clickable across their whole area, not only at their centre:
each click target is a square marker about as large as its thumbnail."""

from __future__ import annotations

import numpy as np

from viz.figures.model_view import add_click_targets, model_view


def test_click_targets_cover_their_thumbnails():
    maps = list(np.random.default_rng(0).dirichlet(np.ones(10), size=(6, 12, 10)).astype("f4"))
    fig = add_click_targets(model_view(maps))
    targets = [t for t in fig.data if t.type == "scatter"]
    assert len(targets) == 72
    lay = fig.layout
    plot_w = lay.width - lay.margin.l - lay.margin.r
    thumb = plot_w * (lay.xaxis.domain[1] - lay.xaxis.domain[0])  # px of one thumbnail
    for t in targets:
        assert t.marker.symbol == "square"
        assert 0.8 * thumb <= t.marker.size <= thumb
