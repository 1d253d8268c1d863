"""Date normalisation data: many written forms of a date (English and Chinese) -> ISO 8601.

The task for the shipped encoder-decoder (`seq2seq-mha|gqa|mqa`), chosen because its
cross-attention shows a readable alignment (the decoder's year digits look at the source's year,
its month digits at the month word, ...) and because people can type their own inputs.

    "March 3rd, 2021"       -> "2021-03-03"
    "3 Mar 21"              -> "2021-03-03"
    "Wednesday, 3 March 2021" -> "2021-03-03"
    "03/03/2021"            -> "2021-03-03"
    "2021年3月3日"           -> "2021-03-03"
    "二〇二一年三月三日"        -> "2021-03-03"

Ambiguity is settled by fixed conventions (the model cannot guess what a writer meant):

- Dates lie in 1950-01-01 .. 2049-12-31 (`YEAR_MIN`, `YEAR_MAX`), so a two-digit year has one
  reading: 50-99 -> 1950-1999, 00-49 -> 2000-2049.
- Slashes with the year last are month first (US): "04/03/2021" -> 2021-04-03.
- Dots or dashes with the year last are day first (European): "4.3.2021", "04-03-2021"
  -> 2021-03-04.
- A four-digit year written first is always year-month-day: "2021/3/4", "2021.3.4", "20210304".
- A weekday, when present, is always the true weekday of the date; the output ignores it.

Nothing is randomised by the global RNGs: every function takes a seed or a `random.Random`, so
the same seed gives the same pairs on every machine (Python's `random` is specified to be
reproducible across platforms for a given seed and call sequence).

The held-out split is a fixed region of string space: `is_heldout(source)` hashes the source
string, so no input string can be both a training and a held-out string, whatever the seeds.
"""

from __future__ import annotations

import hashlib
import random
import unicodedata
from collections.abc import Callable, Iterator
from datetime import date
from pathlib import Path

YEAR_MIN, YEAR_MAX = 1950, 2049
HELDOUT_FRACTION = 0.05  # share of string space reserved for evaluation
MAX_SOURCE_CHARS = 48  # inputs are truncated to this many characters (all generated ones fit)
TARGET_CHARS = 10  # len("2021-03-03")

PAD, BOS, EOS, UNK = "[PAD]", "[BOS]", "[EOS]", "[UNK]"
SPECIAL_TOKENS = (PAD, BOS, EOS, UNK)  # ids 0, 1, 2, 3 in this order

MONTHS = (
    "January", "February", "March", "April", "May", "June",
    "July", "August", "September", "October", "November", "December",
)  # fmt: skip
WEEKDAYS = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")
CN_DIGITS = "〇一二三四五六七八九"
CN_WEEKDAYS = "一二三四五六日"

_FIRST_DAY = date(YEAR_MIN, 1, 1).toordinal()
_LAST_DAY = date(YEAR_MAX, 12, 31).toordinal()


# --------------------------------------------------------------------------- pieces of a date


def ordinal(n: int) -> str:
    """1 -> '1st', 2 -> '2nd', 11 -> '11th', 23 -> '23rd'."""
    suffix = "th" if 11 <= n % 100 <= 13 else {1: "st", 2: "nd", 3: "rd"}.get(n % 10, "th")
    return f"{n}{suffix}"


def month_abbr(m: int, rng: random.Random) -> str:
    """'Mar', 'Mar.' or, for September, also 'Sept'."""
    name = MONTHS[m - 1]
    abbr = "Sept" if m == 9 and rng.random() < 0.25 else name[:3]
    return abbr + "." if rng.random() < 0.2 and name != abbr else abbr


def weekday_abbr(d: date, rng: random.Random) -> str:
    """'Wed' or 'Wed.'."""
    return WEEKDAYS[d.weekday()][:3] + ("." if rng.random() < 0.2 else "")


def cn_number(n: int) -> str:
    """Chinese numeral for 1..31 (months and days): 3 -> 三, 12 -> 十二, 21 -> 二十一."""
    if not 1 <= n <= 31:
        raise ValueError(f"cn_number covers 1..31, got {n}")
    tens, ones = divmod(n, 10)
    head = "" if tens == 0 else ("十" if tens == 1 else CN_DIGITS[tens] + "十")
    return head + (CN_DIGITS[ones] if ones else "")


