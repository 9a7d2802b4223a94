import numpy as np
import pytest
from PIL import Image

from usnb import io
from usnb.errors import DataError


def _ramp(t=6, h=32, w=48):
    """Frames whose brightness encodes the frame index (survives lossy coding)."""
    return np.stack([np.full((h, w), (20 + 35 * i) % 250, np.uint8) for i in range(t)])


def test_mp4_round_trip_through_decord(tmp_path):
    path = io.write_video(tmp_path / "clip.mp4", _ramp())
    rgb = io.read_video(path)
    assert rgb.shape == (6, 32, 48, 3) and rgb.dtype == np.uint8
    grey = io.read_video(path, grayscale=True)
    assert grey.shape == (6, 32, 48, 1)
    means = grey.reshape(6, -1).mean(1)
    assert np.allclose(means, 20 + 35 * np.arange(6), atol=3)
    picked = io.read_video(path, grayscale=True, indices=[4, 1])
    assert np.allclose(picked.reshape(2, -1).mean(1), [160, 55], atol=3)
    assert io.read_video(path, size=(16, 24)).shape == (6, 16, 24, 3)
    assert io.video_info(path)["frames"] == 6


@pytest.mark.bad_input
def test_gif_falls_back_to_pyav(tmp_path):
    frames = [Image.fromarray(f) for f in _ramp(4, 20, 20)]
    path = tmp_path / "clip.gif"
    frames[0].save(path, save_all=True, append_images=frames[1:], duration=100, loop=0)
    out = io.read_video(path, grayscale=True)
    assert out.shape == (4, 20, 20, 1)
    assert np.allclose(out.reshape(4, -1).mean(1), 20 + 35 * np.arange(4), atol=2)
    assert io.read_video(path, indices=[3, 0]).shape == (2, 20, 20, 3)


@pytest.mark.bad_input
def test_corrupt_and_empty_videos_name_the_file(tmp_path):
    bad = tmp_path / "broken.mp4"
    bad.write_bytes(b"\x00\x00\x00\x18ftypmp42" + b"garbage" * 50)
    with pytest.raises(DataError, match="broken.mp4.*cannot decode"):
        io.read_video(bad)
    empty = tmp_path / "empty.avi"
    empty.write_bytes(b"")
    with pytest.raises(DataError, match="empty.avi"):
        io.read_video(empty)
    with pytest.raises(DataError, match="does not exist"):
        io.read_video(tmp_path / "missing.mp4")


@pytest.mark.bad_input
def test_truncated_video_is_an_error_or_shorter_never_silent_garbage(tmp_path):
    path = io.write_video(tmp_path / "full.mp4", _ramp(t=20))
    data = path.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 3])  # moov atom at the end is lost
    with pytest.raises(DataError, match="cut.mp4"):
        io.read_video(cut)


@pytest.mark.bad_input
def test_frame_folder_layouts(tmp_path):
    folder = tmp_path / "vid"
    folder.mkdir()
    for i, f in enumerate(_ramp(3, 8, 8)):
        Image.fromarray(f).save(folder / f"{i:06d}.png")
    assert io.read_clip(folder).shape == (3, 8, 8, 3)
    assert io.count_frames(folder) == 3
    Image.fromarray(np.zeros((10, 8), np.uint8)).save(folder / "000003.png")
    with pytest.raises(DataError, match="different sizes"):
        io.read_frame_folder(folder)
    (folder / "000003.png").unlink()
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "000005.png")
    with pytest.raises(DataError, match=r"gap in frame numbering.*\[3, 4\]"):
        io.read_frame_folder(folder)


@pytest.mark.bad_input
def test_image_modes_become_uint8(tmp_path):
    grey16 = (np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000)
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    out = io.read_image(tmp_path / "g16.png")
    assert out.dtype == np.uint8 and out.shape == (8, 8, 3)
    assert out[..., 0].max() == (63 * 1000) >> 8
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., 0] = 200
    Image.fromarray(rgba, "RGBA").save(tmp_path / "a.png")
    assert io.read_image(tmp_path / "a.png").shape == (4, 4, 3)
    assert io.read_image(tmp_path / "a.png", grayscale=True)[0, 0, 0] == round(200 * 0.299)
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="junk.png"):
        io.read_image(tmp_path / "junk.png")


def test_decoder_noise_does_not_reach_stderr(tmp_path, capfd):
    bad = tmp_path / "noise.mpeg"
    bad.write_bytes(b"\x00\x00\x01\xba" + bytes(range(256)) * 20)
    with pytest.raises(DataError):
        io.read_video(bad)
    assert capfd.readouterr().err == ""


@pytest.mark.bad_input
def test_h264_needs_even_sizes(tmp_path):
    with pytest.raises(ValueError, match="even"):
        io.write_video(tmp_path / "odd.mp4", np.zeros((2, 31, 32), np.uint8))


@pytest.mark.bad_input
def test_out_of_range_index_is_an_index_error_not_a_decode_error(tmp_path):
    path = io.write_video(tmp_path / "four.mp4", _ramp(t=4))
    with pytest.raises(IndexError, match=r"four.mp4.*\[7\]"):
        io.read_video(path, indices=[7])
    folder = tmp_path / "frames"
    folder.mkdir()
    Image.fromarray(np.zeros((4, 4), np.uint8)).save(folder / "000000.png")
    with pytest.raises(IndexError, match="frames"):
        io.read_frame_folder(folder, indices=[3])


def test_masks_resize_without_growing(tmp_path):
    mask = np.zeros((40, 40), np.uint8)
    mask[10:20, 10:20] = 255
    Image.fromarray(mask).save(tmp_path / "m.png")
    small = io.read_mask(tmp_path / "m.png", size=(20, 20))
    assert small.sum() == 25  # nearest neighbour: the 10x10 square becomes exactly 5x5


def test_quiet_stderr_is_safe_across_threads():
    """fd 2 is process-wide: overlapping redirects from threads must leave stderr as it was."""
    import os
    from concurrent.futures import ThreadPoolExecutor

    before = os.fstat(2)

    def work(_):
        with io.quiet_stderr():
            os.write(2, b"decoder noise\n")
        return True

    with ThreadPoolExecutor(4) as pool:
        assert all(pool.map(work, range(40)))
    after = os.fstat(2)
    assert (before.st_dev, before.st_ino) == (after.st_dev, after.st_ino)
