"""Reading videos, frame folders and still images into uint8 arrays `(T, H, W, C)`.

Video files go through decord (mp4, avi, mpeg, mov, ...); what decord cannot open (GIF, some
odd containers) falls back to PyAV. Decoder chatter on stderr is captured, not printed, and is
attached to the error if decoding fails. Decoding is slow and decord leaks: training reads
clips from `usnb.cache.ClipCache`, never from here.
"""
from __future__ import annotations

import contextlib
import os
import re
import tempfile
import threading
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from .errors import DataError

VIDEO_SUFFIXES = {".mp4", ".avi", ".mpeg", ".mpg", ".mov", ".mkv", ".webm", ".m4v", ".gif"}
IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"}
DECORD_CANNOT = {".gif"}  # checked: decord 0.6.0 fails on every GIF
_STDERR_LOCK = threading.RLock()  # fd 2 is process-wide: one redirect at a time


@contextlib.contextmanager
def quiet_stderr() -> Iterator[list[str]]:
    """Capture C-level stderr (FFmpeg warnings) for the block; yields a list that receives the text."""
    captured: list[str] = []
    with _STDERR_LOCK:
        try:
            fd = os.dup(2)
        except OSError:  # no real stderr (some embedded interpreters): nothing to silence
            yield captured
            return
        with _redirected(fd, captured):
            yield captured


@contextlib.contextmanager
def _redirected(fd: int, captured: list[str]) -> Iterator[None]:
    with tempfile.TemporaryFile(mode="w+b") as tmp:
        os.dup2(tmp.fileno(), 2)
        try:
            yield
        finally:
            os.dup2(fd, 2)
            os.close(fd)
            tmp.seek(0)
            captured.append(tmp.read().decode(errors="replace"))


def _to_layout(frames: np.ndarray, grayscale: bool) -> np.ndarray:
    """(T, H, W) or (T, H, W, C) of any of 1/3/4 channels -> uint8 (T, H, W, 1 or 3)."""
    if frames.dtype == np.uint16:
        frames = (frames >> 8).astype(np.uint8)
    elif frames.dtype != np.uint8:
        raise TypeError(f"expected uint8 or uint16 frames, got {frames.dtype}")
    if frames.ndim == 3:
        frames = frames[..., None]
    channels = frames.shape[-1]
    if channels == 4:  # RGBA: alpha is not image content
        frames, channels = frames[..., :3], 3
    if channels == 2:  # grey + alpha
        frames, channels = frames[..., :1], 1
    if grayscale and channels == 3:
        # ITU-R 601 luma, the weights PIL's convert("L") uses
        grey = frames[..., 0] * 0.299 + frames[..., 1] * 0.587 + frames[..., 2] * 0.114
        return np.ascontiguousarray(np.round(grey).astype(np.uint8)[..., None])
    if not grayscale and channels == 1:
        return np.ascontiguousarray(np.repeat(frames, 3, axis=-1))
    return np.ascontiguousarray(frames)


# the first bytes of still-image formats: a still image renamed .mp4 would otherwise pass as a 1-frame clip
IMAGE_MAGIC = {b"\xff\xd8\xff": "JPEG", b"\x89PNG": "PNG", b"BM": "BMP", b"II*\x00": "TIFF", b"MM\x00*": "TIFF"}


def _not_a_still_image(path: Path) -> Path:
    with open(path, "rb") as f:
        head = f.read(8)
    kind = next((name for magic, name in IMAGE_MAGIC.items() if head.startswith(magic)), None)
    if kind:
        raise DataError(path, f"a still {kind} image under a video name", "give a video file here (still images go "
                        "into an image set, e.g. BUSI or images.csv), or fix the file's name")
    return path


def video_info(path: str | Path) -> dict:
    """Frame count, height, width and fps of a video file (decord, else PyAV)."""
    path = _not_a_still_image(check_readable(path))
    if path.suffix.lower() not in DECORD_CANNOT:
        try:
            vr = _decord_reader(path)
            h, w = vr[0].shape[:2] if len(vr) else (0, 0)
            return {"frames": len(vr), "height": h, "width": w, "fps": float(vr.get_avg_fps())}
        except Exception:  # noqa: BLE001 - PyAV gets its chance below
            pass
    frames = read_video(path)
    return {"frames": len(frames), "height": frames.shape[1], "width": frames.shape[2], "fps": float("nan")}


