"""engine.lessons.worked_example against the numbers printed in seeds/001_*.txt §2 (2-1 … 2-6).

Two paths, kept apart: the exact one (softmax as computed) and the seed's, which rounds the
softmax by hand "for readability" before forming the weighted values.
"""

from __future__ import annotations

import math

import pytest
import torch

from engine.lessons.worked_example import SECOND_HEAD, SEED_W_OUT, multi_head, worked_example

# --- numbers as the seed prints them -----------------------------------------------------
PRINTED_KEYS = [[0.0, 1.0, 1.0], [4.0, 4.0, 0.0], [2.0, 3.0, 1.0]]
PRINTED_QUERIES = [[1.0, 0.0, 2.0], [2.0, 2.0, 2.0], [2.0, 1.0, 3.0]]
PRINTED_VALUES = [[1.0, 2.0, 3.0], [2.0, 8.0, 0.0], [2.0, 6.0, 3.0]]
PRINTED_SCORES = [[2.0, 4.0, 4.0], [4.0, 16.0, 12.0], [4.0, 12.0, 10.0]]
PRINTED_SOFTMAX = [  # torch prints 5 significant digits: "6.3379e-02" …
    ["6.3379e-02", "4.6831e-01", "4.6831e-01"],
    ["6.0337e-06", "9.8201e-01", "1.7986e-02"],
    ["2.9539e-04", "8.8054e-01", "1.1917e-01"],
]
PRINTED_ROUNDED = [[0.0, 0.5, 0.5], [0.0, 1.0, 0.0], [0.0, 0.9, 0.1]]
PRINTED_WEIGHTED_VALUES = [  # §2-6, from the rounded weights; layout [key, query, dim]
    [[0.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 0.0, 0.0]],
    [[1.0, 4.0, 0.0], [2.0, 8.0, 0.0], [1.8, 7.2, 0.0]],
    [[1.0, 3.0, 1.5], [0.0, 0.0, 0.0], [0.2, 0.6, 0.3]],
]


def sig(x: float, digits: int) -> str:
    return f"{x:.{digits - 1}e}"


@pytest.fixture(scope="module")
def ex():
    return worked_example()


def test_projections_equal_the_printed_ones(ex):
    assert ex["keys"].tolist() == PRINTED_KEYS
    assert ex["queries"].tolist() == PRINTED_QUERIES
    assert ex["values"].tolist() == PRINTED_VALUES


def test_scores_equal_the_printed_ones_and_are_unscaled_by_default(ex):
    assert ex["scores"].tolist() == PRINTED_SCORES
    assert ex["scaled_scores"].tolist() == PRINTED_SCORES
    assert ex["scale_factor"] == 1.0 and ex["d_k"] == 3


@pytest.mark.parametrize("digits", [4, 5])
def test_softmax_matches_the_printed_digits(ex, digits):
    for row, printed_row in zip(ex["weights"].tolist(), PRINTED_SOFTMAX, strict=True):
        for value, printed in zip(row, printed_row, strict=True):
            assert sig(value, digits) == sig(float(printed), digits)


def test_exact_weights_rows_sum_to_one(ex):
    torch.testing.assert_close(ex["weights"].sum(-1), torch.ones(3, dtype=torch.float64))


def test_seed_rounded_path_reproduces_the_printed_weighted_values(ex):
    assert ex["seed_rounded_weights"].tolist() == PRINTED_ROUNDED
    got = ex["seed_weighted_values"]
    want = torch.tensor(PRINTED_WEIGHTED_VALUES, dtype=torch.float64)
    # printed with 4 decimals ("1.8000"): equal to every printed digit
    assert [[[f"{v:.4f}" for v in r] for r in m] for m in got.tolist()] == [
        [[f"{v:.4f}" for v in r] for r in m] for m in want.tolist()
    ]
    torch.testing.assert_close(got, want, rtol=0, atol=1e-12)


def test_seed_outputs_are_sums_of_its_weighted_values(ex):
    # §2-7 shows only a figure; the sums of §2-6's printed rows are [2, 7, 1.5] for input 1
    torch.testing.assert_close(
        ex["seed_outputs"],
        torch.tensor([[2.0, 7.0, 1.5], [2.0, 8.0, 0.0], [2.0, 7.8, 0.3]], dtype=torch.float64),
    )


