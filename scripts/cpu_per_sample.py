"""CPU time per sample of a bake against the floor, in one process, on the same images.

    python scripts/cpu_per_sample.py                  # photos from bench.py's cache, 3 pools
    python scripts/cpu_per_sample.py --pools 5 --repeat 5

Where `bench.py` times whole commands (start-up, scheduling and the machine's drift included),
this isolates the per-sample work: for each pool of a real bake plan it times (process CPU time,
warm page cache, best of --repeat) the floor's function on the pool's files, mixbake's
`load_pool` (read + decode + resize of every item) and the whole `bake_pool` (plus blend,
encode, labels, writing the pool's shard and its sidecar). Run `scripts/bench.py` once first: it
generates the photos.
"""
import argparse
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import bench  # noqa: E402  (the floor's function and the data cache)


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--data", type=Path, default=bench.REPO / "bench-data" / "photos-10000-s0")
    p.add_argument("--pools", type=int, default=3, help="pools (shards) to measure")
    p.add_argument("--repeat", type=int, default=3, help="best of R per pool")
    args = p.parse_args()
    if not args.data.is_dir():
        raise SystemExit(f"{args.data} is missing: run scripts/bench.py first (it generates it)")

    import cv2
    from mixbake import worker
    from mixbake.config import BakeConfig
    from mixbake.sources import open_source
    from mixbake.tasks import make_tasks

    cv2.setNumThreads(0)
    config = BakeConfig(size=bench.SIZE, image_format="jpeg", quality=bench.QUALITY, seed=0)
    with tempfile.TemporaryDirectory(prefix="mixbake-cpu-") as out:
        tasks = make_tasks(config, open_source(str(args.data)), out, "cpu-per-sample")
        worker.bake_pool(tasks[0])  # warm-up: lazy imports, first allocations
        best = {}
        for task in tasks[1:1 + args.pools]:
            paths = [str(args.data / ref) for ref in task.refs]
            runs = {
                "floor (read+decode+resize+encode)": lambda: [bench._floor_one(p) for p in paths],
                "mixbake load_pool (read+decode+resize)": lambda: worker.load_pool(task),
                "mixbake bake_pool (whole shard)": lambda: worker.bake_pool(task),
            }
            for _ in range(args.repeat):
                for name, run in runs.items():
                    c0 = time.process_time()
                    run()
                    seconds = (time.process_time() - c0) / len(paths)
                    key = (name, task.task_id)
                    best[key] = min(best.get(key, seconds), seconds)
    names = list(dict.fromkeys(name for name, _ in best))
    floor = None
    print(f"CPU per sample, {args.pools} pools of {len(paths)} photos -> {bench.SIZE}px JPEG q{bench.QUALITY}, "
          f"best of {args.repeat}:")
    for name in names:
        per = [v for (n, _), v in best.items() if n == name]
        us = sum(per) / len(per) * 1e6
        floor = floor or us
        print(f"  {name:42s} {us:7.0f} us  ({us / floor:.2f} x floor)")


if __name__ == "__main__":
    main()
