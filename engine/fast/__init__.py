"""Same numbers, less time: fused attention dispatch, query-blocked maps, packed projections."""