def read_video(path: str | Path, grayscale: bool = False, indices: Sequence[int] | None = None,
               size: tuple[int, int] | None = None) -> np.ndarray:
    """Decode a video file to uint8 `(T, H, W, C)`; `indices` picks frames, `size=(H, W)` resizes."""
    path = _not_a_still_image(check_readable(path))
    errors = []
    if path.suffix.lower() not in DECORD_CANNOT:
        try:
            return _read_decord(path, indices, size, grayscale)
        except (DataError, IndexError):
            raise
        except Exception as err:  # noqa: BLE001 - fall back to PyAV, keep the reason
            errors.append(f"decord: {err}".strip())
    try:
        frames = _read_pyav(path, indices, size, grayscale)
    except (DataError, IndexError):  # IndexError: its container overcounted (the cache then decodes it whole)
        raise
    except Exception as err:  # noqa: BLE001
        errors.append(f"PyAV: {err}".strip())
        raise DataError(path, "cannot decode video (" + "; ".join(e.splitlines()[0] for e in errors) + ")",
                        "check the file plays in a video player; re-encode it, e.g. "
                        "`ffmpeg -i IN -c:v libx264 OUT.mp4`") from err
    return frames


def check_readable(path: str | Path) -> Path:
    """`path` as a Path if it exists and this user may read it (a folder: list it); else a DataError."""
    path = Path(path)
    if not path.exists():
        if path.is_symlink():
            raise DataError(path, "a symbolic link that leads nowhere (or round to itself)",
                            "point the link at the file, or replace it with the file")
        raise DataError(path, "file does not exist", "check the path, or set USNB_DATA_DIR")
    if not path.is_dir() and not path.is_file():  # reading a pipe, socket or device would wait for ever
        raise DataError(path, "not a regular file (a pipe, socket or device)", "point to the file itself")
    if path.is_dir() and not os.access(path, os.R_OK | os.X_OK):
        raise DataError(path, "folder is not readable (permissions)", f"run `chmod a+rx '{path}'`")
    if not os.access(path, os.R_OK):
        raise unreadable(path)
    return path


def unreadable(path: str | Path) -> DataError:
    """The error for a file that exists but that this user may not read."""
    return DataError(path, "file is not readable (permissions)", f"run `chmod a+r '{path}'`")


def _decord_reader(path: Path, size: tuple[int, int] | None = None):
    import decord

    decord.logging.set_level(decord.logging.QUIET)
    kwargs = {"height": size[0], "width": size[1]} if size else {}
    with quiet_stderr():
        return decord.VideoReader(str(path), ctx=decord.cpu(0), num_threads=1, **kwargs)


CHUNK = 16  # frames decoded at a time: a long clip never sits in memory as RGB, only as its final layout


def _read_decord(path: Path, indices: Sequence[int] | None, size: tuple[int, int] | None,
                 grayscale: bool = False) -> np.ndarray:
    """uint8 (T, H, W, 1 or 3), decoded CHUNK frames at a time into the result (peak memory ~ the result)."""
    vr = _decord_reader(path, size)
    n = len(vr)
    if n == 0:
        raise DataError(path, "video has zero frames", "re-export the clip; an empty file cannot be used")
    idx = list(range(n)) if indices is None else [int(i) for i in indices]
    bad = [i for i in idx if not 0 <= i < n]
    if bad:
        raise IndexError(f"{path}: frame indices {bad[:5]} outside 0..{n - 1}")
    out = None
    for start in range(0, len(idx), CHUNK):
        part = idx[start:start + CHUNK]
        with quiet_stderr() as log:
            frames = vr.get_batch(part).asnumpy()
        if frames.shape[0] != len(part):
            raise RuntimeError(f"decord returned {frames.shape[0]} of {len(part)} frames; {''.join(log)[-200:]}")
        laid = _to_layout(frames, grayscale)
        if out is None:
            out = np.empty((len(idx), *laid.shape[1:]), np.uint8)
        out[start:start + len(part)] = laid
    return out


def _read_pyav(path: Path, indices: Sequence[int] | None, size: tuple[int, int] | None,
               grayscale: bool = False) -> np.ndarray:
    """uint8 (T, H, W, 1 or 3); each frame is laid out (and made grey) as it is decoded."""
    import av

    av.logging.set_level(av.logging.PANIC)
    wanted = None if indices is None else sorted(set(int(i) for i in indices))
    frames = []
    with quiet_stderr(), av.open(str(path)) as container:
        if not container.streams.video:
            raise DataError(path, "file has no video stream (or a video stream without frames)",
                            "pass a video file, not audio or an image; re-export the clip if it should hold frames")
        stream = container.streams.video[0]
        listed = stream.frames  # what the container says; 0 where it does not say
        for i, frame in enumerate(container.decode(stream)):
            if wanted is None or i in wanted:
                if size:
                    frame = frame.reformat(width=size[1], height=size[0])
                frames.append(_to_layout(frame.to_ndarray(format="rgb24")[None], grayscale)[0])
            if wanted is not None and i >= wanted[-1]:
                break
    if not frames:
        # some real clips list a few frames more than decode, so only "none decode" is called truncated
        truncated = f" though its container lists {listed}: the file is truncated or corrupt" if listed else ""
        raise DataError(path, "video has zero frames" + truncated,
                        "copy or re-export the clip; a clip without frames cannot be used")
    stack = np.stack(frames)
    if indices is None:
        return stack
    if len(frames) != len(wanted):
        raise IndexError(f"{path}: frame indices beyond the {i + 1} frames of the clip")
    pos = {f: k for k, f in enumerate(wanted)}
    return stack[[pos[int(i)] for i in indices]]


