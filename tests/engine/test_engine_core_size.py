"""engine/core is the Transformer a learner reads: it stays small enough to read in a sitting.

Speed-only code (fused dispatch, query blocks, packed projections, table and buffer growth)
lives in engine/fast; this test keeps it there.
"""

from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "engine" / "core"
LIMIT = 1000  # non-blank lines in all of engine/core/*.py


def test_engine_core_stays_within_its_line_budget():
    counts = {p.name: sum(1 for line in p.read_text(encoding="utf-8").splitlines()
                          if line.strip())
              for p in sorted(CORE.glob("*.py"))}
    assert counts, CORE
    total = sum(counts.values())
    assert total <= LIMIT, f"engine/core has {total} non-blank lines (limit {LIMIT}): {counts}"