def cn_year(y: int, zero: str = "〇") -> str:
    """Year digit by digit: 2021 -> 二〇二一 (or 二零二一 with zero='零')."""
    return "".join(CN_DIGITS[int(c)] for c in str(y)).replace("〇", zero)


def cn_weekday(d: date, rng: random.Random) -> str:
    """星期三 / 周三 / 礼拜三 style weekday (Sunday also 星期天)."""
    prefix = rng.choice(("星期", "星期", "周", "礼拜"))
    day = CN_WEEKDAYS[d.weekday()]
    if day == "日" and prefix != "周" and rng.random() < 0.5:
        day = "天"
    return prefix + day


# --------------------------------------------------------------------------- the written forms
# Each renderer takes (date, rng) and returns one written form. English renderers return
# Title Case; `render` then applies a random case (title / lower / upper).

Renderer = Callable[[date, random.Random], str]


def _d(d: date, rng: random.Random) -> str:
    """Day of month as '3' or '03'."""
    return f"{d.day:02d}" if rng.random() < 0.3 else str(d.day)


def _m(d: date, rng: random.Random) -> str:
    """Month number as '3' or '03'."""
    return f"{d.month:02d}" if rng.random() < 0.3 else str(d.month)


def _dd_mm(d: date, rng: random.Random) -> tuple[str, str]:
    """Day and month numbers, both zero-padded or both not (as people write them)."""
    if rng.random() < 0.5:
        return f"{d.day:02d}", f"{d.month:02d}"
    return str(d.day), str(d.month)


def _yy(d: date) -> str:
    return f"{d.year % 100:02d}"


def _comma(rng: random.Random) -> str:
    return "," if rng.random() < 0.6 else ""


ENGLISH: dict[str, Renderer] = {
    # March 3, 2021 / March 3rd, 2021 / March 3 2021
    "month_d_y": lambda d, r: f"{MONTHS[d.month - 1]} {_d(d, r)}{_comma(r)} {d.year}",
    "month_dth_y": lambda d, r: f"{MONTHS[d.month - 1]} {ordinal(d.day)}{_comma(r)} {d.year}",
    # Mar 3, 2021 / Mar. 3rd 2021
    "mon_d_y": lambda d, r: (
        f"{month_abbr(d.month, r)} "
        f"{ordinal(d.day) if r.random() < 0.3 else _d(d, r)}{_comma(r)} {d.year}"
    ),
    # 3 March 2021 / 3rd March, 2021
    "d_month_y": lambda d, r: (
        f"{ordinal(d.day) if r.random() < 0.4 else _d(d, r)} {MONTHS[d.month - 1]}{_comma(r)} "
        f"{d.year}"
    ),
    # 3 Mar 21 / 3 Mar '21 / 03 Mar 2021
    "d_mon_yy": lambda d, r: (
        f"{_d(d, r)} {month_abbr(d.month, r)} " + r.choice((_yy(d), "'" + _yy(d), str(d.year)))
    ),
    # the 3rd of March, 2021 / 3rd of March 2021
    "the_dth_of_month_y": lambda d, r: (
        f"{'The ' if r.random() < 0.5 else ''}{ordinal(d.day)} of {MONTHS[d.month - 1]}"
        f"{_comma(r)} {d.year}"
    ),
    # Wednesday, 3 March 2021
    "weekday_d_month_y": lambda d, r: (
        f"{WEEKDAYS[d.weekday()]}{_comma(r)} {_d(d, r)} {MONTHS[d.month - 1]} {d.year}"
    ),
    # Wednesday, March 3rd, 2021
    "weekday_month_dth_y": lambda d, r: (
        f"{WEEKDAYS[d.weekday()]}, {MONTHS[d.month - 1]} "
        f"{ordinal(d.day) if r.random() < 0.5 else str(d.day)}{_comma(r)} {d.year}"
    ),
    # Wed, Mar 3, 2021 / Wed 3 Mar 2021
    "wkd_mon_d_y": lambda d, r: (
        f"{weekday_abbr(d, r)}, {month_abbr(d.month, r)} {_d(d, r)}, {d.year}"
        if r.random() < 0.5
        else f"{weekday_abbr(d, r)} {_d(d, r)} {month_abbr(d.month, r)} {d.year}"
    ),
    # 3-Mar-2021 / 03-Mar-21
    "d_mon_y_dashed": lambda d, r: (
        f"{_d(d, r)}-{month_abbr(d.month, r).rstrip('.')}-{r.choice((str(d.year), _yy(d)))}"
    ),
    # Mar 3 '21 / March 3, 21
    "month_d_yy": lambda d, r: (
        f"{r.choice((MONTHS[d.month - 1], month_abbr(d.month, r)))} {_d(d, r)}{_comma(r)} "
        f"{r.choice((_yy(d), chr(39) + _yy(d)))}"
    ),
}


