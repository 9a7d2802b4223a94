import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch

from usnb import plots
from usnb.metrics import metrics_table, roc_data

RNG = np.random.default_rng(0)


@pytest.fixture(autouse=True)
def _close_figures():
    yield
    plt.close("all")


def _saved(fig, path, n_axes):
    assert len(fig.axes) == n_axes
    assert path.exists() and path.stat().st_size > 0 and path.read_bytes()[:4] == b"\x89PNG"


def test_training_curves(tmp_path):
    history = [{"epoch": e, "lr": 0.01, "seconds": 1.0, "loss": 1 / e, "acc": 0.5 + e / 10,
                "val_loss": 1.2 / e, "val_auc": 0.6 + e / 20} for e in range(1, 5)]
    fig = plots.training_curves(history, path=tmp_path / "curves.png")
    _saved(fig, tmp_path / "curves.png", 3)  # loss (+val_loss), acc, auc
    assert plots.training_curves(history, keys=["loss"]).axes[0].get_title() == "loss"


def test_roc_curves(tmp_path):
    y = RNG.integers(0, 2, 40)
    s = np.clip(0.3 * y + RNG.random(40) * 0.7, 0, 1)
    fig = plots.roc_curves({"ours": (y, s), "paper": roc_data(y, 1 - s)}, path=tmp_path / "roc.png")
    _saved(fig, tmp_path / "roc.png", 1)
    labels = [t.get_text() for t in fig.axes[0].get_legend().get_texts()]
    assert labels[0].startswith("ours (AUC=") and len(labels) == 2


def test_metrics_table_figure(tmp_path):
    table = metrics_table({"ours": [{"auc": 0.9, "acc": 0.8, "sen": 0.7, "spe": 0.9}] * 2,
                           "paper": {"auc": 0.95, "acc": 0.9, "sen": 0.88, "spe": 0.91}})
    _saved(plots.metrics_table_figure(table, path=tmp_path / "table.png", title="Table 2"),
           tmp_path / "table.png", 1)


def test_tsne_scatter(tmp_path):
    emb, labels = RNG.normal(size=(20, 2)), RNG.integers(0, 2, 20)
    fig = plots.tsne_scatter(emb, labels, names=["benign", "malignant"], path=tmp_path / "tsne.png")
    _saved(fig, tmp_path / "tsne.png", 1)


def test_cam_overlay(tmp_path):
    frames = RNG.integers(0, 256, (10, 16, 16), dtype=np.uint8)
    cam = torch.rand(10, 16, 16)
    fig = plots.cam_overlay(frames, cam, boxes={0: [(2, 3, 4, 5)]}, max_frames=4, path=tmp_path / "cam.png")
    _saved(fig, tmp_path / "cam.png", 5)  # 4 frames and the colour bar
    assert len(fig.axes[0].patches) == 1  # the box on frame 0
    assert fig.axes[-1].get_ylabel() == "CAM (clip max = 1)"  # the colour bar says what the colours mean
    assert len(plots.cam_overlay(frames[:3, ..., None], cam[:3]).axes) == 4
    with pytest.raises(ValueError, match="must match frames"):
        plots.cam_overlay(frames, cam[:, :8])


def test_attention_strip(tmp_path):
    frames = RNG.integers(0, 256, (6, 16, 16), dtype=np.uint8)
    weights = np.linspace(0.1, 0.3, 6)
    fig = plots.attention_strip(frames, weights, indices=[0, 2, 5], path=tmp_path / "att.png")
    _saved(fig, tmp_path / "att.png", 4)  # 3 frames + the bar plot
    assert len(fig.axes[-1].patches) == 6


def test_correlation_scatter_reports_pearson_and_spearman(tmp_path):
    x = np.arange(10.0)
    fig = plots.correlation_scatter(x, -2 * x + 1, "distance", "attention", path=tmp_path / "c.png", title="Fig. 3e")
    _saved(fig, tmp_path / "c.png", 1)
    assert fig.axes[0].get_title() == "Fig. 3e: r = -1.00, rho = -1.00"
    with pytest.raises(ValueError, match="paired values"):
        plots.correlation_scatter([1, 2], [1, 2, 3], "a", "b")


