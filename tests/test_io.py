import ctypes
import os
import subprocess
import sys
from pathlib import Path

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


def _frame_folder(folder, n=3, size=8):
    folder.mkdir()
    for i, f in enumerate(_ramp(n, size, size)):
        Image.fromarray(f).save(folder / f"{i:06d}.png")
    return folder


def test_frame_folder_layouts(tmp_path):
    folder = _frame_folder(tmp_path / "vid")
    assert io.read_clip(folder).shape == (3, 8, 8, 3)
    assert io.count_frames(folder) == 3


@pytest.mark.bad_input
def test_frame_folder_with_mixed_frame_sizes_is_an_error(tmp_path):
    folder = _frame_folder(tmp_path / "vid")
    Image.fromarray(np.zeros((10, 8), np.uint8)).save(folder / "000003.png")
    with pytest.raises(DataError, match="different sizes.*Fix: resize the frames") as err:
        io.read_frame_folder(folder)
    assert err.value.path == folder
    assert io.read_frame_folder(folder, size=(8, 8)).shape == (4, 8, 8, 3)  # the fix the message names works


@pytest.mark.bad_input
def test_frame_folder_with_a_gap_is_an_error(tmp_path):
    folder = _frame_folder(tmp_path / "vid")
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(folder / "000005.png")
    with pytest.raises(DataError, match=r"gap in frame numbering.*\[3, 4\].*Fix: restore") as err:
        io.read_frame_folder(folder)
    assert err.value.path == folder


@pytest.mark.bad_input
def test_empty_frame_folder_is_an_error(tmp_path):
    (tmp_path / "vid").mkdir()
    with pytest.raises(DataError, match="holds no image frames.*Fix:") as err:
        io.read_clip(tmp_path / "vid")
    assert err.value.path == tmp_path / "vid"


@pytest.mark.bad_input
def test_frame_folder_mixing_grey_rgb_and_rgba_frames_reads_as_one_layout(tmp_path):
    folder = tmp_path / "vid"
    folder.mkdir()
    Image.fromarray(np.full((8, 8), 90, np.uint8)).save(folder / "000000.png")
    Image.fromarray(np.full((8, 8, 3), 90, np.uint8)).save(folder / "000001.png")
    Image.fromarray(np.full((8, 8, 4), 90, np.uint8)).save(folder / "000002.png")
    assert io.read_frame_folder(folder).tolist() == np.full((3, 8, 8, 3), 90, np.uint8).tolist()
    assert io.read_frame_folder(folder, grayscale=True).tolist() == np.full((3, 8, 8, 1), 90, np.uint8).tolist()


# (PIL mode, array written, expected RGB pixel, expected grey pixel)
IMAGE_MODES = {
    "grey": ("L", np.full((4, 4), 120, np.uint8), [120] * 3, 120),
    "grey+alpha": ("LA", np.dstack([np.full((4, 4), 120, np.uint8), np.full((4, 4), 7, np.uint8)]), [120] * 3, 120),
    "rgb": ("RGB", np.dstack([np.full((4, 4), v, np.uint8) for v in (200, 100, 50)]), [200, 100, 50],
            round(200 * 0.299 + 100 * 0.587 + 50 * 0.114)),
    "rgba": ("RGBA", np.dstack([np.full((4, 4), v, np.uint8) for v in (200, 100, 50, 30)]), [200, 100, 50],
             round(200 * 0.299 + 100 * 0.587 + 50 * 0.114)),
    "16-bit": ("I;16", np.full((4, 4), 51_000, np.uint16), [51_000 >> 8] * 3, 51_000 >> 8),
}


@pytest.mark.bad_input
@pytest.mark.parametrize("kind", IMAGE_MODES)
def test_image_modes_become_uint8_rgb_or_grey(tmp_path, kind):
    mode, array, rgb, grey = IMAGE_MODES[kind]
    Image.fromarray(array).save(tmp_path / "x.png")
    with Image.open(tmp_path / "x.png") as im:
        assert im.mode == mode  # the file really is in that mode
    out = io.read_image(tmp_path / "x.png")
    assert out.dtype == np.uint8 and out.shape == (4, 4, 3) and out[1, 2].tolist() == rgb
    assert io.read_image(tmp_path / "x.png", grayscale=True)[..., 0].tolist() == np.full((4, 4), grey).tolist()