def _slash_us(d: date, r: random.Random) -> str:
    day, month = _dd_mm(d, r)
    return f"{month}/{day}/{r.choice((str(d.year), _yy(d)))}"


def _dot_eu(d: date, r: random.Random) -> str:
    day, month = _dd_mm(d, r)
    return f"{day}.{month}.{r.choice((str(d.year), str(d.year), _yy(d)))}"


def _dash_eu(d: date, r: random.Random) -> str:
    day, month = _dd_mm(d, r)
    return f"{day}-{month}-{d.year}"


def _year_first(d: date, r: random.Random) -> str:
    sep = r.choice(("-", "/", "."))
    return f"{d.year}{sep}{_m(d, r)}{sep}{_d(d, r)}"


NUMERIC: dict[str, Renderer] = {
    "slash_mdy": _slash_us,  # 03/03/2021, 3/3/21   (month first)
    "dot_dmy": _dot_eu,  # 3.3.2021, 03.03.21     (day first)
    "dash_dmy": _dash_eu,  # 03-03-2021            (day first)
    "year_first": _year_first,  # 2021-3-3, 2021/03/03, 2021.3.3
    "compact": lambda d, r: f"{d.year}{d.month:02d}{d.day:02d}",  # 20210303
    "iso": lambda d, r: d.isoformat(),  # 2021-03-03 (identity)
}


def _cn_digits(d: date, r: random.Random) -> str:
    day, month = _dd_mm(d, r) if r.random() < 0.3 else (str(d.day), str(d.month))
    year = str(d.year) if r.random() < 0.85 else _yy(d)
    text = f"{year}年{month}月{day}{r.choice(('日', '日', '号'))}"
    if r.random() < 0.25:
        text += r.choice(("", " ", "，")) + cn_weekday(d, r)
    return text


def _cn_numerals(d: date, r: random.Random) -> str:
    zero = "〇" if r.random() < 0.7 else "零"
    text = (
        f"{cn_year(d.year, zero)}年{cn_number(d.month)}月{cn_number(d.day)}"
        f"{r.choice(('日', '日', '号'))}"
    )
    if r.random() < 0.25:
        text += r.choice(("", " ", "，")) + cn_weekday(d, r)
    return text


CHINESE: dict[str, Renderer] = {
    "cn_digits": _cn_digits,  # 2021年3月3日, 21年03月03日, 2021年3月3号 星期三
    "cn_numerals": _cn_numerals,  # 二〇二一年三月三日, 二零二一年十二月三十一号
}

FORMATS: dict[str, Renderer] = {**ENGLISH, **NUMERIC, **CHINESE}


def render(d: date, fmt: str, rng: random.Random) -> str:
    """Write `d` in format `fmt` (a key of `FORMATS`); English forms get a random letter case."""
    text = FORMATS[fmt](d, rng)
    if fmt in ENGLISH:
        u = rng.random()
        if u < 0.2:
            text = text.lower()
        elif u < 0.3:
            text = text.upper()
    return text


# --------------------------------------------------------------------------- sampling and splits


def random_date(rng: random.Random) -> date:
    """A date drawn uniformly from YEAR_MIN-01-01 .. YEAR_MAX-12-31."""
    return date.fromordinal(rng.randint(_FIRST_DAY, _LAST_DAY))


def sample_pair(rng: random.Random) -> tuple[str, str]:
    """One (source, target) pair: a uniform format and a uniform date."""
    d = random_date(rng)
    fmt = rng.choice(tuple(FORMATS))
    return render(d, fmt, rng), d.isoformat()


def is_heldout(source: str) -> bool:
    """Whether `source` belongs to the held-out region of string space (about 5% of strings).

    Keyed on the NFKC form (what the tokenizer sees), so a training string and a held-out
    string can never reach the model as the same characters.
    """
    key = unicodedata.normalize("NFKC", source).encode()
    h = int.from_bytes(hashlib.blake2b(key, digest_size=8, person=b"dates-heldout").digest())
    return h < HELDOUT_FRACTION * 2**64


