"""The head census: what every attention head does across a corpus.

`python -m engine census --model minilm --out census/` runs a model over a corpus (the
bundled `assets/corpus/` by default), summarises each head with the Head metrics tab's
numbers (`metrics`), runs the induction probe of Olsson et al., 2022 (`probe`), labels every
head from documented thresholds (`labels`) and writes `heads.parquet`, `texts.parquet` and
`manifest.json` (`run`). The same census runs on Ray Data with `--engine ray` (`ray_run`).

Read in this order: corpus → metrics → probe → labels → settings → rows (one batch) → run
(the local run, parts, merge, manifest) → ray_run → cli.
"""
