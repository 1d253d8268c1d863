"""What the Census page shows of one finished census: the layers × heads maps (a metric, the
types), the table of every head, one head's distribution over the texts and the click-through
to that head on the Attention page, with the text where it scores highest."""

from __future__ import annotations

import math

import pandas as pd
import streamlit as st

from app_pages.attention.text import ATTENTION_TEXT
from app_pages.census.results import Census
from app_pages.census.text import CENSUS_TEXT
from app_pages.shared.download import figure_with_download
from app_pages.shared.i18n import tr, translator
from app_pages.shared.models import installed_models
from app_pages.shared.sidebar import current_style
from app_pages.shared.widget_state import hand_over, keep_valid
from engine.census.metrics import METRICS
from viz.figures.census import TYPES, census_heatmap, distribution_figure, type_heatmap

say = translator(CENSUS_TEXT)
ATTENTION_PAGE = "app_pages/attention/page.py"
# The per-text metric that shows a type best, for the head's default "where it scores
# highest" (a local head's highest *distance* would be its least local text).
TYPE_METRIC = {"previous-token": "prev_token", "sink": "first_token", "self": "self",
               "induction": "prev_token", "local": "prev_token", "broad": "entropy",
               "mixed": "entropy"}


def metric_name(metric: str) -> str:
    return say(f"metric_{metric}")


def shown_metrics(census: Census, block: str) -> list[str]:
    """Heads.parquet metrics with a value in `block` (cross attention has no distance)."""
    rows = census.heads[census.heads["block"] == block]
    out = [m for m in METRICS if rows[f"{m}_mean"].notna().any()]
    if "induction" in rows and rows["induction"].notna().any():
        out.append("induction")
    return out


def show_census(census: Census) -> None:
    style = current_style()
    m = census.manifest
    corpus = str((m.get("corpus") or {}).get("path", "?")).replace("`", "'")
    st.markdown(say("summary", model=m.get("model", "?"), n_texts=int(m.get("n_texts", 0)),
                    n_tokens=int(m.get("n_tokens", 0)), engine=m.get("engine", "?"),
                    elapsed=float(m.get("elapsed_s", 0.0)), corpus=corpus))
    if (m.get("truncated") or {}).get("count"):
        st.info(say("truncated_note", n=m["truncated"]["count"], max=m.get("max_tokens")))
    if (m.get("skipped_over_record_budget") or {}).get("count"):
        st.info(say("skipped_note", n=m["skipped_over_record_budget"]["count"]))
    blocks = census.blocks()
    keep_valid("census_block", blocks)
    block = (st.selectbox(say("block"), blocks, key="census_block") if len(blocks) > 1
             else blocks[0])
    heads = census.heads[census.heads["block"] == block].reset_index(drop=True)
    name = str(m.get("model", "census"))
    axes = dict(head_title=say("axis_head"), layer_title=say("axis_layer"))

    left, right = st.columns(2)
    with left:
        metrics = shown_metrics(census, block)
        keep_valid("census_metric", metrics)
        # Labels as a dict made in this run: a format_func that reads the language later
        # (AppTest formats values outside the run) would mix the languages.
        metric = st.selectbox(say("metric"), metrics, key="census_metric",
                              format_func={k: metric_name(k) for k in metrics}.get)
        column = "induction" if metric == "induction" else f"{metric}_mean"
        spread = None if metric == "induction" else census.grid(block, f"{metric}_std")
        fig = census_heatmap(census.grid(block, column), metric_name(metric), spread=spread,
                             title=say("map_title", metric=metric_name(metric),
                                       n=int(m.get("n_texts", 0))), style=style, **axes)
        figure_with_download(fig, "census_map", "dl_census_map", table=heads,
                             name=f"{name}_census_{metric}", width="content")
        st.caption(say("map_help"))
    with right:
        fig = type_heatmap(census.type_grid(block), names={t: say(f"type_{t}") for t in TYPES},
                           title=say("types_title"), style=style,
                           legend_title=say("types_title"), **axes)
        figure_with_download(fig, "census_types", "dl_census_types",
                             table=heads[["block", "layer", "head", "type"]],
                             name=f"{name}_census_types", width="content")
        st.caption(say("types_help"))

    table_and_head(census, block, heads, name, style)


