"""One module per kind of picture, each named for what it draws: heatmap (one head, any
matrix, curves), masks, model_view (layers × heads), head_view (BertViz-style lines),
qk_view (one query's q·k), long_input (overview, top-k), window (a zoom into a long map),
heads_row (a layer's heads by K/V group), kv_sharing, kv_cache, bars, decoding (generation
steps, top-k before/after), metrics, positions and steps (the worked example)."""
