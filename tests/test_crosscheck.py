"""Our saliency against the libraries people know: occlusion against Captum's `Occlusion`, Grad-CAM against
pytorch-grad-cam's `GradCAM`, on the papers' own models and the same input.

Both libraries are in the `dev` extra (`make test` installs it); elsewhere these tests are skipped with a message.
Grad-CAM libraries differ only in how they scale the map for display: pytorch-grad-cam min-max normalises each map
and resizes it with OpenCV / SciPy, we divide by the clip's maximum and upsample trilinearly. So both maps are
compared at the target layer's grid, upsampled by one rule and min-max normalised alike: what is left to agree is
Grad-CAM itself (Selvaraju et al., Eqs. 1-2) and the way tokens or frames are put back on their grid.
"""
import pytest
import torch
import torch.nn.functional as F

from usnb.evaluate import VideoLogits, frame_gradcam, last_stage
from usnb.explain import GradCAM, occlusion
from usnb.recipes import kganet as K
from usnb.recipes import lung_ssl as S
from usnb.recipes import mvcc as M

captum_attr = pytest.importorskip("captum.attr", reason="captum is not installed: pip install -e '.[dev]'")
pgc = pytest.importorskip("pytorch_grad_cam", reason="grad-cam is not installed: pip install -e '.[dev]'")
from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget  # noqa: E402 - after the skip


class GridGradCAM(pgc.GradCAM):
    """pytorch-grad-cam's Grad-CAM, its map left at the target layer's grid (min-max normalised, not resized)."""

    def get_target_width_height(self, input_tensor):
        return None


def minmax(cam: torch.Tensor, dims: tuple[int, ...]) -> torch.Tensor:
    low, high = cam.amin(dims, keepdim=True), cam.amax(dims, keepdim=True)
    return (cam - low) / (high - low).clamp_min(1e-12)


def theirs_upsampled(grid_cam, size) -> torch.Tensor:
    """pytorch-grad-cam's map at the grid, (B, t, h, w) -> (B, T, H, W) by our upsampling rule."""
    cam = torch.as_tensor(grid_cam, dtype=torch.float32)[:, None]
    return F.interpolate(cam, size=size, mode="trilinear", align_corners=False)[:, 0]


def test_occlusion_equals_captums_on_the_lung_encoder():
    torch.manual_seed(0)
    P = S.get_profile("small")
    model = S.probe_classifier(S.build_encoder(P), None)
    x = torch.rand(1, 8, 32, 32)  # (C, T, H, W): windows tile every axis exactly (Captum crops a last window)
    window, stride = (1, 2, 8, 8), (1, 2, 8, 8)
    ours = occlusion(model, x, window, stride, target=1)
    reference = captum_attr.Occlusion(lambda v: model(v).softmax(-1)).attribute(
        x[None], sliding_window_shapes=window, strides=stride, baselines=0.0, target=1)[0]
    assert ours.abs().max() > 1e-4  # the windows change the output: the comparison is not 0 == 0
    torch.testing.assert_close(ours, reference, atol=1e-6, rtol=1e-4)

    overlapping = occlusion(model, x, (1, 4, 16, 16), (1, 2, 8, 8), target=0)  # each voxel in several windows
    reference = captum_attr.Occlusion(lambda v: model(v).softmax(-1)).attribute(
        x[None], sliding_window_shapes=(1, 4, 16, 16), strides=(1, 2, 8, 8), baselines=0.0, target=0)[0]
    torch.testing.assert_close(overlapping, reference, atol=1e-6, rtol=1e-4)


def test_occlusion_differs_from_captums_only_where_the_windows_do_not_tile():
    """Windows of 8 every 5 on 32 pixels: our last one starts at 24 (flush with the end), Captum's at 25 (cut
    short at 32). Away from the last window the two agree; under it they differ."""
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Flatten(), torch.nn.Linear(32 * 32, 2))
    x = torch.rand(1, 32, 32)
    ours = occlusion(model, x, (1, 8, 8), (1, 5, 5))
    reference = captum_attr.Occlusion(lambda v: model(v).softmax(-1)).attribute(
        x[None], sliding_window_shapes=(1, 8, 8), strides=(1, 5, 5), baselines=0.0, target=1)[0]
    torch.testing.assert_close(ours[:, :24, :24], reference[:, :24, :24], atol=1e-6, rtol=1e-4)
    assert (ours[:, 24:, 24:] - reference[:, 24:, 24:]).abs().max() > 1e-3


