"""Figures: frame grids and sweeps (data), training curves, ROC curves, metric tables, t-SNE, CAM overlays,
attention over frames (results). Every function returns the matplotlib Figure (or axes) and, given
`path`, saves a PNG."""
from __future__ import annotations

import inspect
from pathlib import Path
from typing import Callable, Mapping, Sequence

import matplotlib

if not matplotlib.get_backend().lower().startswith(("module://", "nbagg", "ipympl", "widget")):
    matplotlib.use("Agg")  # headless (papermill, CI) unless a notebook backend is active
import matplotlib.patches as patches
import matplotlib.pyplot as plt
import numpy as np

from . import io
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
        _draw_boxes(ax, (boxes or {}).get(int(i)))
        ax.set_title(titles[k] if titles else f"t={i}", fontsize=8)
        ax.axis("off")
    return ax_row


def sweep_figure(records: Sequence[VideoRecord], n_frames: int = 8, path: str | Path | None = None):
    """One row per clip: `n_frames` frames spread over the sweep, lesion boxes and visibility in the titles."""
    fig, axes = plt.subplots(len(records), n_frames, figsize=(1.5 * n_frames, 1.7 * len(records)), squeeze=False)
    for row, record in zip(axes, records):
        idx = np.linspace(0, io.clip_shape(record.path)[0] - 1, n_frames).round().astype(int)
        frames = record.read(grayscale=True, indices=idx)  # only the frames shown: a clip may be an hour long
        vis = record.meta.get("visibility")
        titles = [f"t={i}" + (f" v={vis[i]:.2f}" if vis else "") for i in idx]
        frame_grid(frames, None, {k: record.boxes.get(int(i)) for k, i in enumerate(idx)}, titles, ax_row=row)
        row[0].text(-0.1, 0.5, f"{record.label}\n{record.video_id}", transform=row[0].transAxes, ha="right",
                    va="center", fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def readme_figure(path: str | Path) -> Path:
    """The README's example phantom frames: a benign and a malignant breast sweep and two lung clips."""
    import tempfile

    from .phantom import generate, load_phantom

    with tempfile.TemporaryDirectory() as tmp:
        breast = load_phantom(generate("breast", Path(tmp) / "b", n=8, seed=3, n_images=0, workers=1))
        lung = load_phantom(generate("lung", Path(tmp) / "l", n=6, seed=3, workers=1))
        picks = [next(r for r in breast if r.label == "benign"), next(r for r in breast if r.label == "malignant"),
                 next(r for r in lung if r.label == "normal"), next(r for r in lung if r.label == "consolidation")]
        fig = sweep_figure(picks, n_frames=8, path=path)
        plt.close(fig)
    return Path(path)


_NOT_CURVES = ("epoch", "lr", "seconds")


def _save(fig, path: str | Path | None):
    if path:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        fig.savefig(path, dpi=110, bbox_inches="tight")  # 8 pt text: 12 px
    return fig


def explorer(draw: Callable[..., "plt.Figure"], path: str | Path | None = None, /, **sliders) -> None:
    """An interactive figure: `draw(**values)` returns a Figure; `sliders` are ipywidgets abbreviations of its
    arguments (`alpha=(0.0, 0.9, 0.05)` a slider, a list a dropdown), starting at `draw`'s defaults.

    `draw()` at its defaults is saved to `path` (the static figure a report shows). Live in JupyterLab: one figure
    under the sliders, redrawn in place as they move. Headless (`usnb.live.headless()`): that figure alone, no
    widget. Either way the notebook shows one figure, never a live one beside a stale copy.
    """
    from IPython.display import display

    from .live import headless

    fig = _save(draw(), path)
    if headless():
        display(fig)
        plt.close(fig)
        return
    plt.close(fig)
    import ipywidgets as widgets

    def redraw(**values):  # returns None: interact shows nothing more than what is displayed here
        figure = draw(**values)
        display(figure)
        plt.close(figure)

    # the sliders start at draw's defaults: interact reads them from the signature it is given
    params = inspect.signature(draw).parameters
    redraw.__signature__ = inspect.Signature([params[name] for name in sliders])
    display(widgets.interactive(redraw, **sliders))


def _numpy(x) -> np.ndarray:
    return x.detach().float().cpu().numpy() if hasattr(x, "detach") else np.asarray(x)


def _pick(n: int, indices: Sequence[int] | None, max_frames: int) -> list[int]:
    """Frames to show: `indices`, else all of them, else `max_frames` spread evenly."""
    if indices is not None:
        return [int(i) for i in indices]
    return list(range(n)) if n <= max_frames else np.linspace(0, n - 1, max_frames).round().astype(int).tolist()


def _grey(frame: np.ndarray) -> np.ndarray:
    """(H, W), (H, W, 1) or (H, W, 3) -> something imshow draws in grey or colour."""
    return frame[..., 0] if frame.ndim == 3 and frame.shape[-1] == 1 else frame


def _draw_boxes(ax, frame_boxes):
    for x, y, w, h in frame_boxes or []:
        ax.add_patch(patches.Rectangle((x - 0.5, y - 0.5), w, h, fill=False, edgecolor="yellow", lw=1))


def training_curves(history: Sequence[Mapping], keys: Sequence[str] | None = None,
                    path: str | Path | None = None):
    """One panel per metric of `fit`'s per-epoch dicts; `loss` and `val_loss` share a panel."""
    if not history:
        raise ValueError("history is empty; train at least one epoch (fit returns one dict per epoch)")
    if keys is None:
        keys = [k for k in history[0] if k not in _NOT_CURVES and isinstance(history[0][k], (int, float))]
    groups: dict[str, list[str]] = {}
    for k in keys:
        groups.setdefault(k.removeprefix("val_"), []).append(k)
    if not groups:
        raise ValueError(f"no numeric metric to plot in {sorted(history[0])}; pass keys=")
    epochs = [row.get("epoch", i + 1) for i, row in enumerate(history)]
    fig, axes = plt.subplots(1, len(groups), figsize=(3.2 * len(groups), 2.6), squeeze=False)
    for ax, (name, members) in zip(axes[0], groups.items()):
        for k in members:
            ax.plot(epochs, [row.get(k, np.nan) for row in history], marker=".", label=k)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("epoch")
        ax.legend(fontsize=8)
    fig.tight_layout()
    return _save(fig, path)


def roc_curves(rows: Mapping[str, tuple | Mapping], path: str | Path | None = None, ax=None):
    """ROC curve per row {name: (y_true, y_score) or roc_data(...)}, labelled with its AUC."""
    from .metrics import roc_data

    fig = ax.figure if ax is not None else plt.subplots(figsize=(3.6, 3.4))[0]
    ax = ax if ax is not None else fig.axes[0]
    for name, value in rows.items():
        roc = value if isinstance(value, Mapping) else roc_data(*value)
        ax.plot(roc["fpr"], roc["tpr"], label=f"{name} (AUC={roc['auc']:.3f})")
    ax.plot([0, 1], [0, 1], ls="--", c="grey", lw=0.8)
    ax.set(xlabel="1 - specificity (FPR)", ylabel="sensitivity (TPR)", xlim=(0, 1), ylim=(0, 1.01))
    # beside the axes, not on them: a legend of several long row names would cover the curves and the ticks
    ax.legend(fontsize=7, loc="upper left", bbox_to_anchor=(1.02, 1.0), frameon=False)
    fig.tight_layout()
    return _save(fig, path)


def metrics_table_figure(table, path: str | Path | None = None, title: str | None = None):
    """A `metrics.MetricsTable` (or a list of rows of strings, header first) drawn as a figure."""
    if hasattr(table, "cells"):
        header, cells = table.header(), table.cells()
    else:
        header, *cells = [list(map(str, r)) for r in table]
    fig, ax = plt.subplots(figsize=(1.2 * len(header) + 1, 0.35 * (len(cells) + 1) + 0.4))
    ax.axis("off")
    drawn = ax.table(cellText=cells, colLabels=header, loc="center", cellLoc="center")
    drawn.auto_set_font_size(False)
    drawn.set_fontsize(8)
    if title:
        ax.set_title(title, fontsize=9)
    return _save(fig, path)


def tsne_scatter(embedding, labels, names: Mapping | Sequence[str] | None = None, path: str | Path | None = None,
                 ax=None, title: str = "t-SNE"):
    """Scatter of an (N, 2) embedding (an (N, D) one is embedded with `explain.tsne` first), coloured by label."""
    import seaborn as sns

    emb = _numpy(embedding)
    if emb.ndim != 2 or len(emb) != len(labels):
        raise ValueError(f"embedding must be (N, 2) with N = len(labels) = {len(labels)}, got {emb.shape}")
    if emb.shape[1] != 2:
        from .explain import tsne

        emb = tsne(emb)
    labels = _numpy(labels).reshape(-1)
    if names is not None:
        labels = np.array([names[int(v)] if not isinstance(names, Mapping) else names[v] for v in labels])
    fig = ax.figure if ax is not None else plt.subplots(figsize=(3.6, 3.4))[0]
    ax = ax if ax is not None else fig.axes[0]
    sns.scatterplot(x=emb[:, 0], y=emb[:, 1], hue=labels, ax=ax, s=18, palette="deep")
    ax.set(xticks=[], yticks=[], title=title)
    fig.tight_layout()
    return _save(fig, path)


def cam_overlay(frames, cam, boxes: Mapping | None = None, indices: Sequence[int] | None = None,
                alpha: float = 0.45, max_frames: int = 8, path: str | Path | None = None, titles=None):
    """Frames `(T, H, W)` uint8 (or (T, H, W, C)) with a CAM `(T, H, W)` in [0, 1] over them, boxes in yellow."""
    frames, cam = _numpy(frames), _numpy(cam)
    if len(frames) != len(cam) or cam.shape[1:3] != frames.shape[1:3]:
        raise ValueError(f"cam {cam.shape} must match frames {frames.shape} in T, H, W; "
                         "GradCAM already returns (T, H, W) at the input size")
    shown = _pick(len(frames), indices, max_frames)
    fig, axes = plt.subplots(1, len(shown), figsize=(1.7 * len(shown), 1.9), squeeze=False)
    for k, (ax, i) in enumerate(zip(axes[0], shown)):
        ax.imshow(_grey(frames[i]), cmap="gray", vmin=0, vmax=255)
        heat = ax.imshow(cam[i], cmap="jet", alpha=alpha, vmin=0, vmax=1)
        _draw_boxes(ax, (boxes or {}).get(int(i)))
        title = titles[i] if titles and len(titles) == len(frames) else titles[k] if titles else f"t={i}"
        ax.set_title(title, fontsize=8)  # titles: one per frame, or one per shown frame
        ax.axis("off")
    fig.tight_layout()
    bar = fig.colorbar(heat, ax=list(axes[0]), fraction=0.02, pad=0.01)
    bar.set_label("CAM (clip max = 1)", fontsize=7)
    bar.ax.tick_params(labelsize=7)
    return _save(fig, path)


def gradcam_strip(gradcam, record: VideoRecord, data, indices, target_class: int = 1, titles=None,
                  path: str | Path | None = None):
    """Grad-CAM of one clip's frames `indices` over the frames the model sees, with its lesion boxes: the strip of
    every Grad-CAM figure (`gradcam`: a recipe's `gradcam(model)`; `data`: `clips`, `cache` and `view`)."""
    from .evaluate import cam_frames

    seen, cam, boxes = cam_frames(gradcam, record, data.cache, data.view, indices, target_class)
    return cam_overlay(seen, cam, boxes=boxes, titles=titles or [f"t={int(i)}" for i in indices], path=path)


def attention_strip(frames, weights, indices: Sequence[int] | None = None, max_frames: int = 8,
                    path: str | Path | None = None, title: str = "attention over frames", name: str = "weight",
                    short: str = "w"):
    """Frames `(T, H, W)` in a row with a per-frame value `(T,)` as a bar plot beneath (shown frames darker): the
    model's attention weights, or another per-frame quantity (`name` on the axis, `short` in the frame titles)."""
    frames, weights = _numpy(frames), _numpy(weights).reshape(-1)
    if len(weights) != len(frames):
        raise ValueError(f"{len(weights)} weights for {len(frames)} frames; pass one weight per frame")
    shown = _pick(len(frames), indices, max_frames)
    fig = plt.figure(figsize=(1.6 * len(shown), 3.2))
    grid = fig.add_gridspec(2, len(shown), height_ratios=[1, 0.8])
    for k, i in enumerate(shown):
        ax = fig.add_subplot(grid[0, k])
        ax.imshow(_grey(frames[i]), cmap="gray", vmin=0, vmax=255)
        ax.set_title(f"t={i}  {short}={weights[i]:.2f}", fontsize=8)
        ax.axis("off")
    bars = fig.add_subplot(grid[1, :])
    colours = ["tab:blue" if t in shown else "lightsteelblue" for t in range(len(weights))]
    bars.bar(np.arange(len(weights)), weights, color=colours)
    bars.set(xlabel="frame", ylabel=name, xlim=(-0.5, len(weights) - 0.5))
    bars.set_title(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def correlation_scatter(x, y, xlabel: str, ylabel: str, path: str | Path | None = None, ax=None,
                        title: str | None = None):
    """Scatter of paired values with Pearson's r and Spearman's rho in the title (e.g. attention vs distance)."""
    from scipy.stats import pearsonr, spearmanr

    x, y = _numpy(x).reshape(-1), _numpy(y).reshape(-1)
    if len(x) != len(y) or len(x) < 3:
        raise ValueError(f"need paired values (at least 3), got {len(x)} x and {len(y)} y")
    r, rho = pearsonr(x, y)[0], spearmanr(x, y)[0]
    fig = ax.figure if ax is not None else plt.subplots(figsize=(3.6, 3.2))[0]
    ax = ax if ax is not None else fig.axes[0]
    ax.scatter(x, y, s=4, alpha=0.35)
    ax.set(xlabel=xlabel, ylabel=ylabel)
    ax.set_title(f"{title + ': ' if title else ''}r = {r:.2f}, rho = {rho:.2f}", fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def image_rows(rows: Mapping[str, np.ndarray], titles: Sequence[str] | None = None, boxes: Sequence | None = None,
               overlay: Mapping[str, np.ndarray] | None = None, caption: str | None = None,
               path: str | Path | None = None):
    """A grid: one row per entry of `rows` {name: images (N, H, W)}, one column per image; `overlay` {name: maps
    (N, H, W)} draws a heat map (jet) over that row's images; `boxes[j]` [(x, y, w, h)] in yellow on column j;
    `caption` under the figure (e.g. a clip's licence). Used for augmentation galleries and saliency figures."""
    names = list(rows)
    n = len(next(iter(rows.values())))
    fig, axes = plt.subplots(len(names), n, figsize=(1.5 * n, 1.5 * len(names) + (0.3 if caption else 0)),
                             squeeze=False)
    for r, name in enumerate(names):
        for j in range(n):
            ax = axes[r, j]
            img = _numpy(rows[name][j])
            ax.imshow(img, cmap="gray", vmin=min(0.0, float(img.min())), vmax=max(1.0, float(img.max()))
                      if img.max() <= 1.0 else 255)
            if overlay and name in overlay:
                m = _numpy(overlay[name][j])
                ax.imshow(m, cmap="jet", alpha=0.5, vmin=min(0.0, float(m.min())), vmax=max(float(m.max()), 1e-6))
            if boxes is not None:
                _draw_boxes(ax, boxes[j])
            if r == 0 and titles:
                ax.set_title(titles[j], fontsize=8)
            ax.set_xticks([]), ax.set_yticks([])
        axes[r, 0].set_ylabel(name, fontsize=8, rotation=0, ha="right", va="center")
    if caption:
        fig.text(0.01, 0.0, caption, fontsize=8, va="top", wrap=True)
    fig.tight_layout()
    return _save(fig, path)


def fraction_curves(curves: Mapping[str, Mapping[float, Mapping]], keys: Sequence[str] = ("acc", "auc"),
                    path: str | Path | None = None, title: str | None = None):
    """Metrics against the fraction of labels used (Chen et al.'s Fig. 3): curves {row: {fraction: metrics}}."""
    fig, axes = plt.subplots(1, len(keys), figsize=(3.6 * len(keys), 3.0), squeeze=False)
    for ax, key in zip(axes[0], keys):
        for name, points in curves.items():
            fr = sorted(points)
            ax.plot([100 * f for f in fr], [points[f][key] for f in fr], marker="o", label=name)
        ax.set(xscale="log", xlabel="labelled training clips (%)", ylabel=key.upper(), ylim=(0.3, 1.02))
        ax.set_xticks([5, 10, 30, 50, 100], labels=["5", "10", "30", "50", "100"])
        ax.grid(alpha=0.3)
    axes[0, -1].legend(fontsize=8)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return _save(fig, path)


def masked_frames(x, mask, patch: int, fill: float = float("nan")):
    """x: (T, 1, H, W) tensor, mask (T, N) bool, True = masked -> x with masked patches set to `fill` (nan shows as
    blank in imshow)."""
    import torch

    from .models.timesformer import patchify, unpatchify

    p = patchify(x[None].float(), patch)  # (1, T, N, P)
    p = torch.where(mask[None, ..., None], torch.full_like(p, fill), p)
    return unpatchify(p, patch, (x.shape[-2] // patch, x.shape[-1] // patch))[0]


def mask_figure(x, masks: Mapping, patch: int, frames: Sequence[int] | None = None, path: str | Path | None = None):
    """One clip x (T, 1, H, W) under each masking strategy {name: mask (T, N)}: a row of frames per strategy, masked
    patches blank (MVCC's Fig. 2)."""
    t = x.shape[0]
    frames = list(range(t)) if frames is None else list(frames)
    rows = {"original": x.float(), **{k: masked_frames(x, m, patch) for k, m in masks.items()}}
    fig, axes = plt.subplots(len(rows), len(frames), figsize=(1.2 * len(frames), 1.3 * len(rows)), squeeze=False)
    for r, (name, clip) in enumerate(rows.items()):
        for c, i in enumerate(frames):
            ax = axes[r, c]
            ax.imshow(clip[i, 0].numpy(), cmap="gray", vmin=float(x.min()), vmax=float(x.max()))
            ax.set_xticks([]), ax.set_yticks([])
            if c == 0:
                share = "" if name == "original" else f"\n{float(masks[name].float().mean()):.0%} masked"
                ax.set_ylabel(name + share, fontsize=8)
            if r == 0:
                ax.set_title(f"t={i}", fontsize=8)
    fig.tight_layout()
    if path:
        fig.savefig(path, dpi=80, bbox_inches="tight")
    return fig
