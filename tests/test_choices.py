"""The CLI's closed choices are the library's names, and the internal-error path never shows a traceback."""

from __future__ import annotations

import pytest

from gsavl_cli import choices, model, segment
from gsavl_cli.commands.evaluate import prefetch


def test_enums_match_the_library():
    assert tuple(m.value for m in choices.MapName) == model.MAP_NAMES
    assert tuple(s.value for s in choices.SegmenterName) == tuple(segment.SEGMENTERS)
    assert tuple(m.value for m in choices.MaskChoice) == segment.MASK_CHOICES
    assert {m.value for m in choices.SamModel} == {*segment.SAM_ARCHS, "tiny", *segment.SAM2_MODELS}
    from gsavl_cli.model.zeroshot import AUDIO_TAGGERS

    assert tuple(m.value for m in choices.ClapModel) == tuple(AUDIO_TAGGERS)


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


def test_the_cli_defaults_are_the_settings_defaults():
    """The settings dataclasses hold the defaults; the CLI, kept light to import (no torch), repeats them: checked here."""
    import dataclasses

    from typer.main import get_command

    from gsavl_cli.cli import app
    from gsavl_cli.commands.evaluate import EvalSettings
    from gsavl_cli.commands.localize import LocalizeSettings
    from gsavl_cli.commands.train import TrainConfig

    def plain(value):
        return getattr(value, "value", value)

    commands = get_command(app).commands
    checked = 0
    for name, settings in (("eval", EvalSettings), ("localize", LocalizeSettings), ("train", TrainConfig)):
        defaults = {f.name: f.default for f in dataclasses.fields(settings) if f.default is not dataclasses.MISSING}
        for param in commands[name].params:
            if param.name in defaults and param.default is not None:
                assert plain(param.default) == plain(defaults[param.name]), (name, param.name)
                checked += 1
    assert checked >= 25
    from gsavl_cli.model.zeroshot import ZeroShotSettings

    zeroshot = {f.name: f.default for f in dataclasses.fields(ZeroShotSettings)}
    for name in ("eval", "localize"):
        given = {p.name: p.default for p in commands[name].params if p.name in zeroshot}
        assert set(given) == set(zeroshot) - {"grounder"}, name  # one grounder: no option chooses it
        assert all(plain(given[k]) == plain(zeroshot[k]) for k in given), name