def train_stream(seed: int) -> Iterator[tuple[str, str]]:
    """Endless, deterministic stream of training pairs (held-out strings are skipped)."""
    rng = random.Random(seed)
    while True:
        pair = sample_pair(rng)
        if not is_heldout(pair[0]):
            yield pair


def heldout_set(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """`n` held-out pairs with distinct sources, deterministic in `seed`."""
    rng = random.Random(f"heldout-{seed}")
    seen: set[str] = set()
    pairs = []
    while len(pairs) < n:
        source, target = sample_pair(rng)
        if is_heldout(source) and source not in seen:
            seen.add(source)
            pairs.append((source, target))
    return pairs


def train_set(n: int, seed: int = 0) -> list[tuple[str, str]]:
    """The first `n` pairs of `train_stream(seed)`."""
    stream = train_stream(seed)
    return [next(stream) for _ in range(n)]


def is_valid_target(text: str) -> bool:
    """Whether `text` is an ISO date 'YYYY-MM-DD' inside the supported year range."""
    if len(text) != TARGET_CHARS or text[4] != "-" or text[7] != "-":
        return False
    try:
        d = date.fromisoformat(text)
    except ValueError:
        return False
    return YEAR_MIN <= d.year <= YEAR_MAX


def looks_like_date(text: str) -> bool:
    """Cheap check that `text` has something a date is made of: a digit, a Chinese numeral
    or an English month name. Used to add a notice to outputs for inputs such as 'hello world'.
    """
    low = text.lower()
    if any(c.isdigit() for c in text) or any(c in CN_DIGITS + "十零" for c in text):
        return True
    return any(m[:3].lower() in low for m in MONTHS)


# --------------------------------------------------------------------------- tokenizer

# Every character a generated source or target can contain, plus the rest of printable ASCII so
# that typed text such as "hello world!" maps to real tokens rather than [UNK].
_ASCII = "".join(chr(c) for c in range(32, 127))
_CJK = "年月日号〇零一二三四五六七八九十星期天周礼拜"  # "，" is NFKC-folded to ","


def vocabulary() -> list[str]:
    """Token strings in id order: the four specials, then one token per character."""
    chars = sorted(set(_ASCII + _CJK))
    return list(SPECIAL_TOKENS) + chars


def build_tokenizer():
    """A character-level `tokenizers.Tokenizer` (WordLevel over single characters).

    NFKC normalisation first, so full-width digits and commas typed on a Chinese keyboard
    ("２０２１年３月３日") become the ASCII ones the model was trained on. `encode(text)` appends
    [EOS] (the encoder's input format); `encode(text, add_special_tokens=False)` gives the bare
    characters (the decoder side, which callers wrap in [BOS] ... [EOS]).
    """
    from tokenizers import (
        Regex,
        Tokenizer,
        decoders,
        models,
        normalizers,
        pre_tokenizers,
        processors,
    )

    vocab = {tok: i for i, tok in enumerate(vocabulary())}
    tok = Tokenizer(models.WordLevel(vocab, unk_token=UNK))
    tok.normalizer = normalizers.NFKC()
    tok.pre_tokenizer = pre_tokenizers.Split(Regex(r"[\s\S]"), behavior="isolated")
    tok.post_processor = processors.TemplateProcessing(
        single=f"$A {EOS}", special_tokens=[(EOS, vocab[EOS])]
    )
    tok.decoder = decoders.Fuse()
    tok.add_special_tokens(list(SPECIAL_TOKENS))
    return tok


def save_tokenizer(path: str | Path) -> Path:
    """Build the tokenizer and write it as JSON to `path`."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    build_tokenizer().save(str(path))
    return path


def dump_examples(n: int = 12, seed: int = 0) -> list[tuple[str, str]]:
    """One example per format for docs and quick looks (deterministic)."""
    rng = random.Random(seed)
    d0 = date(2021, 3, 3)
    out = [(render(d0, fmt, rng), d0.isoformat()) for fmt in FORMATS]
    out += [sample_pair(rng) for _ in range(n)]
    return out


if __name__ == "__main__":  # python -m engine.datasets.dates: print examples
    for src, tgt in dump_examples():
        print(f"{src!r:45} -> {tgt}")
