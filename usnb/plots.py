"""Figures for the data layer: frame grids with boxes, visibility strips."""
from __future__ import annotations

from pathlib import Path
from typing import Sequence

import matplotlib

if not matplotlib.get_backend().lower().startswith(("module://", "nbagg", "ipympl", "widget")):
    matplotlib.use("Agg")  # headless (papermill, CI) unless a notebook backend is active
import matplotlib.patches as patches
import matplotlib.pyplot as plt
import numpy as np

from .datasets.records import VideoRecord


def frame_grid(frames: np.ndarray, indices: Sequence[int] | None = None, boxes: dict | None = None,
               titles: Sequence[str] | None = None, ax_row=None, cmap: str = "gray"):
    """Show frames `(T, H, W, C)` at `indices` in one row, boxes {frame: [(x, y, w, h)]} drawn in yellow."""
    indices = list(range(len(frames))) if indices is None else list(indices)
    if ax_row is None:
        _, ax_row = plt.subplots(1, len(indices), figsize=(1.6 * len(indices), 1.8), squeeze=False)
        ax_row = ax_row[0]
    for k, (ax, i) in enumerate(zip(ax_row, indices)):
        frame = frames[i]
        ax.imshow(frame[..., 0] if frame.shape[-1] == 1 else frame, cmap=cmap, vmin=0, vmax=255)
        for x, y, w, h in (boxes or {}).get(int(i), []):
            ax.add_patch(patches.Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="yellow", lw=1))
        ax.set_title(titles[k] if titles else f"t={i}", fontsize=7)
        ax.axis("off")
    return ax_row


def sweep_figure(records: Sequence[VideoRecord], n_frames: int = 8, path: str | Path | None = None):
    """One row per clip: `n_frames` frames spread over the sweep, lesion boxes and visibility in the titles."""
    fig, axes = plt.subplots(len(records), n_frames, figsize=(1.5 * n_frames, 1.7 * len(records)), squeeze=False)
    for row, record in zip(axes, records):
        frames = record.read(grayscale=True)
        idx = np.linspace(0, len(frames) - 1, n_frames).round().astype(int)
        vis = record.meta.get("visibility")
        titles = [f"t={i}" + (f" v={vis[i]:.2f}" if vis else "") for i in idx]
        frame_grid(frames, idx, record.boxes, titles, ax_row=row)
        row[0].text(-0.1, 0.5, f"{record.label}\n{record.video_id}", transform=row[0].transAxes, ha="right",
                    va="center", fontsize=8)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=80, bbox_inches="tight")
    return fig


def readme_figure(path: str | Path) -> Path:
    """The README's example phantom frames: a benign and a malignant breast sweep and two lung clips."""
    from .phantom import generate, load_phantom
    import tempfile

    with tempfile.TemporaryDirectory() as tmp:
        breast = load_phantom(generate("breast", Path(tmp) / "b", n=8, seed=3, n_images=0, workers=1))
        lung = load_phantom(generate("lung", Path(tmp) / "l", n=6, seed=3, workers=1))
        picks = [next(r for r in breast if r.label == "benign"), next(r for r in breast if r.label == "malignant"),
                 next(r for r in lung if r.label == "normal"), next(r for r in lung if r.label == "consolidation")]
        fig = sweep_figure(picks, n_frames=8, path=path)
        plt.close(fig)
    return Path(path)
