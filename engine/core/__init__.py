"""The Transformer a learner reads, in this order: config, masks, positions, norms, attention,
transformer, kv_cache. Imports only torch, core/ and engine.fast."""
