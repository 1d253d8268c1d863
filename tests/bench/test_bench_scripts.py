"""The benchmark scripts run end to end at a tiny size (no timing asserted; bench_kv has its
own file)."""

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


def test_bench_engine_vs_torch_agrees_before_it_times(tmp_path):
    from bench import bench_engine_vs_torch

    result = bench_engine_vs_torch.main(["--small", "--batch", "2", "--length", "8",
                                         "--repeats", "1", "--out", str(tmp_path)])
    assert result["agreement"]["maps_max_abs_diff"] < 1e-5
    assert [r["path"] for r in result["rows"]] == ["fused", "weights"]
    assert (tmp_path / "engine_vs_torch_cpu.json").exists()


def test_bench_blocks_times_every_path(tmp_path):
    from bench import bench_blocks

    rows = bench_blocks.main(["--lengths", "64", "--repeats", "1", "--out", str(tmp_path)])
    assert {r["window"] for r in rows} == {None, 512}
    assert all(r["maps, blocks"] > 0 and r["fused, dense"] > 0 for r in rows)
    assert (tmp_path / "blocks_cpu.json").exists()
