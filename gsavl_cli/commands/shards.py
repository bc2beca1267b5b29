"""Preprocessing in shards: a stable split of the clip list, one resumable store per shard, one merged store.

A clip's shard depends only on its id and the shard count (a hash, not its position),
so adding clips to a dataset moves none of the existing ones. Each shard records which
clips it was given, so `merge` can tell a finished shard from an interrupted one. The
cluster launcher hands the same shards to submitit (a SLURM job array, or local
processes) instead of running a scheduler of its own.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import h5py
import numpy as np

from gsavl_cli.datasets import ClipSource
from gsavl_cli.errors import GsavlError, UsageError
from gsavl_cli.io.files import atomic_path
from gsavl_cli.io.store import SCHEMA_VERSION, check_schema

SHARD_ATTR = "shard"
SHARD_IDS = "shard_ids"


def parse_shard(text: str) -> tuple[int, int]:
    """`K/N` (0 <= K < N) -> (K, N)."""
    index, sep, count = text.partition("/")
    try:
        k, n = int(index), int(count)
    except ValueError:
        k = n = -1
    if not sep or n < 1 or not 0 <= k < n:
        raise UsageError(f"--shard must be K/N with 0 <= K < N, got {text!r}", hint="e.g. --shard 0/4 ... --shard 3/4")
    return k, n


def shard_of(clip_id: str, count: int) -> int:
    """The shard a clip belongs to: its id's sha256 modulo `count` (stable across runs, machines and list changes)."""
    return int.from_bytes(hashlib.sha256(clip_id.encode("utf-8")).digest()[:8], "little") % count


def select_shard(clips: list[ClipSource], index: int, count: int) -> list[ClipSource]:
    """The clips of shard `index` of `count` (`shard_of`: stable whatever else the list holds)."""
    return [c for c in clips if shard_of(c.clip_id, count) == index]


def start_shard(
    path: Path, settings: dict[str, Any], index: int, count: int, ids: list[str], *, overwrite: bool = False
) -> None:
    """Creates (or reopens) a shard's store and records which shard it is and which clips it was given,
    before any clip is written, so an interrupted shard is known as one. Refuses to change a store's shard."""
    from gsavl_cli.io.store import StoreWriter

    StoreWriter(path, settings, overwrite=overwrite).close()
    with h5py.File(path, "r+") as f:
        previous = f.attrs.get(SHARD_ATTR)
        if previous is not None and json.loads(previous) != {"index": index, "count": count}:
            raise UsageError(
                f"{path} holds shard {json.loads(previous)['index']}/{json.loads(previous)['count']}, not {index}/{count}",
                hint="give each shard its own -o file",
            )
        f.attrs[SHARD_ATTR] = json.dumps({"index": index, "count": count})
        if SHARD_IDS in f:
            del f[SHARD_IDS]
        f.create_dataset(SHARD_IDS, data=np.array(sorted(ids), dtype=object), dtype=h5py.string_dtype())


# -- merge ----------------------------------------------------------------------------------


@dataclass
class MergeResult:
    """What a merge of shard stores produced: the output store, its clip count, the parts and any clips they lacked."""

    output: Path
    clips: int
    parts: int
    missing: dict[str, list[str]] = field(default_factory=dict)  # part -> clip ids it lacks (with allow_missing)

    def to_json(self) -> dict[str, Any]:
        """The merge's summary as JSON values, for `--json`."""
        return {"output": str(self.output), "clips": self.clips, "parts": self.parts, "missing": self.missing}


