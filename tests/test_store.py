"""The HDF5 store: round trip, settings guard, crash safety and resume."""

import subprocess
import sys
import textwrap

import h5py
import numpy as np
import pytest

from gsavl_cli.errors import UsageError
from gsavl_cli.io.store import ClipRecord, StoreWriter, open_store

SETTINGS = {"sample_rate": 16000, "layout": "folder", "frame_times": [0.0]}


def make_record(clip_id: str, seed: int = 0, masks: bool = True) -> ClipRecord:
    rng = np.random.default_rng(seed)
    return ClipRecord(
        clip_id=clip_id,
        frames=rng.integers(0, 256, (2, 30, 40, 3), dtype=np.uint8),
        frame_times=[0.0, 1.0],
        waveform=rng.standard_normal(16000).astype(np.float32),
        vggish=rng.standard_normal((1, 96, 64)).astype(np.float32),
        spectrogram=rng.standard_normal((257, 200)).astype(np.float32),
        masks=rng.random((1, 30, 40)) > 0.5 if masks else None,
        mask_frames=[0] if masks else None,
        boxes=np.array([[0.1, 0.2, 0.5, 0.6]], np.float32),
        meta={"source": f"/x/{clip_id}.mp4", "split": "test", "category": "dog", "duration": 1.0},
    )


def test_round_trip_is_exact(tmp_path):
    path = tmp_path / "d.h5"
    records = [make_record("a/b c", 1), make_record("клип", 2, masks=False)]
    with StoreWriter(path, SETTINGS) as writer:
        for r in records:
            writer.write(r)
    with open_store(path) as store:
        assert store.ids == sorted(r.clip_id for r in records)
        assert store.settings == SETTINGS
        for r in records:
            item = store[r.clip_id]
            np.testing.assert_array_equal(item["frames"], r.frames)
            np.testing.assert_array_equal(item["waveform"], r.waveform)
            np.testing.assert_array_equal(item["vggish"], r.vggish)
            np.testing.assert_array_equal(item["spectrogram"], r.spectrogram)
            np.testing.assert_array_equal(item["frame_times"], r.frame_times)
            assert store.meta(r.clip_id) == r.meta
            if r.masks is not None:
                assert item["masks"].dtype == bool
                np.testing.assert_array_equal(item["masks"], r.masks)
                np.testing.assert_array_equal(item["mask_frames"], [0])
            else:
                assert "masks" not in item
        assert store.arrays("a/b c")["frames"][0] == (2, 30, 40, 3)
        assert store.split_ids("test") == store.ids and store.split_ids("train") == []


def test_incomplete_clip_is_dropped_on_resume(tmp_path):
    path = tmp_path / "d.h5"
    with StoreWriter(path, SETTINGS) as writer:
        writer.write(make_record("done"))
    with h5py.File(path, "r+") as f:  # what a crash in the middle of a clip leaves
        g = f["clips"].create_group("half")
        g.attrs["id"] = "half"
    assert open_store(path).ids == ["done"]
    with StoreWriter(path, SETTINGS) as writer:
        assert writer.done_ids == {"done"}
    with h5py.File(path, "r") as f:
        assert "half" not in f["clips"]


def test_settings_mismatch_is_refused(tmp_path):
    path = tmp_path / "d.h5"
    StoreWriter(path, SETTINGS).close()
    with pytest.raises(UsageError, match="different settings.*sample_rate"):
        StoreWriter(path, dict(SETTINGS, sample_rate=8000))
    StoreWriter(path, dict(SETTINGS, sample_rate=8000), overwrite=True).close()
    assert open_store(path).settings["sample_rate"] == 8000


@pytest.mark.parametrize("content", [b"", b"not hdf5 at all"])
def test_foreign_files_are_refused(tmp_path, content):
    path = tmp_path / "x.h5"
    path.write_bytes(content)
    with pytest.raises(UsageError):
        open_store(path)


def test_other_hdf5_and_missing_file(tmp_path):
    other = tmp_path / "other.h5"
    with h5py.File(other, "w") as f:
        f["x"] = 1
    with pytest.raises(UsageError, match="not a gsavl data file"):
        open_store(other)
    with pytest.raises(UsageError, match="no such file"):
        open_store(tmp_path / "missing.h5")


def test_killed_writer_leaves_a_valid_file(tmp_path):
    """SIGKILL after three clips: the file opens and holds exactly those three."""
    path = tmp_path / "d.h5"
    script = textwrap.dedent(
        f"""
        import os, signal, sys
        sys.path.insert(0, {str(tmp_path)!r})
        from gsavl_cli.io.store import StoreWriter
        from test_helper_records import make_record
        w = StoreWriter({str(path)!r}, {SETTINGS!r})
        for i in range(3):
            w.write(make_record(f"c{{i}}", i))
        os.kill(os.getpid(), signal.SIGKILL)
        """
    )
    helper = tmp_path / "test_helper_records.py"
    helper.write_text(
        "import numpy as np\nfrom gsavl_cli.io.store import ClipRecord\n"
        + "\n".join(line for line in textwrap.dedent(_record_source()).splitlines())
    )
    proc = subprocess.run([sys.executable, "-c", script], capture_output=True)
    assert proc.returncode == -9, proc.stderr.decode()
    with open_store(path) as store:
        assert store.ids == ["c0", "c1", "c2"]
        np.testing.assert_array_equal(store["c2"]["waveform"], make_record("c2", 2).waveform)


def _record_source() -> str:
    import inspect

    return inspect.getsource(make_record)
