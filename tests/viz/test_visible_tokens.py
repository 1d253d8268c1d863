"""Invisible tokens (newline, zero-width joiner, variation selector) get one visible form in
figures (safe_label) and tables (visible_token); tokens with visible text stay as they are."""

from __future__ import annotations

import pytest

from viz.style import safe_label, visible_token


@pytest.mark.parametrize("token,shown", [
    ("\n", "\\n"), ("\u200d", "\\u200d"), ("\ufe0f", "\\ufe0f"), ("\u200b", "\\u200b"),
    ("\u2028", "\\u2028"), ("\t", "\\t"),
])
def test_invisible_tokens_are_shown_by_their_escapes(token, shown):
    assert visible_token(token) == shown
    assert safe_label(token) == shown


@pytest.mark.parametrize("token", ["a\u200db", "❤\ufe0f", "猫", "the"])
def test_visible_tokens_are_kept(token):
    assert visible_token(token) == token
    assert safe_label(token) == token


def test_markup_is_still_escaped_in_labels_only():
    assert safe_label("<b>") == "&lt;b&gt;" and visible_token("<b>") == "<b>"
