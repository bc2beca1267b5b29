"""gsavl's home on disk: the named data stores and the log of trained runs.

Both let the card's three commands work as written: `gsavl preprocess ./videos`
registers its store under the dataset's name, `gsavl train --dataset NAME` finds it
and records the checkpoint it made, and `gsavl localize clip.mp4` uses that checkpoint
when none is given. Everything lives under `$GSAVL_HOME` (default `~/.cache/gsavl`);
named stores under `$GSAVL_DATA` (default `$GSAVL_HOME/data`).
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

from gsavl_cli.errors import UsageError
from gsavl_cli.io.files import write_atomic

STORES_FILE = "datasets.json"
RUNS_FILE = "runs.jsonl"


def home_dir() -> Path:
    """`$GSAVL_HOME`, else `~/.cache/gsavl`."""
    return Path(os.environ.get("GSAVL_HOME") or Path.home() / ".cache" / "gsavl")


def data_dir() -> Path:
    """Where named datasets live: `$GSAVL_DATA`, else `$GSAVL_HOME/data`."""
    return Path(os.environ.get("GSAVL_DATA") or home_dir() / "data")


# -- named stores ---------------------------------------------------------------------------


@dataclass(frozen=True)
class NamedStore:
    """A store that `preprocess` registered under a dataset name."""

    name: str
    path: str
    layout: str
    clips: int
    created: float

    @property
    def exists(self) -> bool:
        """Whether the store's file is still there (`gsavl info` marks the ones that are gone)."""
        return Path(self.path).exists()


def _read_json(path: Path) -> dict:
    if not path.exists():
        return {}
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as exc:
        raise UsageError(f"cannot read {path}: {exc}", hint="delete it and run `gsavl preprocess` again") from None
    return data if isinstance(data, dict) else {}


def named_stores() -> dict[str, NamedStore]:
    """Registered names -> stores, plus `NAME.h5` files placed in the data home by hand."""
    found: dict[str, NamedStore] = {}
    folder = data_dir()
    if folder.is_dir():
        for path in sorted(folder.glob("*.h5")):
            found[path.stem] = NamedStore(path.stem, str(path), "?", -1, path.stat().st_mtime)
    for name, entry in _read_json(folder / STORES_FILE).items():
        try:
            found[name] = NamedStore(name=name, **{k: entry[k] for k in ("path", "layout", "clips", "created")})
        except (KeyError, TypeError):
            continue  # an entry from a damaged or foreign file: not ours to guess
    return found


def register_store(name: str, path: Path, layout: str, clips: int) -> NamedStore | None:
    """Records `path` under `name` (atomically); returns the entry it replaced, if any."""
    folder = data_dir()
    index = _read_json(folder / STORES_FILE)
    previous = index.get(name)
    entry = NamedStore(name, str(Path(path).resolve()), layout, int(clips), time.time())
    index[name] = {k: v for k, v in asdict(entry).items() if k != "name"}
    folder.mkdir(parents=True, exist_ok=True)
    write_atomic(folder / STORES_FILE, json.dumps(index, indent=2, sort_keys=True).encode("utf-8"))
    if isinstance(previous, dict) and previous.get("path") != entry.path:
        return NamedStore(
            name, str(previous.get("path")), str(previous.get("layout")), int(previous.get("clips", -1)), 0.0
        )
    return None


# -- trained runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class TrainedRun:
    """One finished `gsavl train`: the checkpoint it chose and what it was trained on."""

    checkpoint: str
    dataset: str
    model: str
    family: str
    finished: float

    @property
    def when(self) -> str:
        """The run's finish time, local, as YYYY-MM-DD HH:MM (for messages)."""
        return time.strftime("%Y-%m-%d %H:%M", time.localtime(self.finished))


def record_run(checkpoint: Path, dataset: str, model: str, family: str) -> TrainedRun:
    """Appends the run to the log (one JSON line, so an interrupted write loses only itself)."""
    run = TrainedRun(str(Path(checkpoint).resolve()), dataset, model, family, time.time())
    home = home_dir()
    home.mkdir(parents=True, exist_ok=True)
    with open(home / RUNS_FILE, "a", encoding="utf-8") as f:
        f.write(json.dumps(asdict(run)) + "\n")
    return run


def trained_runs() -> list[TrainedRun]:
    """Every recorded run, oldest first; unreadable lines are skipped."""
    path = home_dir() / RUNS_FILE
    if not path.exists():
        return []
    runs = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            runs.append(TrainedRun(**json.loads(line)))
        except (json.JSONDecodeError, TypeError):
            continue
    return runs


def latest_run() -> TrainedRun | None:
    """The most recent run whose checkpoint is still on disk."""
    return next((run for run in reversed(trained_runs()) if Path(run.checkpoint).exists()), None)


NO_MODEL = (
    "no trained model to use: pass --checkpoint FILE, train one with `gsavl train --dataset NAME`, "
    "use the training-free object prior with --map obj, or localize with no training with --map text "
    "(zero-shot CLAP + CLIPSeg: pip install 'gsavl[zeroshot]', weights downloaded on first use)"
)
TRAINING_FREE = ("obj", "text", "textobj")
"""The maps that need no checkpoint (`model.TRAINING_FREE_MAPS`; repeated here, which imports no torch)."""


def choose_checkpoint(given: Path | None, maps: tuple[str, ...]) -> tuple[Path | None, TrainedRun | None]:
    """The checkpoint a command uses: the given one; none for training-free maps alone (obj, text, textobj); else the latest run.

    `maps` are the maps asked for (empty: the command's default, which needs a model).

    Returns (checkpoint, run it came from when it was not given).
    """
    if given is not None:
        return Path(given), None
    if maps and set(maps) <= set(TRAINING_FREE):
        return None, None
    run = latest_run()
    if run is None:
        raise UsageError(NO_MODEL)
    return Path(run.checkpoint), run
