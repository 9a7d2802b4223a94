"""The built-in ultrasound phantom: deterministic B-mode-like clips with ground truth no real set has.

`generate("breast", out)` writes H.264 clips, a manifest, per-frame annotations and (breast) a
still-image set with masks; `ensure_phantom("breast")` does it once under USNB_DATA_DIR and
reuses it. The same seed gives the same files. See data_cards/phantom.md.
"""
from __future__ import annotations

import csv
import json
import os
import shutil
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
from PIL import Image

from .. import io
from ..datasets.manifest import load_image_manifest, load_manifest
from ..live import progress
from ..paths import data_dir
from ..splits import split_groups
from . import breast, lung

GENERATOR_VERSION = 5  # v5: breast features MU 0.65 -> 0.85; v4: lossless H.264 (v3 lossy clips varied in parallel)
KINDS = ("breast", "lung")
LABELS = {"breast": ("benign", "malignant"), "lung": ("normal", "consolidation")}
SPLIT_FRACTIONS = {"train": 0.6, "val": 0.2, "test": 0.2}
# Clips of further patients that the notebooks add to the test split of the default phantom: 60 test clips of
# n=300 gave an AUC 95 % CI about +-0.10 wide (one pair of clips moved AUC by 0.02); 60 + 240 = 300 test clips give
# about +-0.05 at AUC 0.9 (Hanley & McNeil 1982). Evaluation is cheap; training sets are unchanged.
EXTRA_TEST_CLIPS = 240


@dataclass(frozen=True)
class PhantomSpec:
    """What to generate. Defaults: the small set (a few hundred clips at 112 px)."""

    kind: str = "breast"
    n: int = 300  # clips
    size: int = 112  # frame height = width, pixels (even)
    frames: int = 32
    seed: int = 0
    positive_fraction: float | None = None  # malignant / consolidation share; 0.25 breast, 0.5 lung
    n_images: int | None = None  # breast still images; default n // 2
    fps: int = 16
    extra_test: int = 0  # clips of further patients added to the test split only (train and val stay as for n)

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"phantom kind must be one of {KINDS}, got {self.kind!r}")
        if self.size % 2 or self.size < 32:
            raise ValueError(f"phantom size must be even and >= 32 (H.264), got {self.size}")
        if self.n < 4 or self.frames < 2:
            raise ValueError(f"phantom needs n >= 4 clips of frames >= 2, got n={self.n}, frames={self.frames}")
        if self.extra_test < 0:
            raise ValueError(f"phantom extra_test must be >= 0 clips, got {self.extra_test}")
        if self.seed < 0:
            raise ValueError(f"phantom seed must be >= 0, got {self.seed}")

    @property
    def positive(self) -> float:
        return self.positive_fraction if self.positive_fraction is not None else {"breast": 0.25, "lung": 0.5}[self.kind]

    @property
    def images(self) -> int:
        return 0 if self.kind != "breast" else self.n // 2 if self.n_images is None else self.n_images

    def folder_name(self) -> str:
        return (f"{self.kind}-n{self.n}-s{self.size}-t{self.frames}-seed{self.seed}-p{self.positive:g}"
                f"-i{self.images}" + (f"-x{self.extra_test}" if self.extra_test else "") + f"-v{GENERATOR_VERSION}")


def _draw_patients(rng: np.random.Generator, spec: PhantomSpec, n: int, first: int) -> list[dict]:
    """Patients with 1 (lung) or 1-2 (breast) sweeps each, numbered from `first`, until `n` clips."""
    patients, clips = [], 0
    while clips < n:
        sweeps = 2 if spec.kind == "breast" and rng.random() < 0.4 else 1
        sweeps = min(sweeps, n - clips)
        patients.append({"patient_id": f"p{first + len(patients):04d}", "sweeps": sweeps,
                         "positive": bool(rng.random() < spec.positive)})
        clips += sweeps
    return patients


def _plan(spec: PhantomSpec) -> list[dict]:
    """Patients -> clips with label, split and seeds; fixed by spec.seed alone.

    The `extra_test` patients come from a second random stream after the first `n` clips, so a larger test split
    leaves every train and val clip (and the first n clips' test split) exactly as they were.
    """
    rng = np.random.default_rng([spec.seed, 7919])
    patients = _draw_patients(rng, spec, spec.n, first=0)
    labels = LABELS[spec.kind]
    part_of = split_groups({p["patient_id"]: labels[p["positive"]] for p in patients}, SPLIT_FRACTIONS, rng)
    for p in patients:  # stratified split by patient, as usnb.splits.assign_splits does for any data
        p["split"] = part_of[p["patient_id"]]
    if spec.extra_test:
        extra = _draw_patients(np.random.default_rng([spec.seed, 7919, 1]), spec, spec.extra_test, len(patients))
        patients += [dict(p, split="test") for p in extra]
    tasks = []
    for index, p in enumerate(patients):
        label = LABELS[spec.kind][int(p["positive"])]
        for sweep in range(p["sweeps"]):
            video_id = f"{p['patient_id']}_s{sweep}"
            tasks.append({"video_id": video_id, "label": label, "patient_id": p["patient_id"], "split": p["split"],
                          "sweep": sweep, "seed": [spec.seed, index], "positive": p["positive"]})
    return tasks