def test_gradcam_tokens_equals_pytorch_grad_cam_on_mvccs_timesformer():
    torch.manual_seed(0)
    P = M.get_profile("small")
    model = M.build_classifier(P)
    x = torch.rand(2, P.frames, 1, P.size, P.size) * 255  # pixels of the view, (B, T, 1, H, W)
    with M.gradcam(model, P) as cam:
        ours = cam(x, 1)
    t, h, w = P.grid

    # (B, t*h*w, D) -> (B, D, t, h, w): the token order the encoder writes (frame by frame, rows of patches); the
    # same reshape as ours, so this test checks Grad-CAM's weights and sums, not the token order itself
    def tokens_to_grid(a):
        return a.reshape(a.shape[0], t, h, w, a.shape[-1]).permute(0, 4, 1, 2, 3)

    with GridGradCAM(VideoLogits(model), [model.encoder.norm], reshape_transform=tokens_to_grid) as reference:
        grid = reference(x, targets=[ClassifierOutputTarget(1)] * len(x))  # (B, t, h, w), min-max per clip
    size = (P.frames, P.size, P.size)
    assert ours.shape == (2, *size) and ours.amax() > 0  # a map, not all zeros after the ReLU
    torch.testing.assert_close(minmax(ours, (1, 2, 3)), minmax(theirs_upsampled(grid, size), (1, 2, 3)),
                               atol=1e-4, rtol=1e-4)


def test_gradcam_frames_equals_pytorch_grad_cam_on_kganet():
    torch.manual_seed(0)
    P = K.get_profile("small")
    model = K.build_model(P)
    frames, size = 4, 64
    x = torch.rand(1, frames, 1, size, size) * 255  # one clip, (1, T, 1, H, W)
    with frame_gradcam(model) as cam:
        ours = cam(x, 1)[0]  # (T, H, W)
    assert ours.amax() > 0

    class Frames(torch.nn.Module):  # the clip model seen as a batch of frames: pytorch-grad-cam's 2-D layout
        def __init__(self):
            super().__init__()
            self.clip = VideoLogits(model)

        def forward(self, v):  # (T, 1, H, W) -> logits (1, K)
            return self.clip(v[None])

    layer = last_stage(model.backbone)  # the layer frame_gradcam hooks
    with GridGradCAM(Frames(), [layer]) as reference:
        grid = reference(x[0], targets=[ClassifierOutputTarget(1)])  # (T, h, w): one map per frame
    theirs = F.interpolate(torch.as_tensor(grid)[None, None], size=(frames, size, size), mode="trilinear",
                           align_corners=False)[0, 0]
    # pytorch-grad-cam scales each frame alone; per frame, the maps agree
    torch.testing.assert_close(minmax(ours, (1, 2)), minmax(theirs, (1, 2)), atol=1e-4, rtol=1e-4)


def test_gradcam_3d_equals_pytorch_grad_cam_on_the_lung_encoder():
    torch.manual_seed(0)
    P = S.get_profile("small")
    model = S.probe_classifier(S.build_encoder(P), None, train_encoder=True)  # pytorch-grad-cam needs its grads
    x = torch.rand(2, 1, 8, 32, 32)  # (B, C, T, H, W)
    layer = model.encoder.features[-1]
    with GradCAM(model, layer, kind="3d") as cam:
        ours = cam(x, 1)
    assert ours.amax() > 0
    with GridGradCAM(model, [layer]) as reference:
        grid = reference(x, targets=[ClassifierOutputTarget(1)] * len(x))  # (B, t, h, w)
    torch.testing.assert_close(minmax(ours, (1, 2, 3)), minmax(theirs_upsampled(grid, (8, 32, 32)), (1, 2, 3)),
                               atol=1e-4, rtol=1e-4)