def column_names(columns) -> dict[str, str]:
    """heads.parquet's column names as the table shows them (English: the file's own)."""
    names = {"layer": say("axis_layer"), "head": say("axis_head")}
    for c in columns:
        metric, _, stat = c.rpartition("_")
        if metric in METRICS and stat in ("mean", "std"):
            names[c] = say(f"col_{stat}", metric=say(f"short_{metric}"))
        elif f"col_{c}" in CENSUS_TEXT:
            names[c] = say(f"col_{c}")
    return names


def table_and_head(census: Census, block: str, heads: pd.DataFrame, name: str, style) -> None:
    st.subheader(say("table"))
    shown = heads.drop(columns=["block"]).assign(
        type=[say(f"type_{t}") if t in TYPES else t for t in heads["type"]])
    shown = shown.rename(columns=column_names(shown.columns))
    precision = int(st.session_state.get("precision", 3))

    def pick_row() -> None:  # a clicked row opens that head below
        rows = st.session_state["census_table"].selection.rows
        if rows:
            st.session_state["census_layer"] = int(heads["layer"].iloc[rows[0]])
            st.session_state["census_head"] = int(heads["head"].iloc[rows[0]])

    st.dataframe(shown.round(precision + 1), key="census_table", on_select=pick_row,
                 selection_mode="single-row", hide_index=True, height=360, width="stretch")

    st.subheader(say("head_section"))
    layers = sorted(int(v) for v in heads["layer"].unique())
    n_heads = sorted(int(v) for v in heads["head"].unique())
    keep_valid("census_layer", layers)
    keep_valid("census_head", n_heads)
    c = st.columns(3)
    with c[0]:
        layer = st.selectbox(say("layer"), layers, key="census_layer")
    with c[1]:
        head = st.selectbox(say("head"), n_heads, key="census_head")
    row = heads[(heads["layer"] == layer) & (heads["head"] == head)].iloc[0]
    per = census.head_texts(block, layer, head)
    ranks = [m for m in METRICS if per[m].notna().any()]
    here = (census.folder, block, layer, head)
    if st.session_state.get("census_rank_for") != here:  # a new head: its type's metric
        st.session_state["census_rank_for"] = here
        st.session_state["census_rank"] = TYPE_METRIC.get(str(row["type"]), "entropy")
    keep_valid("census_rank", ranks)
    with c[2]:
        metric = st.selectbox(say("rank_by"), ranks, key="census_rank",
                              format_func={k: metric_name(k) for k in ranks}.get)
    values = per[["text_id", metric, "text"]].dropna(subset=[metric])
    best = values.loc[values[metric].idxmax()] if len(values) else None
    fig = distribution_figure(
        per[metric].to_numpy(), metric_name(metric), text_ids=per["text_id"].to_numpy(),
        marked=None if best is None else int(best["text_id"]),
        title=say("dist_title", layer=layer, head=head, metric=metric_name(metric),
                  n=len(values)), style=style, count_title=say("texts_axis"))
    figure_with_download(fig, "census_dist", "dl_census_dist", table=values,
                         name=f"{name}_census_L{layer}_H{head}_{metric}")
    st.markdown(say("head_type", type=say(f"type_{row['type']}") if row["type"] in TYPES
                    else str(row["type"])))
    if best is None:
        return
    value = float(best[metric])
    st.markdown(say("best_text", metric=metric_name(metric), id=int(best["text_id"]),
                    value=f"{value:.{int(st.session_state.get('precision', 3))}f}"
                    if math.isfinite(value) else "—"))
    st.code(str(best["text"]), language=None, wrap_lines=True)
    click_through(name, block, layer, head, str(best["text"]))


def click_through(name: str, block: str, layer: int, head: int, text: str) -> None:
    """A button that opens this head on the Attention page, reading `text`; a message
    instead when that page cannot load the census's model here."""
    offered, missing = installed_models()  # what the Attention page's picker offers
    if name not in offered:
        if name in missing:
            st.warning(say("open_missing", name=name))
            st.code(missing[name], language="bash")
        else:
            st.info(say("open_unknown", name=name))
        return
    if st.button(say("open"), key="census_open", icon=":material/open_in_new:"):
        hand_over({"attn_model": name, "attn_text": text, "attn_kind": block,
                   "attn_layer": int(layer), "attn_head": int(head), "attn_generate": 0,
                   "attn_tab": tr(ATTENTION_TEXT, "tab_head")})
        st.switch_page(ATTENTION_PAGE)
