"""Shared AppTest helpers: open one page of the real app, read a figure's data back."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parent.parent


def open_page(page: str, timeout: float = 180, **state) -> AppTest:
    """Run app.py once (st.navigation registers the pages) with `state` in session_state,
    then switch to `page`; the page must run without an exception."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=timeout)
    for k, v in state.items():
        at.session_state[k] = v
    at.run()
    at.switch_page(page)
    return rerun(at)


def rerun(at: AppTest) -> AppTest:
    """Run the page again (after a widget change); it must not raise."""
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def open_tab(at: AppTest, state_key: str, label: str) -> AppTest:
    """Open the tab labelled `label` of the tab row whose choice is kept in `state_key`."""
    at.session_state[state_key] = label
    return rerun(at)


def keyed(at: AppTest, key: str):
    """The element or container whose widget/container key is `key` (depth-first)."""
    def walk(node):
        for child in getattr(node, "children", {}).values():
            if getattr(child, "key", None) == key:
                return child
            found = walk(child)
            if found is not None:
                return found
        return None

    found = walk(at.main)
    assert found is not None, f"nothing keyed {key!r}"
    return found


def decode(obj):
    """Plotly JSON → plain objects; typed arrays ({dtype, bdata, shape}) → numpy."""
    if isinstance(obj, dict):
        if "bdata" in obj and "dtype" in obj:
            a = np.frombuffer(base64.b64decode(obj["bdata"]), dtype=np.dtype(obj["dtype"]))
            if obj.get("shape"):
                a = a.reshape([int(n) for n in str(obj["shape"]).split(",")])
            return a
        return SimpleNamespace(**{k: decode(v) for k, v in obj.items()})
    if isinstance(obj, list):
        return [decode(v) for v in obj]
    return obj


def figure(at: AppTest, key: str):
    """The plotly chart whose key is `key`, decoded."""
    for el in at.get("plotly_chart"):
        if el.proto.id.endswith("-" + key):
            return decode(json.loads(el.proto.spec))
    raise AssertionError(f"no figure {key!r}; have {[e.proto.id for e in at.get('plotly_chart')]}")


def arr(value) -> np.ndarray:
    """A Plotly JSON array: a typed-array dict {dtype, bdata, shape} or a nested list."""
    if isinstance(value, dict) and "bdata" in value:
        a = np.frombuffer(base64.b64decode(value["bdata"]), dtype=np.dtype(value["dtype"]))
        shape = value.get("shape")
        if shape:
            a = a.reshape([int(s) for s in str(shape).split(",")])
        return a
    return np.asarray(value, dtype=float)


def specs(at: AppTest) -> list[dict]:
    return [json.loads(e.proto.spec) for e in at.get("plotly_chart")]


def title(spec: dict) -> str:
    t = spec["layout"].get("title") or {}
    return t.get("text", "") if isinstance(t, dict) else str(t)


def chart(at: AppTest, part: str) -> dict:
    found = [s for s in specs(at) if part in title(s)]
    assert found, f"no chart titled with {part!r}: {[title(s) for s in specs(at)]}"
    return found[0]