def test_exact_path_is_kept_apart_from_the_seed_path(ex):
    w = [[float(p) for p in r] for r in PRINTED_SOFTMAX]
    values = torch.tensor(PRINTED_VALUES, dtype=torch.float64)
    exact_out = torch.tensor(w, dtype=torch.float64) @ values
    torch.testing.assert_close(ex["outputs"], exact_out, rtol=0, atol=5e-5)
    # independent hand sums for input 1: .063379·v1 + .46831·v2 + .46831·v3
    assert [round(v, 4) for v in ex["outputs"][0].tolist()] == [1.9366, 6.6831, 1.5951]
    assert not torch.allclose(ex["outputs"], ex["seed_outputs"])
    assert ex["matches_seed"] is True
    torch.testing.assert_close(ex["seed_difference"], ex["seed_outputs"] - ex["outputs"])
    # exact weighted values, the seed's layout [key, query, dim]
    torch.testing.assert_close(
        ex["weighted_values"], values[:, None] * ex["weights"].T[:, :, None]
    )
    torch.testing.assert_close(ex["weighted_values"].sum(0), ex["outputs"])


def test_scaling_divides_by_sqrt_dk_and_leaves_the_seed_path_alone():
    s = worked_example(scale=True)
    assert s["scale_factor"] == pytest.approx(1 / math.sqrt(3))
    torch.testing.assert_close(s["scaled_scores"], s["scores"] / math.sqrt(3))
    torch.testing.assert_close(s["weights"], torch.softmax(s["scores"] / math.sqrt(3), -1))
    assert s["matches_seed"] is False and s["seed_difference"] is None
    torch.testing.assert_close(
        s["seed_weighted_values"], torch.tensor(PRINTED_WEIGHTED_VALUES, dtype=torch.float64)
    )


def test_edited_inputs_flow_through_and_bad_cells_raise():
    x = [[1, 0, 0, 0], [0, 1, 0, 0], [0, 0, 1, 0]]
    e = worked_example(x=x)
    assert e["matches_seed"] is False
    torch.testing.assert_close(e["queries"], torch.tensor(x, dtype=torch.float64)
                               @ e["w_query"])
    with pytest.raises(ValueError, match="empty or non-finite"):
        worked_example(x=[[1, float("nan"), 0, 0]] * 3)
    with pytest.raises(ValueError, match="rows but X has"):
        worked_example(w_key=[[1, 0, 0]] * 3)
    with pytest.raises(ValueError, match="same d_k"):
        worked_example(w_key=[[1, 0]] * 4)


def test_multi_head_splits_one_projection_into_the_two_heads(ex):
    mh = ex["multi_head"]
    assert mh["n_heads"] == 2
    assert mh["queries"].shape == (3, 6) and mh["head_queries"].shape == (2, 3, 3)
    # head 1 is the single-head example; head 2 uses the documented SECOND_HEAD matrices
    torch.testing.assert_close(mh["head_queries"][0], ex["queries"])
    torch.testing.assert_close(mh["head_weights"][0], ex["weights"])
    torch.testing.assert_close(mh["head_outputs"][0], ex["outputs"])
    x = ex["x"]
    for name, part in (("w_query", "head_queries"), ("w_key", "head_keys"),
                       ("w_value", "head_values")):
        torch.testing.assert_close(
            mh[part][1], x @ torch.tensor(SECOND_HEAD[name], dtype=torch.float64)
        )
    assert mh["head_scores"][1].tolist() == [[2.0, 0.0, 2.0], [4.0, 8.0, 8.0], [4.0, 4.0, 6.0]]
    torch.testing.assert_close(mh["concat"], torch.cat(list(mh["head_outputs"]), dim=1))
    torch.testing.assert_close(
        mh["outputs"], mh["concat"] @ torch.tensor(SEED_W_OUT, dtype=torch.float64)
    )


def test_multi_head_heads_equal_torch_sdpa():
    """With scaling on, each head equals torch's fused attention on the split q, k, v."""
    mh = worked_example(scale=True)["multi_head"]

    def heads(m: torch.Tensor) -> torch.Tensor:
        return m.view(3, 2, 3).transpose(0, 1)  # [H, T, d]

    out = torch.nn.functional.scaled_dot_product_attention(
        heads(mh["queries"]), heads(mh["keys"]), heads(mh["values"])
    )
    torch.testing.assert_close(out, mh["head_outputs"])


def test_multi_head_rejects_uneven_split():
    x = torch.ones(3, 4, dtype=torch.float64)
    w = torch.ones(4, 5, dtype=torch.float64)
    with pytest.raises(ValueError, match="not divisible"):
        multi_head(x, w, w, w, torch.ones(5, 4, dtype=torch.float64), n_heads=2)