def _draw(alpha=0.25, k=3, draw=0):  # a slider may be called `draw` (notebook 04's random draw)
    fig, ax = plt.subplots(figsize=(2, 2))
    ax.set_title(f"alpha={alpha} k={k}" + (f" draw={draw}" if draw else ""))
    return fig


def test_explorer_headless_shows_and_saves_one_static_figure(tmp_path, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    monkeypatch.setenv("USNB_HEADLESS", "1")
    plots.explorer(_draw, tmp_path / "fig.png", alpha=(0.0, 1.0, 0.05))
    assert len(shown) == 1 and shown[0].axes[0].get_title() == "alpha=0.25 k=3"  # the defaults
    assert (tmp_path / "fig.png").stat().st_size > 0 and not plt.get_fignums()  # nothing left to draw again


def test_explorer_live_is_one_widget_whose_sliders_start_at_the_defaults_and_redraw_one_figure(tmp_path, monkeypatch):
    import IPython.display
    import ipywidgets

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    monkeypatch.delenv("USNB_HEADLESS", raising=False)
    plots.explorer(_draw, tmp_path / "fig.png", alpha=(0.0, 1.0, 0.05))
    # in a kernel the first drawing goes into the widget's output area; here every display call is collected
    [widget] = [s for s in shown if isinstance(s, ipywidgets.Widget)]
    assert isinstance(widget, ipywidgets.interactive) and (tmp_path / "fig.png").exists()
    assert [f.axes[0].get_title() for f in shown if f is not widget] == ["alpha=0.25 k=3"]
    [slider] = [c for c in widget.children if isinstance(c, ipywidgets.FloatSlider)]
    assert slider.description == "alpha" and slider.value == 0.25  # draw's default, not the range's middle
    assert not any(getattr(c, "description", "") == "k" for c in widget.children)  # only the named sliders
    shown.clear()
    slider.value = 0.5  # moving it redraws: one figure, closed after it is shown
    assert [f.axes[0].get_title() for f in shown] == ["alpha=0.5 k=3"] and not plt.get_fignums()


def test_explorer_takes_a_slider_named_like_its_own_arguments(tmp_path, monkeypatch):
    import IPython.display

    shown = []
    monkeypatch.setattr(IPython.display, "display", shown.append)
    monkeypatch.setenv("USNB_HEADLESS", "1")
    plots.explorer(_draw, tmp_path / "fig.png", draw=(0, 20))
    assert [f.axes[0].get_title() for f in shown] == ["alpha=0.25 k=3"]


def test_masked_frames_blanks_exactly_the_masked_patches():
    x = torch.arange(2 * 8 * 8, dtype=torch.float32).reshape(2, 1, 8, 8)  # T = 2 frames, 2 x 2 patches of 4 px
    mask = torch.tensor([[True, False, False, False], [False, False, False, True]])  # (T, N)
    out = plots.masked_frames(x, mask, 4)
    hidden = torch.zeros(2, 1, 8, 8, dtype=torch.bool)
    hidden[0, 0, :4, :4] = hidden[1, 0, 4:, 4:] = True  # patch 0 of frame 0, patch 3 of frame 1
    assert out.shape == x.shape and torch.isnan(out).eq(hidden).all()
    assert torch.equal(out[~hidden], x[~hidden])
    assert (plots.masked_frames(x, mask, 4, fill=0.0)[hidden] == 0).all()


def test_mask_figure(tmp_path):
    x = torch.rand(4, 1, 8, 8)
    masks = {"patch": torch.zeros(4, 4, dtype=torch.bool), "frame": torch.zeros(4, 4, dtype=torch.bool)}
    masks["frame"][1] = True
    fig = plots.mask_figure(x, masks, 4, frames=[0, 1], path=tmp_path / "masks.png")
    _saved(fig, tmp_path / "masks.png", 3 * 2)  # original + 2 strategies, 2 frames each
    assert fig.axes[2].get_ylabel() == "patch\n0% masked" and fig.axes[4].get_ylabel() == "frame\n25% masked"
    assert [fig.axes[k].get_title() for k in (0, 1)] == ["t=0", "t=1"]
