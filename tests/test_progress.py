"""The search's progress bar: only on an interactive terminal, and only after a second."""

from __future__ import annotations

import io
import sys

import chunkc
from chunkc.passes import autochunk as ac

from graphs import transformer


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_no_bar_unless_stderr_is_a_terminal(monkeypatch):
    monkeypatch.setattr(sys, "stderr", io.StringIO())
    assert ac._progress(True, [100, 200], 50) is None
    monkeypatch.setattr(sys, "stderr", Terminal())
    bar = ac._progress(True, [100, 200], 50)
    assert bar is not None
    bar.close()
    assert ac._progress(False, [100, 200], 50) is None  # progress=False: never


def test_a_library_call_writes_nothing_to_a_captured_stderr(capsys):
    chunkc.autochunk(transformer(layers=2), 0.3, sizes={"L": 192})  # progress left at its default
    assert capsys.readouterr().err == ""


def test_on_a_terminal_a_short_search_shows_nothing(monkeypatch):
    term = Terminal()
    monkeypatch.setattr(sys, "stderr", term)
    bar = ac._progress(True, [100, 200], 50)
    bar.update(120)  # well within the first second
    bar.close()
    assert term.getvalue() == ""