def _clip_task(spec: PhantomSpec, out: Path, task: dict) -> dict:
    """Render, encode and annotate one clip; returns its manifest row."""
    lesion_rng = np.random.default_rng(task["seed"] + [0])  # the patient's lesion: same for both sweeps
    noise_rng = np.random.default_rng(task["seed"] + [1 + task["sweep"]])
    if spec.kind == "breast":
        latent = breast.draw_features(lesion_rng, task["positive"])
        lesion = breast.make_lesion(lesion_rng, latent, spec.size)
        if task["sweep"] == 1:
            lesion = lesion.rotated()
        frames, mask = breast.render(noise_rng, lesion, spec.frames, spec.size)
        features = {**latent, "radius_px": float(np.sqrt(lesion.rx * lesion.ry)), "contrast": lesion.contrast}
    else:
        frames, mask, features = lung.render(noise_rng, task["positive"], spec.frames, spec.size)
    rel_video = Path("videos") / task["label"] / f"{task['video_id']}.mp4"
    # lossless (crf 0): the decoded pixels are the rendered ones (+-1 from YUV rounding) on every run; lossy x264
    # output changed in a few clips from run to run when several encoders ran at once, and so did the results
    io.write_video(out / rel_video, frames, fps=spec.fps, crf=0)
    annotation = {"video_id": task["video_id"], "label": task["label"], "patient_id": task["patient_id"],
                  "frames": spec.frames, "sweep": task["sweep"], **breast.ground_truth(mask), "features": features}
    rel_ann = Path("annotations") / f"{task['video_id']}.json"
    (out / rel_ann).write_text(json.dumps(annotation))
    return {"path": rel_video.as_posix(), "label": task["label"], "split": task["split"],
            "patient_id": task["patient_id"], "keyframe": "" if annotation["keyframe"] is None else annotation["keyframe"],
            "annotation": rel_ann.as_posix()}


def _image_task(spec: PhantomSpec, out: Path, task: dict) -> dict:
    """One BUSI-like still: the keyframe slice through the lesion centre, with its mask."""
    rng = np.random.default_rng(task["seed"] + [0])
    lesion = breast.make_lesion(rng, breast.draw_features(rng, task["positive"]), spec.size)
    frames, mask = breast.render(rng, lesion, 1, spec.size, zs=np.array([lesion.z0]))
    stem = Path("images") / task["label"] / task["video_id"]
    Image.fromarray(frames[0]).save(out / f"{stem}.png")
    Image.fromarray(((mask[0] > 0.5) * 255).astype(np.uint8)).save(out / f"{stem}_mask.png")
    return {"path": f"{stem.as_posix()}.png", "mask_path": f"{stem.as_posix()}_mask.png", "label": task["label"],
            "split": task["split"], "patient_id": task["patient_id"]}


