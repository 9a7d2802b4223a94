"""Peak memory of decoding a long clip to a small grayscale size (issue: a 3,000-frame clip must decode in at most
twice the memory of its result).

    python benchmarks/decode_memory.py [--frames 3000] [--size 112] [--native 256] [--out /tmp/usnb-long.mp4]
                                       [--max-frames 1024]

Writes a synthetic H.264 clip of `frames` frames at `native` px once, then decodes it to `size` px grayscale in a
fresh process and prints: the result's size, the process's peak resident memory before and after decoding (the
increase is what decoding cost), and the ratio of that increase to the result. Compare with `/usr/bin/time -v`.
With `--max-frames N` it decodes what the clip cache keeps of a longer clip: N frames spread evenly, read by index.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

CHILD = """
import json, resource, sys
import numpy as np
from usnb import io
from usnb.sampling import uniform_indices
path, size, keep = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
import decord, av  # the decoders' own memory counts as the baseline
before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
n = io.clip_shape(path)[0]
indices = uniform_indices(n, keep) if 0 < keep < n else None
frames = io.read_video(path, grayscale=True, size=(size, size), indices=indices)
after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"shape": list(frames.shape), "result_mb": frames.nbytes / 2**20, "peak_before_mb": before / 2**20,
                  "peak_after_mb": after / 2**20}))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--frames", type=int, default=3000)
    ap.add_argument("--size", type=int, default=112)
    ap.add_argument("--native", type=int, default=256)
    ap.add_argument("--out", type=Path, default=Path("/tmp/usnb-long.mp4"))
    ap.add_argument("--max-frames", type=int, default=0, help="keep this many frames spread evenly (0: every frame)")
    args = ap.parse_args()
    if not args.out.exists():
        import numpy as np

        from usnb import io

        rng = np.random.default_rng(0)
        base = rng.integers(0, 255, (args.native, args.native, 3), dtype=np.uint8)
        frames = np.stack([np.roll(base, t, axis=1) for t in range(args.frames)])  # a drifting texture
        io.write_video(args.out, frames)
        del frames
    done = subprocess.run([sys.executable, "-c", CHILD, str(args.out), str(args.size),
                                                          str(args.max_frames)], capture_output=True, text=True,
                          check=True)
    r = json.loads(done.stdout)
    cost = r["peak_after_mb"] - r["peak_before_mb"]
    print(f"clip {args.out}: {args.frames} frames at {args.native} px -> {r['shape']} uint8 = {r['result_mb']:.1f} MB")
    print(f"peak resident memory: {r['peak_before_mb']:.0f} MB before decoding, {r['peak_after_mb']:.0f} MB after: "
          f"decoding cost {cost:.0f} MB = {cost / r['result_mb']:.2f} x the result")


if __name__ == "__main__":
    main()
