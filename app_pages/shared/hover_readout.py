"""The exact query token, key token and weight under the pointer on a full-resolution map.

viz.figures.image_map draws a long map as one PNG, so Plotly's hover knows only the pixel's
position. This component, which has no frame of its own, finds that figure in the page by the
`meta` id of its Image trace. It listens to Plotly's hover events and shows the two tokens
and the exact float32 weight of the cell, at any zoom. The weights travel once per map and
session, as zlib-compressed float32 in base64, and the browser's own decoders unpack them
(a data URL, then DecompressionStream).

Tokens are user text, so they reach the page only through `textContent` and are never parsed
as HTML. The JS below is the app's own code: nothing from the user becomes script.
"""

from __future__ import annotations

import base64
import concurrent.futures
import dataclasses
import hashlib
import zlib
from collections.abc import Sequence

import numpy as np
import streamlit as st

from viz.style import visible_token

# Up to 4.5M cells (a 2,100-token map), the exact weights travel with the map: 18 MB of
# float32. Past that, the readout shows the tokens and positions, and says that the exact
# weights are in the window view.
EXACT_MAX_CELLS = 4_500_000

_JS = r"""
const hooks = window.__attnReadout || (window.__attnReadout = {maps: {}, timer: null});

function tip() {
  let el = document.getElementById("attn-readout-tip");
  if (!el) {
    el = document.createElement("div");
    el.id = "attn-readout-tip";
    el.setAttribute("data-testid", "attn-readout");
    Object.assign(el.style, {position: "fixed", zIndex: 10000, pointerEvents: "none",
      background: "rgba(255,255,255,0.96)", color: "#111", border: "1px solid #999",
      borderRadius: "4px", padding: "4px 7px", font: "12px/1.35 sans-serif",
      whiteSpace: "pre", display: "none", boxShadow: "0 1px 4px rgba(0,0,0,0.2)"});
    document.body.appendChild(el);
  }
  return el;
}

function describe(map, i, j) {
  const w = map.words;
  const lines = [`${w.query} ${i}: ${map.q[i] ?? ""}`, `${w.key} ${j}: ${map.k[j] ?? ""}`];
  if (map.weights) lines.push(`${w.weight} ${map.weights[i * map.tk + j].toPrecision(6)}`);
  else lines.push(map.pending ? w.loading : w.no_exact);
  return lines.join("\n");
}

function attach(gd) {
  if (gd.__attnHooked || !gd.on || !gd.data) return;
  const trace = gd.data.find(t => t.type === "image" && t.meta && hooks.maps[t.meta]);
  if (!trace) return;
  gd.__attnHooked = true;
  gd.on("plotly_hover", ev => {
    const pt = ev.points && ev.points[0];
    const map = pt && hooks.maps[pt.data.meta];
    if (!map) return;
    const i = Math.round(pt.y), j = Math.round(pt.x);
    if (i < 0 || j < 0 || i >= map.tq || j >= map.tk) return;
    const el = tip();
    el.textContent = describe(map, i, j);
    el.style.display = "block";
    el.style.left = `${ev.event.clientX + 14}px`;
    el.style.top = `${ev.event.clientY + 14}px`;
  });
  gd.on("plotly_unhover", () => { tip().style.display = "none"; });
}

export default function(component) {
  const d = component.data;
  if (!d || !d.id) return;
  const old = hooks.maps[d.id];
  const labels = {q: d.q, k: d.k, tq: d.tq, tk: d.tk, precision: d.precision, words: d.words};
  if (d.same && old && old.sig === d.sig) {  // sent before (perhaps still arriving): keep it
    Object.assign(old, labels);
  } else {
    hooks.maps[d.id] = Object.assign(labels, {sig: d.sig, weights: null, pending: !!d.weights});
  }
  const map = hooks.maps[d.id];
  if (d.weights && map.pending && !map.fetching) {  // zlib'd little-endian float32, base64
    map.fetching = true;
    fetch(`data:application/octet-stream;base64,${d.weights}`)
      .then(r => r.blob())
      .then(b => new Response(b.stream().pipeThrough(new DecompressionStream("deflate")))
        .arrayBuffer())
      .then(buf => { map.weights = new Float32Array(buf); })
      .finally(() => { map.pending = false; });
  }
  const scan = () => document.querySelectorAll(".js-plotly-plot").forEach(attach);
  scan();
  if (!hooks.timer) hooks.timer = setInterval(scan, 400);  // charts redrawn after a rerun
}
"""

_readout = st.components.v2.component("attention_studio.hover_readout", js=_JS,
                                      isolate_styles=False)


@dataclasses.dataclass(frozen=True)
class Prepared:
    """A map's signature, whether this session has its weights already, and (if not) its
    encoded weights being made in a worker thread."""

    sig: str
    shape: tuple[int, int]
    same: bool
    weights: concurrent.futures.Future | None


# zlib and base64 release the GIL: the weights of a 2,041-token map (16.7 MB, 0.2-0.3 s to
# compress) are encoded while the script thread builds the map's image.
_POOL = concurrent.futures.ThreadPoolExecutor(max_workers=2, thread_name_prefix="readout")


def _encode(raw: bytes) -> str:
    return base64.b64encode(zlib.compress(raw, 1)).decode("ascii")


def prepare(values: np.ndarray, key: str) -> Prepared:
    """Start encoding the weights of `values` [Tq, Tk] for `hover_readout(..., key=key)`
    unless this session was sent them already (or they are too many to send)."""
    shape = (int(values.shape[0]), int(values.shape[1]))
    if values.size > EXACT_MAX_CELLS:  # no weights travel: no copy, no signature (the page
        return Prepared("", shape, False, None)  # keeps tokens only; 256 MB at 8,000 tokens)
    v = np.ascontiguousarray(values, dtype="<f4")
    raw = v.tobytes()
    sig = hashlib.blake2b(raw + repr(v.shape).encode(), digest_size=12).hexdigest()
    same = st.session_state.get(f"{key}_sent") == sig
    return Prepared(sig, shape, same, None if same else _POOL.submit(_encode, raw))


def hover_readout(map_id: str, values: np.ndarray, q_tokens: Sequence[object],
                  k_tokens: Sequence[object], *, precision: int, words: dict[str, str],
                  key: str, prepared: Prepared | None = None) -> None:
    """Attach the exact readout to the image map whose Image trace has meta == map_id.

    Shapes: values [Tq, Tk] (the map the image shows).
    `words`: the reader's words for "query", "key", "weight", "no_exact" and "loading".
    `prepared`: `prepare(values, key)`, called earlier so that the weights are encoded
    meanwhile.
    """
    p = prepared if prepared is not None else prepare(values, key)
    # The weights travel once per map and session: a rerun that shows the same map (a
    # toggle, another tab and back) sends only its signature, and the page reuses what it
    # has. zlib shrinks a causal map (its upper triangle is zeros): an action showing a new
    # 2,041-token Gemma map received 22.6 MB before, 5.1-5.9 MB after (bench_browser --long).
    weights = p.weights.result() if p.weights is not None else ""
    exact = p.shape[0] * p.shape[1] <= EXACT_MAX_CELLS
    st.session_state[f"{key}_sent"] = p.sig if exact else None
    _readout(key=key, height="content", data=dict(
        id=map_id, tq=p.shape[0], tk=p.shape[1], precision=int(precision) + 3,
        q=[visible_token(t) for t in q_tokens], k=[visible_token(t) for t in k_tokens],
        weights=weights, same=p.same, sig=p.sig, words=words))
