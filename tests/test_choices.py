"""The CLI's closed choices are the library's names, and the internal-error path never shows a traceback."""

from __future__ import annotations

import pytest

from gsavl_cli import choices, model, segment
from gsavl_cli.commands.evaluate import prefetch


def test_enums_match_the_library():
    assert tuple(m.value for m in choices.MapName) == model.MAP_NAMES
    assert tuple(s.value for s in choices.SegmenterName) == tuple(segment.SEGMENTERS)
    assert tuple(m.value for m in choices.MaskChoice) == segment.MASK_CHOICES
    assert {m.value for m in choices.SamModel} == {*segment.SAM_ARCHS, "tiny"}


def test_prefetch_keeps_order_and_passes_errors_on():
    assert list(prefetch(iter(range(20)), depth=2)) == list(range(20))

    def broken():
        yield 1
        raise KeyError("boom")

    got = []
    with pytest.raises(KeyError, match="boom"):
        for item in prefetch(broken()):
            got.append(item)
    assert got == [1]
