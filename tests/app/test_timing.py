"""The server-side step recorder (app_pages/shared/timing.py) and its use in the download
control: off it writes nothing; on, one JSON line per step, from any thread, with the
Streamlit session id inside a script run and the figure's JSON size in bytes."""

import json
import threading

import plotly.io as pio
import pytest

from app_pages.shared import timing


def lines(path):
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_off_writes_nothing_and_hands_back_a_shared_noop(tmp_path, monkeypatch):
    monkeypatch.delenv(timing.ENV, raising=False)
    assert not timing.enabled()
    first, second = timing.timed("engine pass"), timing.timed("reductions", layer=3)
    assert first is second  # no object built per step when off
    with first as step:
        step.extra["bytes"] = 1  # goes nowhere
    assert step.extra == {}

    @timing.timed_fn("figure build")
    def build(x):
        return x + 1

    assert build(1) == 2
    assert list(tmp_path.iterdir()) == []


def test_on_each_step_is_one_json_line(tmp_path, monkeypatch):
    path = tmp_path / "t.jsonl"
    monkeypatch.setenv(timing.ENV, str(path))
    with timing.timed("engine pass", layer=3) as step:
        step.extra["tokens"] = 2048

    @timing.timed_fn("reductions")
    def reduce(x):
        return x * 2

    assert reduce(4) == 8
    first, second = lines(path)
    assert first["step"] == "engine pass" and first["extra"] == {"layer": 3, "tokens": 2048}
    assert set(first) == {"t", "session", "step", "s", "extra"}
    assert first["session"] is None  # no script run here
    assert first["s"] >= 0 and first["t"] <= second["t"]
    assert second["step"] == "reductions" and second["extra"]["fn"].endswith("reduce")


def test_a_step_that_raises_is_recorded_with_its_error(tmp_path, monkeypatch):
    path = tmp_path / "t.jsonl"
    monkeypatch.setenv(timing.ENV, str(path))
    with pytest.raises(KeyError), timing.timed("figure build"):
        raise KeyError("x")
    assert lines(path)[0]["extra"] == {"error": "KeyError"}


def test_threads_never_interleave_lines(tmp_path, monkeypatch):
    path = tmp_path / "t.jsonl"
    monkeypatch.setenv(timing.ENV, str(path))
    pad = "x" * 5000  # long lines: an unlocked writer would cut them into each other

    def work(i):
        for j in range(50):
            with timing.timed("step", thread=i, j=j, pad=pad):
                pass

    threads = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    got = lines(path)  # every line parses
    assert len(got) == 400
    assert {(r["extra"]["thread"], r["extra"]["j"]) for r in got} == {
        (i, j) for i in range(8) for j in range(50)}


def test_an_unwritable_file_never_breaks_the_caller(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(timing.ENV, str(tmp_path / "missing" / "t.jsonl"))
    for _ in range(3):
        with timing.timed("engine pass"):
            pass
    err = capsys.readouterr().err
    assert err.count("cannot write timings") == 1 and "\n" == err[-1]


def test_read_steps_skips_a_line_cut_short(tmp_path):
    path = tmp_path / "t.jsonl"
    path.write_text('{"step": "a", "s": 1}\n{"step": "b", "s"')
    assert [s["step"] for s in timing.read_steps(path)] == ["a"]
    assert timing.read_steps(tmp_path / "none.jsonl") == []


APP = """
import plotly.graph_objects as go
from app_pages.shared.download import figure_with_download
fig = go.Figure(go.Heatmap(z=[[1, 2], [3, 4]]))
figure_with_download(fig, "chart", "dl")
"""


def test_download_control_records_the_figure_to_browser_with_its_bytes(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    path = tmp_path / "t.jsonl"
    monkeypatch.setenv(timing.ENV, str(path))
    at = AppTest.from_string(APP).run()
    assert not at.exception
    steps = {s["step"]: s for s in lines(path)}
    assert set(steps) == {"serialise", "figure to browser"}
    import plotly.graph_objects as go

    size = len(pio.to_json(go.Figure(go.Heatmap(z=[[1, 2], [3, 4]])), validate=False).encode())
    assert steps["serialise"]["extra"] == {"chart": "chart", "bytes": size}
    assert steps["figure to browser"]["extra"] == {"chart": "chart", "bytes": size}
    assert steps["figure to browser"]["session"]  # inside a script run: its session id


def test_download_control_writes_nothing_when_off(tmp_path, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.delenv(timing.ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    at = AppTest.from_string(APP).run()
    assert not at.exception and list(tmp_path.iterdir()) == []
