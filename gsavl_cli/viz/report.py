"""A static HTML report: one row per clip (and audio condition) with frame, heatmap + points, mask, truth and IoU.

The table sorts by any column in the browser (a few lines of inline JavaScript), so
the worst clips are one click away.
"""

from __future__ import annotations

import html
import math
from pathlib import Path
from typing import Any

from gsavl_cli.io.files import write_atomic
from gsavl_cli.io.media import write_png
from gsavl_cli.metrics import median_threshold
from gsavl_cli.viz.drawing import colourise, overlay, thumbnail


class ReportWriter:
    """Collects thumbnails during evaluation (`keep` callback), writes `report.html` at the end."""

    def __init__(self, folder: Path, map_name: str, sampler: str | None, height: int = 128) -> None:
        self.folder, self.map_name, self.sampler, self.height = Path(folder), map_name, sampler, height
        (self.folder / "thumbs").mkdir(parents=True, exist_ok=True)
        self.entries: list[dict[str, Any]] = []

    def __call__(self, clip_id: str, visuals: dict[str, Any]) -> None:
        frame, gt = visuals["frame"], visuals["gt"]
        heat = visuals["heatmaps"].get(self.map_name)
        if heat is None:
            return
        mask, prompts, iou = visuals["results"].get((self.map_name, self.sampler), (None, None, float("nan")))
        if self.sampler is None:
            mask = heat >= median_threshold(heat)
        stem = f"{len(self.entries):05d}"
        panels = {
            "frame": frame,
            "heatmap": overlay(
                frame,
                heat,
                None,
                None if prompts is None else prompts.points,
                None if prompts is None else prompts.labels,
            ),
            "mask": overlay(frame, None, mask, mask_colour=(0, 255, 0)) if mask is not None else colourise(heat),
            "truth": overlay(frame, None, gt, mask_colour=(255, 0, 255)),
        }
        for name, image in panels.items():
            write_png(self.folder / "thumbs" / f"{stem}_{name}.png", thumbnail(image, self.height))
        heard = visuals.get("heard", {}).get(self.map_name) or ""  # a zero-shot map's labels (label:score;...)
        self.entries.append(
            {"clip": clip_id, "audio": visuals.get("audio", "normal"), "heard": heard, "stem": stem, "iou": iou}
        )

    def write(self, title: str, results: list[dict[str, Any]]) -> Path:
        """The page; its header table shows `results` (metrics.json entries) under metrics.json's own names."""
        rows = "\n".join(self._row(e) for e in self.entries)
        page = _PAGE.format(title=html.escape(title), summary=summary_table(results), rows=rows)
        path = self.folder / "report.html"
        write_atomic(path, page.encode("utf-8"))
        return path

    def _row(self, entry: dict[str, Any]) -> str:
        iou = entry["iou"]
        cells = "".join(
            f'<td><img src="thumbs/{entry["stem"]}_{n}.png" loading="lazy"></td>'
            for n in ("frame", "heatmap", "mask", "truth")
        )
        value = "" if iou is None or math.isnan(iou) else f"{iou:.4f}"
        return (
            f"<tr><td>{html.escape(entry['clip'])}</td><td>{html.escape(entry['audio'])}</td>"
            f"<td>{html.escape(entry['heard'].replace(';', '; '))}</td>{cells}"
            f'<td data-v="{value or -1}">{value}</td></tr>'
        )


SUMMARY_KEYS = (
    "audio",
    "map",
    "sampler",
    "segmenter",
    "n",
    "miou",
    "mask_f",
    "fpr",
    "abstention_failure",
    "avsbench_miou",
    "avsbench_fmeasure",
    "ciou",
    "ap50",
    "auc",
    "pointing_game",
    "heard",
    "heard_accuracy",
)


def summary_table(results: list[dict[str, Any]]) -> str:
    """metrics.json entries as an HTML table: one row each, the keys as column names, the exact value in data-v."""
    head = "".join(f"<th>{k}</th>" for k in SUMMARY_KEYS)
    body = []
    for result in results:
        cells = []
        for key in SUMMARY_KEYS:
            value = result.get(key)
            if isinstance(value, dict):  # heard: label -> frames it was the top label of
                value = "; ".join(f"{label}: {n}" for label, n in value.items())
            shown = "-" if value is None else f"{value:.4f}" if isinstance(value, float) else html.escape(str(value))
            exact = "" if value is None else html.escape(repr(value) if isinstance(value, float) else str(value))
            cells.append(f'<td data-key="{key}" data-v="{exact}">{shown}</td>')
        body.append(f"<tr>{''.join(cells)}</tr>")
    return f'<table id="summary"><thead><tr>{head}</tr></thead><tbody>{"".join(body)}</tbody></table>'


_PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>{title}</title>
<style>
body{{font-family:system-ui,sans-serif;margin:1.5em}} table{{border-collapse:collapse}}
td,th{{padding:4px 8px;border-bottom:1px solid #ddd;vertical-align:middle}} .note{{color:#555;max-width:60em}}
#summary{{margin-bottom:1em}} #summary th{{cursor:default}}
th{{cursor:pointer;background:#f4f4f4;position:sticky;top:0}} img{{display:block}}
</style></head><body>
<h1>{title}</h1>
{summary}
<p class="note">The rows are metrics.json's entries for what the table below shows (with several audio conditions,
its <code>robustness</code> records: one row per condition). A row with no sampler scores the
heatmap (cIoU at the median threshold, pointing game at its maximum); a row with a sampler scores the masks (miou; mask_f, the F-measure of the binary mask, not the benchmark's M_F;
its ciou is the mask's cIoU, its pointing_game the share of positive prompts inside the ground truth).
Under negative audio (silent, noise, offscreen: nothing in the frame makes the sound) fpr is the mean share of a
frame's pixels predicted foreground (AVSBench-Robust's FPR) and abstention_failure the share of frames with any mask.</p>
<p>Click a column header to sort (IoU ascending shows the failures first).</p>
<p class="note">heard: for a zero-shot map (text, textobj), the labels CLAP heard the audio as (with their scores;
in the table above, how many frames had each as the top label), from which CLIPSeg made the heatmap.</p>
<table id="t"><thead><tr><th>clip</th><th>audio</th><th>heard as</th><th>frame</th><th>heatmap + prompts</th><th>predicted mask</th>
<th>ground truth</th><th>IoU</th></tr></thead><tbody>
{rows}
</tbody></table>
<script>
document.querySelectorAll('#t th').forEach((th, col) => th.onclick = () => {{
  const body = document.querySelector('#t tbody');
  const rows = [...body.rows];
  const up = th.dataset.dir !== 'up'; th.dataset.dir = up ? 'up' : 'down';
  const key = r => r.cells[col].dataset.v !== undefined ? parseFloat(r.cells[col].dataset.v) : r.cells[col].textContent;
  rows.sort((a, b) => (key(a) > key(b) ? 1 : key(a) < key(b) ? -1 : 0) * (up ? 1 : -1));
  rows.forEach(r => body.appendChild(r));
}});
</script></body></html>
"""
