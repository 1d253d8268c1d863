"""The date-normalisation data set and its character tokenizer (engine/datasets/dates.py)."""

from __future__ import annotations

import json
import random
import unicodedata
from datetime import date
from pathlib import Path

import pytest

from engine.datasets import dates as D

ROOT = Path(__file__).resolve().parents[2]
SHIPPED_TOKENIZER = ROOT / "assets" / "seq2seq" / "tokenizer.json"


def test_same_seed_same_pairs():
    assert D.train_set(500, seed=7) == D.train_set(500, seed=7)
    assert D.heldout_set(200, seed=7) == D.heldout_set(200, seed=7)


def test_other_seed_other_pairs():
    assert D.train_set(200, seed=1) != D.train_set(200, seed=2)


def test_pinned_first_pairs():
    """Guards against silent changes to the generator, which would change the shipped
    models' training data: if this fails on purpose, retrain and update the card."""
    assert D.train_set(3, seed=0) == [
        ("15-02-2019", "2019-02-15"),
        ("20410926", "2041-09-26"),
        ("28-Aug-2022", "2022-08-28"),
    ]


def test_split_is_disjoint():
    train = {s for s, _ in D.train_set(50_000, seed=0)}
    heldout = D.heldout_set(2_000, seed=0)
    assert len({s for s, _ in heldout}) == len(heldout), "held-out sources are distinct"
    assert not train & {s for s, _ in heldout}
    assert all(D.is_heldout(s) for s, _ in heldout)
    assert not any(D.is_heldout(s) for s in train)


def test_heldout_fraction_is_about_five_percent():
    rng = random.Random(3)
    sources = [D.sample_pair(rng)[0] for _ in range(20_000)]
    share = sum(map(D.is_heldout, sources)) / len(sources)
    assert 0.035 < share < 0.065


def test_every_target_is_a_valid_iso_date_in_range():
    for source, target in D.train_set(5_000, seed=1) + D.heldout_set(500, seed=1):
        assert D.is_valid_target(target), (source, target)
        assert D.YEAR_MIN <= int(target[:4]) <= D.YEAR_MAX
        assert len(source) <= D.MAX_SOURCE_CHARS


def test_heldout_covers_every_format_family():
    sources = [s for s, _ in D.heldout_set(2_000, seed=0)]
    assert any("年" in s and s[0].isdigit() for s in sources)  # 2021年3月3日
    assert any("年" in s and not s[0].isdigit() for s in sources)  # 二〇二一年三月三日
    assert any("/" in s for s in sources)
    assert any(s.isupper() for s in sources)
    assert any(s.islower() and any(c.isalpha() for c in s) for s in sources)


@pytest.mark.parametrize(
    ("fmt", "expected"),
    [
        ("month_dth_y", "March 3rd 2021"),
        ("iso", "2021-03-03"),
        ("compact", "20210303"),
    ],
)
def test_render_examples(fmt, expected):
    rng = random.Random(0)
    text = D.render(date(2021, 3, 3), fmt, rng)
    assert text.replace(",", "").lower() == expected.lower()


def test_ambiguity_conventions():
    d = date(2021, 4, 3)  # 3 April: day and month differ
    rng = random.Random(0)
    for _ in range(50):
        month, day, _year = D.render(d, "slash_mdy", rng).split("/")
        assert (int(month), int(day)) == (4, 3)
        day, month, _year = D.render(d, "dot_dmy", rng).split(".")
        assert (int(month), int(day)) == (4, 3)
        day, month, _year = D.render(d, "dash_dmy", rng).split("-")
        assert (int(month), int(day)) == (4, 3)


def test_two_digit_years_have_one_reading():
    rng = random.Random(0)
    for y in (1950, 1999, 2000, 2049):
        text = D.render(date(y, 1, 2), "d_mon_yy", rng)
        if text.endswith(str(y)):
            continue
        yy = int(text[-2:])
        assert (1900 if yy >= 50 else 2000) + yy == y


def test_chinese_numerals():
    assert D.cn_number(3) == "三"
    assert D.cn_number(10) == "十"
    assert D.cn_number(12) == "十二"
    assert D.cn_number(20) == "二十"
    assert D.cn_number(31) == "三十一"
    assert D.cn_year(2021) == "二〇二一"
    assert D.cn_year(2001, zero="零") == "二零零一"
    with pytest.raises(ValueError):
        D.cn_number(0)


def test_ordinals():
    assert [D.ordinal(n) for n in (1, 2, 3, 4, 11, 12, 13, 21, 22, 23, 31)] == [
        "1st", "2nd", "3rd", "4th", "11th", "12th", "13th", "21st", "22nd", "23rd", "31st",
    ]  # fmt: skip


def test_weekdays_are_true():
    rng = random.Random(0)
    for _ in range(200):
        d = D.random_date(rng)
        text = D.render(d, "weekday_d_month_y", rng)
        assert text.lower().startswith(D.WEEKDAYS[d.weekday()].lower())


def test_is_valid_target():
    assert D.is_valid_target("2021-03-03")
    assert not D.is_valid_target("2021-02-30")
    assert not D.is_valid_target("1949-12-31")
    assert not D.is_valid_target("2021-3-3")
    assert not D.is_valid_target("")


def test_looks_like_date():
    assert D.looks_like_date("March 3rd, 2021")
    assert D.looks_like_date("二〇二一年三月三日")
    assert not D.looks_like_date("hello world")
    assert not D.looks_like_date("")


# --------------------------------------------------------------------------- tokenizer


def test_tokenizer_round_trip():
    tok = D.build_tokenizer()
    for source, target in D.train_set(2_000, seed=5):
        for text in (source, target):
            enc = tok.encode(text, add_special_tokens=False)
            assert len(enc.ids) == len(text)  # one token per character
            assert D.vocabulary().index(D.UNK) not in enc.ids
            assert tok.decode(enc.ids) == unicodedata.normalize("NFKC", text)


def test_tokenizer_specials_and_ids():
    tok = D.build_tokenizer()
    assert [tok.token_to_id(t) for t in D.SPECIAL_TOKENS] == [0, 1, 2, 3]
    enc = tok.encode("3 Mar")  # a source: [EOS] appended by the post-processor
    assert enc.tokens == ["3", " ", "M", "a", "r", D.EOS]
    ids = [tok.token_to_id(D.BOS), *tok.encode("2021", add_special_tokens=False).ids]
    assert tok.decode([*ids, tok.token_to_id(D.EOS)]) == "2021"  # specials are skipped


def test_tokenizer_normalises_full_width_and_marks_unknown():
    tok = D.build_tokenizer()
    assert tok.decode(tok.encode("２０２１年３月３日").ids) == "2021年3月3日"
    enc = tok.encode("3 März")
    assert enc.tokens[-4] == D.UNK


def test_shipped_tokenizer_matches_the_builder():
    if not SHIPPED_TOKENIZER.exists():
        pytest.skip("assets/seq2seq/tokenizer.json not written yet")
    from tokenizers import Tokenizer

    shipped = Tokenizer.from_file(str(SHIPPED_TOKENIZER))
    assert shipped.get_vocab() == D.build_tokenizer().get_vocab()
    assert json.loads(shipped.to_str()) == json.loads(D.build_tokenizer().to_str())