# ---------------------------------------------------------------------------------- frame folders
_NUMBER = re.compile(r"(\d+)$")


def frame_files(folder: str | Path) -> list[Path]:
    """The frame images of a folder in frame order; a gap in the numbering is an error."""
    folder = Path(folder)
    if not folder.is_dir():
        raise DataError(folder, "frame folder does not exist", "check the path to the video's frames")
    files = [p for p in check_readable(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES]
    if not files:
        raise DataError(folder, "frame folder holds no image frames (.png/.jpg)",
                        "point at a folder of numbered frames such as 000000.png")
    numbered = []
    for p in files:
        m = _NUMBER.search(p.stem)
        if not m:
            raise DataError(p, "frame file name has no frame number", "name frames 000000.png, 000001.png, ...")
        numbered.append((int(m.group(1)), p))
    numbered.sort()
    numbers = [n for n, _ in numbered]
    twice = sorted({a for a, b in zip(numbers, numbers[1:]) if a == b})
    if twice:
        names = [p.name for k, p in numbered if k == twice[0]]
        raise DataError(folder, f"two files for one frame number: {names}",
                        "keep one file per frame number")
    expected = list(range(numbers[0], numbers[0] + len(numbers)))
    if numbers != expected:
        missing = sorted(set(range(numbers[0], numbers[-1] + 1)) - set(numbers))
        raise DataError(folder, f"gap in frame numbering: frame(s) {missing[:5]} missing",
                        "restore the missing frames or renumber the folder consecutively")
    return [p for _, p in numbered]


def read_frame_folder(folder: str | Path, grayscale: bool = False, indices: Sequence[int] | None = None,
                      size: tuple[int, int] | None = None) -> np.ndarray:
    """Read a folder of numbered frames (BUSV `rawframes/<class>/<video>/000000.png`) as `(T, H, W, C)`."""
    files = frame_files(folder)
    bad = [] if indices is None else [int(i) for i in indices if not 0 <= int(i) < len(files)]
    if bad:
        raise IndexError(f"{folder}: frame indices {bad[:5]} outside 0..{len(files) - 1}")
    picked = files if indices is None else [files[int(i)] for i in indices]
    frames = [read_image(p, grayscale=grayscale, size=size) for p in picked]
    shapes = {f.shape for f in frames}
    if len(shapes) > 1:
        raise DataError(folder, f"frames of one clip have different sizes {sorted(shapes)[:3]}",
                        "resize the frames to one size, or pass size=(H, W)")
    return np.stack(frames)


def read_clip(path: str | Path, grayscale: bool = False, indices: Sequence[int] | None = None,
              size: tuple[int, int] | None = None) -> np.ndarray:
    """A video file or a frame folder, whichever `path` is, as uint8 `(T, H, W, C)`."""
    path = Path(path)
    if path.is_dir():
        return read_frame_folder(path, grayscale, indices, size)
    if path.suffix.lower() in IMAGE_SUFFIXES:
        raise DataError(path, "this is a still image, not a clip", "use usnb.io.read_image for still images")
    return read_video(path, grayscale, indices, size)


def count_frames(path: str | Path) -> int:
    """Number of frames of a video file or frame folder (decodes the file if the container lies)."""
    return clip_shape(path)[0]


def clip_shape(path: str | Path) -> tuple[int, int, int]:
    """(frames, height, width) of a video file or frame folder, from its container or first frame (no decoding)."""
    path = Path(path)
    if path.is_dir():
        files = frame_files(path)
        with Image.open(files[0]) as first:
            return len(files), first.height, first.width
    info = video_info(path)
    return info["frames"], info["height"], info["width"]


# ---------------------------------------------------------------------------------- square frames of any shape
FITS = ("pad", "crop", "stretch")


def fit_geometry(native_hw: tuple[int, int], size: tuple[int, int], fit: str = "pad"
                 ) -> tuple[tuple[int, int], tuple[int, int]]:
    """Where a native (H, W) frame lands in a `size` frame: (its resized (h, w), the (top, left) of its corner).

    'pad' (letterbox) fits the whole frame inside, aspect kept, zeros around it; 'crop' fills the frame, aspect kept,
    cutting the centre out of the longer side; 'stretch' resizes each side on its own (the aspect changes).
    """
    if fit not in FITS:
        raise ValueError(f"frame_fit must be one of {list(FITS)}, got {fit!r}")
    (h, w), (H, W) = native_hw, size
    if fit == "stretch":
        return (H, W), (0, 0)
    s = (min if fit == "pad" else max)(H / h, W / w)
    hw = (max(1, round(h * s)), max(1, round(w * s)))
    return hw, ((H - hw[0]) // 2, (W - hw[1]) // 2)


def place(frames: np.ndarray, size: tuple[int, int], corner: tuple[int, int]) -> np.ndarray:
    """(..., h, w, C) frames put at `corner` (top, left; negative: cut off) of a zero (..., H, W, C) frame."""
    out = np.zeros((*frames.shape[:-3], *size, frames.shape[-1]), frames.dtype)
    (top, left), (h, w) = corner, frames.shape[-3:-1]
    ys, xs = slice(max(0, top), min(size[0], top + h)), slice(max(0, left), min(size[1], left + w))
    out[..., ys, xs, :] = frames[..., ys.start - top:ys.stop - top, xs.start - left:xs.stop - left, :]
    return out


def fit_boxes(boxes, native_hw: tuple[int, int], size: tuple[int, int], fit: str = "pad") -> list:
    """Boxes (x, y, w, h) in a native frame's pixels -> the same boxes in the `size` frame (`fit_geometry`)."""
    (h, w), (top, left) = fit_geometry(native_hw, size, fit)
    sy, sx = h / native_hw[0], w / native_hw[1]
    return [(x * sx + left, y * sy + top, bw * sx, bh * sy) for x, y, bw, bh in boxes]


# ---------------------------------------------------------------------------------- still images
def read_image(path: str | Path, grayscale: bool = False, size: tuple[int, int] | None = None,
               resample: int = Image.BILINEAR, fit: str = "stretch") -> np.ndarray:
    """A still image as uint8 `(H, W, C)`; alpha is dropped. `size=(H, W)` resizes it: `fit` 'stretch', or keeping
    its aspect ratio 'pad' / 'crop' (`fit_geometry`).

    16-bit images keep their high byte (value >> 8), whatever their content: every frame of a
    16-bit clip is scaled alike, as `_to_layout` scales uint16 arrays.
    """
    path = check_readable(path)
    try:
        with Image.open(path) as im:
            im.load()
            corner = None
            if size:
                hw, corner = fit_geometry((im.height, im.width), size, fit)
                im = im.resize((hw[1], hw[0]), resample)
            if im.mode in ("I;16", "I;16B", "I;16L", "I"):  # "I": 16-bit PNG in older Pillow
                arr = (np.clip(np.asarray(im).astype(np.int64), 0, 65535) >> 8).astype(np.uint8)
            elif im.mode == "P":
                arr = np.asarray(im.convert("RGBA" if "transparency" in im.info else "RGB"))
            elif im.mode in ("L", "LA", "RGB", "RGBA"):
                arr = np.asarray(im)
            else:
                arr = np.asarray(im.convert("RGB"))
    except (OSError, SyntaxError, ValueError) as err:
        raise DataError(path, f"cannot read image ({err})", "re-export the image as PNG") from err
    arr = _to_layout(arr[None], grayscale)[0]
    return arr if corner is None or arr.shape[:2] == tuple(size) else place(arr, size, corner)


def read_mask(path: str | Path, size: tuple[int, int] | None = None) -> np.ndarray:
    """A lesion mask as bool `(H, W)`: any non-zero pixel is lesion."""
    return read_image(path, grayscale=True, size=size, resample=Image.NEAREST)[..., 0] > 0


def write_video(path: str | Path, frames: np.ndarray, fps: int = 20, crf: int = 18) -> Path:
    """Write uint8 `(T, H, W)` or `(T, H, W, C)` frames as H.264 mp4 that decord reads (even H and W)."""
    import av

    path = Path(path)
    frames = _to_layout(np.asarray(frames), grayscale=False)
    t, h, w, _ = frames.shape
    if h % 2 or w % 2:
        raise ValueError(f"H.264 needs even frame sizes, got {h}x{w}")
    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), mode="w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = w, h, "yuv420p"
        # one thread and fixed options: the same frames always give the same bytes
        stream.options = {"crf": str(crf), "preset": "veryfast", "threads": "1", "tune": "grain"}
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return path