@pytest.mark.bad_input
def test_16_bit_frames_of_one_clip_scale_alike(tmp_path):
    """A dark 16-bit frame (all values < 256) is scaled like a bright one, not read as 8-bit."""
    folder = tmp_path / "clip16"
    folder.mkdir()
    Image.fromarray(np.full((4, 4), 200, np.uint16)).save(folder / "000000.png")
    Image.fromarray(np.full((4, 4), 51_200, np.uint16)).save(folder / "000001.png")
    clip = io.read_frame_folder(folder, grayscale=True)
    assert clip[:, 0, 0, 0].tolist() == [0, 200]  # 200 >> 8, 51200 >> 8
    grey16 = np.arange(64, dtype=np.uint16).reshape(8, 8) * 1000
    Image.fromarray(grey16).save(tmp_path / "g16.png")
    assert io.read_image(tmp_path / "g16.png")[..., 0].tolist() == (grey16 >> 8).tolist()


@pytest.mark.bad_input
def test_corrupt_image_names_the_file(tmp_path):
    (tmp_path / "junk.png").write_bytes(b"not a png")
    with pytest.raises(DataError, match="junk.png: cannot read image.*Fix: re-export") as err:
        io.read_image(tmp_path / "junk.png")
    assert err.value.path == tmp_path / "junk.png"


@pytest.mark.bad_input
def test_zero_frame_video_is_an_error(tmp_path):
    """An AVI with a video stream and no frames (mp4 and mov drop an empty stream: 'no video stream')."""
    import av

    path = tmp_path / "zero.avi"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("mpeg4", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32, 32, "yuv420p"
        container.start_encoding()
    with pytest.raises(DataError, match="zero.avi: video has zero frames.*Fix:") as err:
        io.read_video(path)
    assert err.value.path == path
    with pytest.raises(DataError, match="zero frames"):
        io.count_frames(path)


@pytest.mark.bad_input
def test_video_truncated_after_its_index_says_so(tmp_path):
    """moov atom first (faststart), most frames cut off: the container lists 20 frames, none decode."""
    import av

    path = tmp_path / "fast.mp4"
    with av.open(str(path), "w", options={"movflags": "faststart"}) as container:
        stream = container.add_stream("libx264", rate=20)
        stream.width, stream.height, stream.pix_fmt = 48, 32, "yuv420p"
        for frame in io._to_layout(_ramp(t=20), grayscale=False):
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    cut = tmp_path / "cut.mp4"
    for fraction in (0.3, 0.7):
        cut.write_bytes(path.read_bytes()[: int(path.stat().st_size * fraction)])
        with pytest.raises(DataError, match="cut.mp4: (video has zero frames though its container lists 20: "
                                            "the file is truncated|cannot decode video)"):
            io.read_video(cut)


@pytest.mark.bad_input
def test_container_decord_cannot_read_falls_back_to_pyav(tmp_path, monkeypatch):
    """A GIF saved under a .mp4 name: decord fails on it, PyAV reads it."""
    frames = [Image.fromarray(f) for f in _ramp(4, 20, 20)]
    path = tmp_path / "really_a_gif.mp4"
    frames[0].save(path, format="GIF", save_all=True, append_images=frames[1:], duration=100, loop=0)
    with pytest.raises(Exception):
        io._read_decord(path, None, None)
    used = []
    real_pyav = io._read_pyav
    monkeypatch.setattr(io, "_read_pyav", lambda p, *a: used.append(p.name) or real_pyav(p, *a))
    out = io.read_video(path, grayscale=True)
    assert used == ["really_a_gif.mp4"] and out.shape == (4, 20, 20, 1)
    assert np.allclose(out.reshape(4, -1).mean(1), 20 + 35 * np.arange(4), atol=2)


@pytest.mark.bad_input
def test_file_without_a_video_stream_is_an_error(tmp_path):
    import av

    path = tmp_path / "sound.mp4"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("aac", rate=8000)
        frame = av.AudioFrame.from_ndarray(np.zeros((1, 1024), np.float32), format="fltp", layout="mono")
        frame.sample_rate = 8000
        for packet in [*stream.encode(frame), *stream.encode()]:
            container.mux(packet)
    with pytest.raises(DataError, match="sound.mp4: file has no video stream.*Fix: pass a video file"):
        io.read_video(path)


def _unreadable_error(call: str, path: Path) -> str:
    """Run `call` on `path` (chmod 000) in a child Python whose file permissions bind, even as root
    (root's CAP_DAC_OVERRIDE and CAP_DAC_READ_SEARCH are dropped); returns what it raised."""
    code = ("import sys\nfrom usnb import io\nfrom usnb.datasets import load_manifest\n"
            f"try:\n    {call}(sys.argv[1])\nexcept Exception as err:\n    print(type(err).__name__, err)\n"
            "else:\n    print('no error')\n")

    def drop_root_file_powers():
        if os.geteuid() == 0:
            libc = ctypes.CDLL(None, use_errno=True)
            for capability in (1, 2):  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH
                if libc.prctl(24, capability, 0, 0, 0):  # PR_CAPBSET_DROP: gone after exec
                    raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")

    path.chmod(0)
    try:
        done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=60,
                              preexec_fn=drop_root_file_powers)
    finally:
        path.chmod(0o755)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


