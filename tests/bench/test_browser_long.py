"""The long-input browser benchmark's helpers, without a browser: the text fitted to a token
budget, Streamlit's websocket messages read, and one action's time split into its parts."""

from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

from bench import browser_long as bl


def words(text: str) -> int:  # a stand-in tokenizer: one token per word, plus BOS
    return len(text.split()) + 1


def test_the_text_is_the_longest_run_of_corpus_lines_within_the_budget():
    lines = bl.corpus_lines()
    assert len(lines) > 100 and all(line.isascii() for line in lines)
    text, n = bl.fit_text(words, lines, 2048, variant=1)
    assert n == words(text) <= 2048
    longer = bl.build_text(lines, len(lines) * 3, 1)
    assert words(longer) > 2048  # the search had room to grow
    # one more line would not fit
    k = next(k for k in range(1, 10 * len(lines)) if bl.build_text(lines, k, 1) == text)
    assert words(bl.build_text(lines, k + 1, 1)) > 2048
    other, _ = bl.fit_text(words, lines, 2048, variant=2)
    assert other != text and other.split(":", 1)[1] == text.split(":", 1)[1]


def test_websocket_messages_are_read_for_kind_status_session_and_figure_bytes():
    done = ForwardMsg()
    done.script_finished = bl.FINISHED_EARLY_FOR_RERUN
    assert bl.describe(done.SerializeToString())[:2] == ("script_finished", 2)
    hello = ForwardMsg()
    hello.new_session.initialize.session_id = "abc"
    assert bl.describe(hello.SerializeToString())[3] == "abc"
    chart = ForwardMsg()
    chart.delta.new_element.plotly_chart.spec = '{"data": ["é"]}'
    kind, _, spec, _ = bl.describe(chart.SerializeToString())
    assert kind == "element:plotly_chart" and spec == len('{"data": ["é"]}'.encode())
    assert bl.describe(b"\xff\xff not a message")[0] == "?"


def test_nested_and_overlapping_steps_count_once():
    assert bl.union_seconds([]) == 0
    assert bl.union_seconds([(0, 2), (0.5, 1), (1.5, 3), (5, 6)]) == 4


def test_an_action_is_split_into_server_steps_transfer_and_drawing():
    offset = 1000.0  # wall minus monotonic
    frames = [bl.Frame(10.2, 800, "new_session"), bl.Frame(12.9, 500_000, "element:plotly_chart",
                                                         spec_bytes=499_000),
              bl.Frame(13.0, 44, "script_finished", status=0)]
    step = bl.Step("another layer", t0=10.0, drawn=13.5, finished=13.0, sent=10.1,
                   frames=frames, http=[], shown=12.95)
    timings = [
        {"t": offset + 10.3, "session": "s1", "step": "engine pass", "s": 2.0, "extra": {}},
        {"t": offset + 10.5, "session": "s1", "step": "reductions", "s": 0.5, "extra": {}},
        {"t": offset + 12.4, "session": "s1", "step": "serialise", "s": 0.2, "extra": {}},
        {"t": offset + 12.6, "session": "s1", "step": "figure to browser", "s": 0.3,
         "extra": {}},
        {"t": offset + 11.0, "session": "s2", "step": "engine pass", "s": 9.0, "extra": {}},
        {"t": offset + 9.0, "session": "s1", "step": "engine pass", "s": 9.0, "extra": {}},
    ]
    row = bl.breakdown(step, timings, "s1", offset)
    assert row["total"] == 3.5 and abs(row["shown"] - 2.95) < 1e-9
    assert row["engine"] == 2.0 and row["reductions"] == 0.5  # other session, earlier: out
    assert row["figure build"] is None  # not recorded, not zero
    assert abs(row["server run"] - 2.9) < 1e-9
    assert abs(row["server untimed"] - (2.9 - 2.5)) < 1e-9  # reductions inside the pass
    assert row["transfer bytes"] == 500_844 and row["figure json bytes"] == 499_000
    assert abs(row["transfer time"] - 3.0) < 1e-9 and abs(row["draw"] - 0.5) < 1e-9
    assert row["bound"] == "engine"
    slow_draw = bl.breakdown(bl.Step("x", 10.0, 20.0, 13.0, 10.1, frames, []), timings, "s1",
                             offset)
    assert slow_draw["bound"] == "draw"


def test_medians_and_the_table():
    runs = [{"total": t, "engine": None, "reductions": None, "figure build": None,
             "serialise": 0.1, "to browser": 0.1, "server untimed": t - 0.5,
             "transfer bytes": 1e6, "transfer time": t - 0.2, "draw": 0.2, "wire": 0.1, "load": 4.0,
             "bound": "server untimed"} for t in (3.0, 1.0, 2.0)]
    m = bl.medians(runs)
    assert m["total"] == 2.0 and m["engine"] is None and m["bound"] == "server untimed"
    out = bl.table({"first view": {"runs": runs, "median": m}})
    assert out.splitlines()[0] == bl.TABLE_HEAD
    assert "| first view | 3 | 2.00 | – | – |" in out and "1.0 MB" in out


def test_devtools_clock_is_taken_as_monotonic_when_events_arrive_just_after_their_stamp():
    wire = bl.Wire.__new__(bl.Wire)
    wire._lags = [0.004, 0.002, 0.05]
    assert wire.offset() == 0.0
    wire._lags = [812.5, 812.7]  # another clock: shift by the smallest lag
    assert wire.offset() == 812.5