def _part_facts(path: Path) -> dict[str, Any]:
    try:
        f = h5py.File(path, "r")
    except OSError as exc:
        raise UsageError(
            f"{path} is not a readable store ({type(exc).__name__})",
            hint="pass the part-*.h5 files of one sharded preprocess",
        ) from None
    with f:
        check_schema(f, path)
        shard = f.attrs.get(SHARD_ATTR)
        if shard is None:
            raise UsageError(
                f"{path} is not a shard (made without --shard)",
                hint="merge only the stores of `gsavl preprocess --shard K/N`",
            )
        groups = f["clips"]
        complete = {str(g.attrs["id"]): key for key, g in groups.items() if g.attrs.get("complete", False)}
        return {
            "path": path,
            "shard": json.loads(shard),
            "settings": f.attrs["settings"],
            "complete": complete,
            "unfinished": len(groups) - len(complete),
            "expected": [s.decode() if isinstance(s, bytes) else str(s) for s in f[SHARD_IDS][()]]
            if SHARD_IDS in f
            else [],
        }


def _check_parts(parts: list[dict[str, Any]], allow_missing: bool) -> dict[str, list[str]]:
    first = parts[0]
    counts = {p["shard"]["count"] for p in parts}
    if len(counts) > 1:
        raise UsageError(
            f"the parts come from different shard counts ({', '.join(map(str, sorted(counts)))})",
            hint="merge the parts of one run",
        )
    count = counts.pop()
    seen: dict[int, Path] = {}
    for p in parts:
        if p["settings"] != first["settings"]:
            raise UsageError(
                f"{p['path']} was made with other settings than {first['path']}",
                hint="preprocess every shard with the same options",
            )
        k = p["shard"]["index"]
        if k in seen:
            raise UsageError(f"shard {k}/{count} is given twice: {seen[k]} and {p['path']}", hint="pass each part once")
        seen[k] = p["path"]
    absent = sorted(set(range(count)) - set(seen))
    if absent:
        raise UsageError(
            f"shard(s) {', '.join(f'{k}/{count}' for k in absent)} missing from the parts given",
            hint="run `gsavl preprocess SOURCE --shard K/N` for each, then merge all of them",
        )
    owner: dict[str, Path] = {}
    missing: dict[str, list[str]] = {}
    for p in parts:
        for clip_id in p["complete"]:
            if clip_id in owner:
                raise UsageError(
                    f"clip {clip_id!r} is in both {owner[clip_id]} and {p['path']}", hint="merge the parts of one run"
                )
            owner[clip_id] = p["path"]
        lacking = sorted(set(p["expected"]) - set(p["complete"]))
        if lacking and not allow_missing:
            why = f"{p['unfinished']} unfinished" if p["unfinished"] else "failed or not yet written"
            raise UsageError(
                f"{p['path']} lacks {len(lacking)} of its {len(p['expected'])} clips ({why}, e.g. {lacking[0]!r})",
                hint=f"rerun its `gsavl preprocess ... --shard {p['shard']['index']}/{count}`; --allow-missing merges without them",
            )
        if lacking:
            missing[str(p["path"])] = lacking
    return missing


def merge_stores(
    output: Path, part_paths: list[Path], *, allow_missing: bool = False, on_clip: Callable[[str], None] | None = None
) -> MergeResult:
    """One store from the shards' stores, written atomically; refuses incomplete, overlapping or mixed parts."""
    if not part_paths:
        raise UsageError("no parts to merge", hint="gsavl merge OUT.h5 part-*.h5")
    parts = [_part_facts(Path(p)) for p in part_paths]
    missing = _check_parts(parts, allow_missing)
    total = 0
    with atomic_path(output) as tmp, h5py.File(tmp, "w") as out:
        with h5py.File(parts[0]["path"], "r") as f:
            for key, value in f.attrs.items():
                if key != SHARD_ATTR:
                    out.attrs[key] = value
        out.attrs["schema_version"] = SCHEMA_VERSION
        clips = out.create_group("clips")
        for p in sorted(parts, key=lambda q: q["shard"]["index"]):
            with h5py.File(p["path"], "r") as f:
                for clip_id, key in sorted(p["complete"].items()):
                    f.copy(f["clips"][key], clips, name=key)
                    total += 1
                    if on_clip is not None:
                        on_clip(clip_id)
    return MergeResult(Path(output), total, len(parts), missing)


