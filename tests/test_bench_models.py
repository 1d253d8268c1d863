"""bench/bench_models.py runs end to end at a tiny size (no timing asserted)."""

import json

from tests.conftest import needs_transformers


@needs_transformers
def test_bench_models_runs_and_merges_its_parts(tmp_path):
    from bench import bench_models

    args = ["--random", "--models", "minilm", "--lengths", "8", "--repeats", "1",
            "--skip-cold", "--skip-long", "--out", str(tmp_path)]
    first = bench_models.main(args)
    row = first["models"]["minilm"]["rows"][0]
    assert row["tokens"] == 8 and row["map_shapes_agree"]
    for key in ("full_ratio", "one_layer_ratio", "maps_only_ratio", "reference_no_maps_ratio"):
        assert row[key] > 0
    # A later run of other parts keeps this one's rows.
    saved = tmp_path / "models_cpu.json"
    data = json.loads(saved.read_text())
    data["models"]["gemma"] = {"rows": [], "run": {"command": "earlier"}}
    saved.write_text(json.dumps(data))
    bench_models.main(args)
    merged = json.loads(saved.read_text())
    assert set(merged["models"]) == {"minilm", "gemma"}
    assert merged["models"]["minilm"]["run"]["command"].startswith("python bench/bench_models.py")
