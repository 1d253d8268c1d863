"""Export: vector cells in SVG/PDF, PNG size, offline HTML, exact numbers, threads, bundles.

Tests that render images need Chromium (kaleido 1.x drives it); they skip without it.
"""

from __future__ import annotations

import csv
import io
import json
import re
import struct
import xml.etree.ElementTree as ET
import zipfile
import zlib
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pandas as pd
import pytest

import viz
from viz import export as ex
from viz.export import render
from viz.export.vector import png_encode, png_size, vectorize
from viz.figures.heatmap import head_heatmap

SVG_NS = "{http://www.w3.org/2000/svg}"
XSS = "<img src=x onerror=alert(1)>"
needs_chromium = pytest.mark.skipif(
    not ex.chromium_available(),
    reason="Chromium not found (needed by kaleido for PNG/SVG/PDF): apt-get install -y chromium",
)


def maps(h: int, tq: int, tk: int | None = None, seed: int = 0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    a = rng.random((h, tq, tk or tq)).astype(np.float32) ** 3
    return (a / a.sum(-1, keepdims=True)).astype(np.float32)


class FakeRecord:
    """Stands in for engine.AttentionRecord: deterministic maps of an encoder-decoder."""

    def __init__(self, text: str, target: str | None = None):
        self.tokens = text.split() + [XSS]
        self.target_tokens = None if target is None else target.split()
        seed = zlib.crc32(text.encode())
        t = len(self.tokens)
        self.maps = {"encoder.self.0": maps(2, t, seed=seed),
                     "encoder.self.1": maps(2, t, seed=seed + 1)}
        if target is not None:
            tt = len(self.target_tokens)
            self.maps["decoder.self.0"] = maps(2, tt, seed=seed + 2)
            self.maps["decoder.cross.0"] = maps(2, tt, t, seed=seed + 3)
        self.meta = {"model": "fake", "settings": {"mask": "auto"}, "elapsed_s": 0.123,
                     "engine_version": "test", "weights_hash": "init:seed=0"}

    def keys(self):
        return list(self.maps)

    def __getitem__(self, key):
        return self.maps[key]


class FakeModel:
    def attend(self, text, target=None, **settings):
        return FakeRecord(text, target)


def fake_loader(name):
    assert name == "fake"
    return FakeModel()


def svg_cells(svg: bytes) -> tuple[int, int]:
    """(closed subpaths in filled cell paths, <image> elements) of an SVG."""
    root = ET.fromstring(svg)
    fills = [p for p in root.iter(f"{SVG_NS}path") if "js-fill" in (p.get("class") or "")]
    subpaths = sum(p.get("d", "").count("M") for p in fills)
    return subpaths, len(list(root.iter(f"{SVG_NS}image")))


def png_pixels(png: bytes) -> tuple[int, int]:
    """Decode a PNG's size and check its pixel data inflates to the right length."""
    assert png[:8] == b"\x89PNG\r\n\x1a\n"
    w, h = png_size(png)
    depth, ctype = png[24], png[25]
    channels = {0: 1, 2: 3, 4: 2, 6: 4}[ctype]
    pos, idat = 8, b""
    while pos < len(png):
        (n,) = struct.unpack(">I", png[pos:pos + 4])
        if png[pos + 4:pos + 8] == b"IDAT":
            idat += png[pos + 8:pos + 8 + n]
        pos += 12 + n
    assert depth == 8 and len(zlib.decompress(idat)) == h * (1 + w * channels)
    return w, h


# ---------------------------------------------------------------- no browser needed

def test_vectorize_one_subpath_per_cell_without_browser():
    fig = head_heatmap(maps(1, 20)[0], [f"t{i}" for i in range(20)])
    vec, notes = vectorize(fig)
    assert not notes and not any(t.type == "heatmap" for t in vec.data)
    cells = [t for t in vec.data if t.fill == "toself"]
    n = sum(int(np.isnan(np.asarray(t.x, dtype=float)).sum()) for t in cells)
    assert n == 400 and len(cells) <= 256


def test_vectorize_large_heatmap_embeds_300dpi_raster():
    fig = head_heatmap(maps(1, 200)[0], [f"t{i}" for i in range(200)])
    vec, notes = vectorize(fig, dpi=300)
    (img,) = vec.layout.images
    assert img.source.startswith("data:image/png;base64,")
    assert "raster" in notes[0]
    dpi = float(re.search(r"(\d+) dpi", notes[0])[1])
    assert dpi >= 300


def test_png_encoder_roundtrip():
    px = np.arange(4 * 5 * 3, dtype=np.uint8).reshape(4, 5, 3)
    png = png_encode(px, dpi=300)
    assert png_pixels(png) == (5, 4) and b"pHYs" in png


def test_data_exports_equal_input_arrays(tmp_path):
    rec = FakeRecord("a b a c", "x y")
    data = ex.AttentionData.from_record(rec)
    rows = list(csv.DictReader(io.StringIO(ex.data_bytes(data, "csv").decode())))
    assert list(rows[0]) == list(ex.COLUMNS)
    assert len(rows) == sum(a.size for a in rec.maps.values())
    for r in rows:
        key = f"{r['block']}.{r['layer']}"
        a = rec.maps[key]
        h, q, k = int(r["head"]), int(r["query_index"]), int(r["key_index"])
        assert np.float32(r["weight"]) == a[h, q, k]
    cross = [r for r in rows if r["block"] == "decoder.cross"]
    assert cross[0]["query_token"] == "x" and cross[-1]["key_token"] == XSS
    js = json.loads(ex.data_bytes(data, "json"))
    assert len(js) == len(rows)
    for r in js[:50] + js[-50:]:
        a = rec.maps[f"{r['block']}.{r['layer']}"]
        assert np.float32(r["weight"]) == a[r["head"], r["query_index"], r["key_index"]]
    path = ex.write(data, tmp_path / "a.npz")
    with np.load(path, allow_pickle=False) as z:
        for key, a in rec.maps.items():
            assert z[key].dtype == np.float32
            np.testing.assert_array_equal(z[key], a)
        assert list(z["tokens"]) == rec.tokens and list(z["target_tokens"]) == ["x", "y"]
        assert json.loads(str(z["meta"]))["model"] == "fake"


def test_select_and_token_pair_errors():
    data = ex.AttentionData.from_record(FakeRecord("a b", "x"))
    one = data.select(block="decoder.cross", layer=0, head=1)
    assert list(one.attn) == ["decoder.cross.0"] and one.heads == [1]
    assert one.attn["decoder.cross.0"].shape == (1, 1, 3)
    with pytest.raises(ValueError, match="head 5"):
        data.select(head=5)
    with pytest.raises(ValueError, match="no attention"):
        data.select(block="encoder.self", layer=9)
    data.attn["encoder.self.0"] = data.attn["encoder.self.0"][:, :2]
    with pytest.raises(ValueError, match="query"):
        data.token_pair("encoder.self.0")


def test_html_is_offline_and_escaped():
    a = maps(1, 5)[0]
    toks = ["</script><script>alert(1)</script>", XSS, "b", "c", "d"]
    html = ex.figure_bytes(head_heatmap(a, toks), "html").decode()
    assert len(html) > 1_000_000  # plotly.js inlined
    assert not re.search(r"<script[^>]+src=", html)
    # outside inline scripts (plotly.js holds inert URL strings), nothing refers to the network
    markup = re.sub(r"<script[^>]*>.*?</script>", "", html, flags=re.S)
    assert "<script" not in markup and not re.search(r"(src|href|url)\W*(https?:)?//", markup)
    assert "</script><script>alert(1)" not in html and XSS not in html


def test_bundle_regenerates_data_files_byte_for_byte(tmp_path):
    rec = FakeRecord("the cat sat on the mat", "le chat")
    seen = []
    source = dict(model="fake", text="the cat sat on the mat", target="le chat",
                  attend={"mask": "auto"})
    manifest = ex.export_bundle(rec, tmp_path / "b.zip", source=source,
                                formats=("npz", "csv", "json"),
                                progress=lambda f, m: seen.append((f, m)))
    fractions = [f for f, _ in seen]
    assert seen[-1] == (1.0, "done") and fractions == sorted(fractions)
    with zipfile.ZipFile(tmp_path / "b.zip") as zf:
        stored = json.loads(zf.read("manifest.json"))
        assert stored == json.loads(json.dumps(manifest))
        assert {"numpy", "plotly", "kaleido", "python"} <= set(stored["versions"])
        assert stored["source"]["weights_hash"] == "init:seed=0"
        assert stored["source"]["engine_version"] == "test"
        assert stored["meta"]["elapsed_s"] == 0.123
        for f in stored["files"]:
            blob = zf.read(f["name"])
            req = ex.regeneration_request(stored)
            rec_again = fake_loader(req["model"]).attend(req["text"], target=req["target"],
                                                         **req["attend"])
            again = ex.regenerate_file(stored, f["name"], rec_again)
            assert again == blob, f["name"]
    # same input, same bundle bytes
    ex.export_bundle(rec, tmp_path / "c.zip", source=source, formats=("npz", "csv", "json"))
    assert (tmp_path / "b.zip").read_bytes() == (tmp_path / "c.zip").read_bytes()


def test_missing_chromium_is_a_clear_error(monkeypatch):
    import kaleido
    from kaleido.errors import ChromeNotFoundError

    def no_browser(*a, **k):
        raise ChromeNotFoundError("no chrome")

    monkeypatch.setattr(kaleido, "Kaleido", no_browser)
    server = render._KaleidoServer()
    with pytest.raises(ex.ExportUnavailable, match="apt-get install -y chromium"):
        server.render({"data": [], "layout": {}}, dict(format="png", width=10, height=10))


# ---------------------------------------------------------------- with Chromium

@needs_chromium
def test_png_has_requested_size():
    fig = head_heatmap(maps(1, 6)[0], list("abcdef"))
    assert png_pixels(ex.figure_bytes(fig, "png", width=400, height=300, scale=2)) == (800, 600)
    png = ex.figure_bytes(fig, "png", width=200, height=100, dpi=192)
    assert png_pixels(png) == (400, 200) and b"pHYs" in png


@needs_chromium
def test_svg_vector_cells_and_escaped_tokens():
    toks = [XSS, "the", "the", "&", "$x$", "b", "c", "d"]
    fig = head_heatmap(maps(1, 8)[0], toks, title="head 0")
    svg = ex.figure_bytes(fig, "svg")
    assert svg_cells(svg) == (64, 0)
    root = ET.fromstring(svg)  # parses: no raw markup from tokens
    texts = [t.text for t in root.iter(f"{SVG_NS}text") if t.text]
    assert XSS in texts and "$x$" in texts  # shown literally, as text
    assert root.find(f"{SVG_NS}title").text == "head 0"


@needs_chromium
def test_svg_128_vector_and_above_raster():
    t = 128
    svg = ex.figure_bytes(head_heatmap(maps(1, t)[0], [str(i) for i in range(t)]), "svg")
    assert svg_cells(svg) == (t * t, 0)
    t = 130
    svg = ex.figure_bytes(head_heatmap(maps(1, t)[0], [str(i) for i in range(t)]), "svg")
    root = ET.fromstring(svg)
    assert len(list(root.iter(f"{SVG_NS}image"))) == 1
    assert "raster" in root.find(f"{SVG_NS}desc").text and b"<!--" in svg


@needs_chromium
def test_pdf_vector_content_no_image_xobject():
    import pypdf

    t = 32
    pdf = ex.figure_bytes(head_heatmap(maps(1, t)[0], [str(i) for i in range(t)],
                                       title="pdf head"), "pdf")
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    page = reader.pages[0]
    assert not _image_xobjects(page["/Resources"])
    ops = page.get_contents().get_data()
    n_paths = len(re.findall(rb"\sm\n", ops)) + len(re.findall(rb"\sre\n", ops))
    assert n_paths >= t * t
    assert reader.metadata.title == "pdf head"
    t = 140  # above the vector limit: one embedded image, said in the metadata
    pdf = ex.figure_bytes(head_heatmap(maps(1, t)[0], [str(i) for i in range(t)]), "pdf")
    reader = pypdf.PdfReader(io.BytesIO(pdf))
    imgs = _image_xobjects(reader.pages[0]["/Resources"])
    assert len(imgs) >= 1 and max(int(i["/Width"]) for i in imgs) >= t
    assert "raster" in reader.metadata.subject


def _image_xobjects(resources) -> list:
    found = []
    xobjects = resources.get("/XObject") if resources else None
    for obj in (xobjects or {}).values():
        obj = obj.get_object()
        if obj.get("/Subtype") == "/Image":
            found.append(obj)
        elif obj.get("/Subtype") == "/Form":
            found += _image_xobjects(obj.get("/Resources"))
    return found


@needs_chromium
def test_concurrent_exports_get_their_own_figure():
    jobs = [("png", 200 + 40 * i, 150 + 20 * i, f"fig {i}") for i in range(4)]
    jobs += [("svg", 300, 300, f"svg title {i}") for i in range(3)]

    def run(job):
        fmt, w, h, title = job
        fig = head_heatmap(maps(1, 5, seed=w)[0], list("abcde"), title=title)
        return ex.figure_bytes(fig, fmt, width=w, height=h)

    with ThreadPoolExecutor(max_workers=6) as pool:
        outs = list(pool.map(run, jobs))
    for (fmt, w, h, title), out in zip(jobs, outs, strict=True):
        if fmt == "png":
            assert png_pixels(out) == (w, h)
        else:
            assert ET.fromstring(out).find(f"{SVG_NS}title").text == title


@needs_chromium
def test_bundle_with_images(tmp_path):
    rec = FakeRecord("a b c")
    data = ex.AttentionData.from_record(rec).select(block="encoder.self", layer=1)
    manifest = ex.export_bundle(data, tmp_path / "l.zip", formats=("png", "html", "npz"),
                                source=dict(model="fake", text="a b c"))
    names = [f["name"] for f in manifest["files"]]
    assert names == ["figures/encoder.self.1.h0.png", "figures/encoder.self.1.h1.png",
                     "figures/encoder.self.html", "attention.npz"]
    with zipfile.ZipFile(tmp_path / "l.zip") as zf:
        png_pixels(zf.read(names[0]))


@needs_chromium
def test_model_view_and_masks_export_vector():
    layers = [maps(4, 8, seed=i) for i in range(3)]
    svg = ex.figure_bytes(viz.model_view(layers), "svg")
    assert svg_cells(svg) == (3 * 4 * 64, 0)
    t = 6
    mask = np.tril(np.ones((t, t), bool))
    scores = np.where(mask, 1.0, -np.inf).astype(np.float32)
    svg = ex.figure_bytes(viz.masks_figure(mask, scores, maps(1, t)[0], list("abcdef")), "svg")
    cells, images = svg_cells(svg)
    assert images == 0 and cells == 3 * t * t  # mask + (finite scores + -inf) + weights


def test_csv_text_cannot_run_as_a_spreadsheet_formula():
    """Tokens such as '=HYPERLINK(...)' or '@SUM' reach the CSV with a leading apostrophe
    (spreadsheets show them as text); JSON and NPZ keep every token as it is."""
    from app_pages.shared.download import table_bytes

    tokens = ["=HYPERLINK(1)", "+1", "-", "@SUM(A1)", "plain", "a=b"]
    data = ex.AttentionData(tokens=tokens, attn={"encoder.self.0": np.full((1, 6, 6), 1 / 6,
                                                                          dtype=np.float32)})
    rows = list(csv.DictReader(io.StringIO(ex.data_bytes(data, "csv").decode())))
    assert [r["key_token"] for r in rows[:6]] == ["'=HYPERLINK(1)", "'+1", "'-",
                                                  "'@SUM(A1)", "plain", "a=b"]
    assert [r["key_token"] for r in json.loads(ex.data_bytes(data, "json"))[:6]] == tokens
    table = table_bytes(pd.DataFrame({"token": ["=1+1", "ok"], "value": [-1.5, 2.0]}), "csv")
    assert table.decode().splitlines() == ["token,value", "'=1+1,-1.5", "ok,2.0"]