# -- the cluster launcher (submitit) ----------------------------------------------------------


@dataclass
class ShardJob:
    """What one array task does: preprocess its clips into its own part."""

    sources: list[ClipSource]
    output: Path
    settings: dict[str, Any]
    index: int
    count: int
    workers: int = 1


def preprocess_shard(job: ShardJob) -> dict[str, Any]:
    """Runs one shard (resuming its part) and marks the part; the result as JSON facts."""
    from gsavl_cli.commands.preprocess import run_preprocess

    start_shard(job.output, job.settings, job.index, job.count, [s.clip_id for s in job.sources])
    result = run_preprocess(job.sources, job.output, job.settings, workers=job.workers)
    if result.interrupted:
        raise GsavlError(f"shard {job.index}/{job.count} was interrupted")
    return result.to_json()


@dataclass
class ClusterPlan:
    """How submitit runs the shards (Slurm or local), where parts and logs go, and each job's time and CPUs."""

    executor: str  # "slurm" or "local"
    shards: int
    folder: Path  # parts and logs
    partition: str | None = None
    minutes: int = 240
    cpus: int = 4


def _submitit():
    try:
        import submitit
    except ImportError:
        raise UsageError("--executor needs submitit", hint="pip install 'gsavl[cluster]'") from None
    return submitit


def _executor(plan: ClusterPlan):
    submitit = _submitit()
    logs = plan.folder / "logs"
    if plan.executor == "local":
        executor = submitit.LocalExecutor(folder=logs)
        executor.update_parameters(timeout_min=plan.minutes)
    elif plan.executor == "slurm":
        executor = submitit.AutoExecutor(folder=logs, cluster="slurm")
        executor.update_parameters(
            timeout_min=plan.minutes,
            cpus_per_task=plan.cpus,
            slurm_partition=plan.partition,
            slurm_array_parallelism=plan.shards,
            name="gsavl-preprocess",
        )
    else:
        raise UsageError(f"unknown executor {plan.executor!r}", hint="choose local or slurm")
    return executor


def run_sharded(
    sources: list[ClipSource],
    settings: dict[str, Any],
    plan: ClusterPlan,
    *,
    on_progress: Callable[[int, int], None] | None = None,
    poll_s: float = 1.0,
) -> list[Path]:
    """Submits one task per shard, waits, resubmits each failed shard once; returns the parts (all finished)."""
    executor = _executor(plan)
    plan.folder.mkdir(parents=True, exist_ok=True)
    jobs_spec = [
        ShardJob(
            select_shard(sources, k, plan.shards),
            plan.folder / f"part-{k}.h5",
            settings,
            k,
            plan.shards,
            workers=plan.cpus if plan.executor == "slurm" else 1,
        )
        for k in range(plan.shards)
    ]
    jobs = dict(zip(range(plan.shards), executor.map_array(preprocess_shard, jobs_spec)))
    retried: set[int] = set()
    while True:
        done = [k for k, j in jobs.items() if j.done()]
        if on_progress is not None:
            on_progress(len(done), plan.shards)
        if len(done) == plan.shards:
            failed = [k for k, j in jobs.items() if j.exception() is not None]
            again = [k for k in failed if k not in retried]
            if not again:
                break
            for k in again:  # once more, each on its own: a node failure or preemption should not end the run
                retried.add(k)
                jobs[k] = executor.submit(preprocess_shard, jobs_spec[k])
            continue
        time.sleep(poll_s)
    failed = [k for k, j in jobs.items() if j.exception() is not None]
    if failed:
        first = jobs[failed[0]]
        raise GsavlError(
            f"shard(s) {', '.join(f'{k}/{plan.shards}' for k in failed)} failed twice; first error: "
            f"{str(first.exception()).strip().splitlines()[-1] if str(first.exception()).strip() else first.exception()!r}",
            hint=f"logs: {first.paths.stderr}; rerun the same command to resume",
        )
    return [spec.output for spec in jobs_spec]