@pytest.mark.bad_input
@pytest.mark.parametrize("what", ["video", "frame", "frame folder", "manifest"])
def test_unreadable_file_names_the_file_and_chmod(tmp_path, what):
    video = io.write_video(tmp_path / "clip.mp4", _ramp(t=2))
    folder = _frame_folder(tmp_path / "frames")
    manifest = tmp_path / "manifest.csv"
    manifest.write_text("path,label,split,patient_id\nclip.mp4,benign,train,p1\n")
    target, call = {"video": (video, "io.read_video"), "frame": (folder / "000001.png", "io.read_image"),
                    "frame folder": (folder, "io.read_frame_folder"), "manifest": (manifest, "load_manifest")}[what]
    said = _unreadable_error(call, target)
    assert said.startswith(f"DataError {target}: ") and "not readable (permissions)" in said, said
    assert f"Fix: run `chmod a+r{'x' if target.is_dir() else ''} '{target}'`" in said


@pytest.mark.bad_input
def test_decoder_noise_does_not_reach_stderr(tmp_path, capfd):
    bad = tmp_path / "noise.mpeg"
    bad.write_bytes(b"\x00\x00\x01\xba" + bytes(range(256)) * 20)
    with pytest.raises(DataError):
        io.read_video(bad)
    assert capfd.readouterr().err == ""


def test_h264_needs_even_sizes(tmp_path):
    with pytest.raises(ValueError, match="even"):
        io.write_video(tmp_path / "odd.mp4", np.zeros((2, 31, 32), np.uint8))


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


@pytest.mark.bad_input
def test_a_pipe_a_link_loop_and_a_renamed_still_image_are_refused_naming_the_file(tmp_path):
    from PIL import Image

    fifo = tmp_path / "clip.mp4"
    os.mkfifo(fifo)
    with pytest.raises(DataError, match="not a regular file"):  # would block for ever if opened
        io.read_clip(fifo)
    loop = tmp_path / "loop.mp4"
    loop.symlink_to(loop)
    with pytest.raises(DataError, match="symbolic link that leads nowhere"):
        io.read_clip(loop)
    Image.fromarray(np.zeros((8, 8), np.uint8)).save(tmp_path / "still.jpg")
    (tmp_path / "still.jpg").rename(tmp_path / "still.mp4")
    with pytest.raises(DataError, match="a still JPEG image under a video name") as err:
        io.count_frames(tmp_path / "still.mp4")
    assert err.value.path == tmp_path / "still.mp4"


def test_long_clip_decodes_in_chunks_to_the_same_frames(tmp_path):
    """More frames than io.CHUNK: decoded a chunk at a time into the result, equal to one batch of every frame."""
    import decord

    n = io.CHUNK * 2 + 5
    rng = np.random.default_rng(0)
    path = io.write_video(tmp_path / "long.mp4", rng.integers(0, 255, (n, 64, 128, 3), dtype=np.uint8))
    whole = decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1, height=32, width=64).get_batch(
        list(range(n))).asnumpy()
    for grey in (True, False):
        out = io.read_video(path, grayscale=grey, size=(32, 64))
        assert out.shape == (n, 32, 64, 1 if grey else 3) and out.dtype == np.uint8
        assert np.array_equal(out, io._to_layout(whole, grey))
    picked = [n - 1, 0, io.CHUNK, 3]
    assert np.array_equal(io.read_video(path, indices=picked, size=(32, 64)), io._to_layout(whole[picked], False))