def _write_csv(path: Path, rows: list[dict]) -> None:
    with open(path, "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)


def generate(kind: str = "breast", out: str | Path | None = None, workers: int | None = None, **spec_kw) -> Path:
    """Write a phantom data set to `out` (default: USNB_DATA_DIR/phantom/<spec>); returns the folder."""
    spec = PhantomSpec(kind=kind, **spec_kw)
    out = Path(out).expanduser().resolve() if out else data_dir() / "phantom" / spec.folder_name()  # '.' has a name
    if out.exists() and not out.is_dir():
        raise FileExistsError(f"{out} is a file, not a folder. Fix: pass a new or empty --out folder")
    if out.exists() and any(out.iterdir()):
        if not (out / "phantom.json").exists():
            raise FileExistsError(f"{out} exists and is not a phantom folder; refusing to overwrite it. "
                                  "Fix: choose an empty or new --out folder")
        foreign = _not_written_by_the_phantom(out)
        if foreign:
            raise FileExistsError(f"{out} holds a phantom and {len(foreign)} thing(s) it did not write (e.g. "
                                  f"{', '.join(foreign[:3])}); regenerating would delete them. Fix: move them out of "
                                  "the folder, or choose another --out folder")
    tmp = out.with_name(out.name + f".partial-{os.getpid()}")
    try:
        _write(spec, tmp, workers)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    shutil.rmtree(out, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    os.replace(tmp, out)
    return out


def _not_written_by_the_phantom(folder: Path) -> list[str]:
    """What under a phantom folder its manifests, annotations and phantom.json do not account for: files, folders
    that hold none of its files (an empty one too) and symbolic links (the phantom writes none)."""
    own = {"phantom.json", "manifest.csv", "images.csv"}
    for name in ("manifest.csv", "images.csv"):
        if (folder / name).exists():
            with open(folder / name, newline="") as f:
                for row in csv.DictReader(f):
                    own.update(row.get(k) for k in ("path", "mask_path", "annotation") if row.get(k))
    own_dirs = {"videos", "images", "annotations"} | {f"{d}/{label}" for d in ("videos", "images")
                                                       for labels in LABELS.values() for label in labels}
    own_dirs |= {parent.as_posix() for rel in own for parent in Path(rel).parents if parent != Path(".")}

    def owned(rel: str) -> bool:  # a listed file, or a frame inside a listed frame folder
        return rel in own or any(rel.startswith(o.rstrip("/") + "/") for o in own)

    foreign = []
    for top, dirs, files in os.walk(folder):  # symbolic links are not followed: each is listed itself
        for name in dirs + files:
            path = Path(top) / name
            rel = path.relative_to(folder).as_posix()
            if path.is_symlink():
                foreign.append(f"{rel} (a symbolic link)")
            elif name in dirs and not (rel in own_dirs or owned(rel)):
                foreign.append(f"{rel}/")
            elif name in files and not owned(rel):
                foreign.append(rel)
        dirs[:] = [d for d in dirs if not (Path(top) / d).is_symlink()]
    return sorted(foreign)


def _write(spec: PhantomSpec, tmp: Path, workers: int | None) -> None:
    """Generate everything into `tmp` (renamed into place by `generate`)."""
    kind = spec.kind
    shutil.rmtree(tmp, ignore_errors=True)
    for label in LABELS[kind]:
        (tmp / "videos" / label).mkdir(parents=True)
        if spec.images:
            (tmp / "images" / label).mkdir(parents=True)
    (tmp / "annotations").mkdir()
    start = time.perf_counter()
    tasks = _plan(spec)
    image_tasks = []
    if spec.images:  # separate patients, as BUSI's images are not BUSV's patients
        image_spec = PhantomSpec(kind="breast", n=max(2 * spec.images, 4), seed=spec.seed + 10_000,
                                 positive_fraction=spec.positive)
        image_tasks = [dict(t, video_id=f"img_{t['patient_id']}", patient_id=f"img_{t['patient_id']}")
                       for t in _plan(image_spec) if t["sweep"] == 0][: spec.images]
    workers = workers or min(4, os.cpu_count() or 1)
    # about 15 clips a second on an idle 2-core CPU (540 clips: 35 s), slower on a busy one
    with ProcessPoolExecutor(workers) as pool, progress(total=len(tasks) + len(image_tasks), unit="item",
                                                        desc=f"generating the {kind} phantom (once)") as bar:
        rows, image_rows = [], []
        for row in pool.map(_clip_task, [spec] * len(tasks), [tmp] * len(tasks), tasks, chunksize=4):
            rows.append(row)
            bar.update()
        for row in pool.map(_image_task, [spec] * len(image_tasks), [tmp] * len(image_tasks), image_tasks,
                            chunksize=8):
            image_rows.append(row)
            bar.update()
    _write_csv(tmp / "manifest.csv", rows)
    if image_rows:
        _write_csv(tmp / "images.csv", image_rows)
    info = {"generator_version": GENERATOR_VERSION, "spec": asdict(spec), "clips": len(rows), "images": len(image_rows),
            "seconds": round(time.perf_counter() - start, 2)}
    (tmp / "phantom.json").write_text(json.dumps(info, indent=1))  # written last: marks the set complete


def notebook_phantom(kind: str, clips: int, seed: int, test_clips: int | None = None) -> Path:
    """The phantom a notebook trains on: `clips` clips plus `test_clips` (None: EXTRA_TEST_CLIPS) more test clips."""
    return ensure_phantom(kind, n=clips, seed=seed, extra_test=EXTRA_TEST_CLIPS if test_clips is None else test_clips)


def ensure_phantom(kind: str = "breast", **spec_kw) -> Path:
    """The cached phantom folder for this spec under USNB_DATA_DIR/phantom/, generated on first use."""
    folder = data_dir() / "phantom" / PhantomSpec(kind=kind, **spec_kw).folder_name()
    if not (folder / "phantom.json").exists():
        generate(kind, folder, **spec_kw)
    return folder


def load_phantom(root: str | Path):
    """Clip records of a phantom folder, with per-frame boxes, visibility and features in `meta`."""
    root = Path(root)
    kind = json.loads((root / "phantom.json").read_text())["spec"]["kind"] if (root / "phantom.json").exists() else None
    labels = LABELS.get(kind) or sorted({*LABELS["breast"], *LABELS["lung"]})
    return load_manifest(root / "manifest.csv", labels=labels, source="phantom")


def load_phantom_images(root: str | Path):
    """Still-image records (keyframes with masks) of a breast phantom folder."""
    return load_image_manifest(Path(root) / "images.csv", labels=LABELS["breast"], source="phantom")
