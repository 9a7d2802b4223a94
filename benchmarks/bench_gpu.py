"""GPU speed benchmark of the paper profiles (the same as `usnb bench`): clips/s, MFU, peak memory, loader frames/s,
each against a naive configuration. `--quick` runs on a CPU in about a minute; see usnb/bench.py.

    python benchmarks/bench_gpu.py --quick --out runs/bench/quick.json
    python benchmarks/bench_gpu.py --out runs/bench/h200.json          # on a GPU: every paper profile
"""
import sys

from usnb.bench import main

if __name__ == "__main__":
    sys.exit(main())
