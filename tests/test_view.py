"""What the model sees: the field of view, per-clip standardisation, the clip augmentation's two homes."""
import pytest
import torch

from usnb.io import fit_boxes
from usnb.view import FieldOfView, frames, standardise


def test_standardise_per_item():
    x = torch.randint(0, 255, (3, 4, 1, 8, 8), dtype=torch.uint8)
    z = standardise(x, dims=4)
    assert torch.allclose(z.mean((1, 2, 3, 4)), torch.zeros(3), atol=1e-5)
    assert torch.allclose(z.std((1, 2, 3, 4)), torch.ones(3), atol=1e-4)
    flat = standardise(torch.full((1, 2, 1, 4, 4), 7, dtype=torch.uint8), dims=4)
    assert torch.equal(flat, torch.zeros_like(flat))  # a constant clip gives zeros, not nan


def test_field_of_view_crops_the_centre_and_maps_boxes():
    view = FieldOfView(size=4, fraction=0.5)
    assert view.cache_size == 8
    x = torch.arange(64.0).reshape(1, 8, 8)
    assert torch.equal(view.crop(x)[0], x[0, 2:6, 2:6])  # the central half, already 4 px: no resize
    z = view(x, dims=2)
    assert abs(float(z.mean())) < 1e-6 and abs(float(z.std()) - 1) < 1e-5
    # a native 16 x 32 (H x W) frame is cached at 8 x 8: x / 4, y / 2; the view starts at (2, 2)
    assert view.boxes(fit_boxes([(12, 6, 8, 4)], (16, 32), (8, 8), "stretch")) == [(1.0, 1.0, 2.0, 2.0)]
    whole = FieldOfView(size=8)
    assert whole.cache_size == 8 and torch.equal(whole.crop(x), x)
    with pytest.raises(ValueError, match="field of view"):
        FieldOfView(size=8, fraction=1.5)


def test_frames_makes_a_batch_of_one_clip():
    clip = torch.randint(0, 255, (10, 6, 5, 1), dtype=torch.uint8).numpy()  # cached (N, H, W, 1)
    x = frames(clip, [0, 3, 9])
    assert x.shape == (1, 3, 1, 6, 5) and x.dtype == torch.uint8
    assert torch.equal(x[0, 1, 0], torch.from_numpy(clip[3, :, :, 0]))
