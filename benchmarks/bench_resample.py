"""`task import --resample` on one 300x300 location (27 bands x 4 seasons = 108 band images), on one core.

    .venv/bin/python benchmarks/bench_resample.py [--repeat 5]

Goal: bilinear under 1 s per location, about what a separable matrix product
costs. Measured in the same run: `nearest`, a separable matrix-product
baseline (`Wy @ band @ Wx.T` with the same weights, single-threaded BLAS), and
the three-operand `np.einsum` that bilinear used before (timed on 2 band images
and scaled to 108: the whole location takes minutes). The images are resampled
file by file, as `task import` calls it (12 files of 2, 13 or 12 bands).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # one core, before numpy loads
    os.environ[_var] = "1"

import argparse  # noqa: E402
import time  # noqa: E402

import numpy as np  # noqa: E402

from neuco_io import spec  # noqa: E402
from neuco_io.cube.rasters import interpolation_taps, resample  # noqa: E402

from common import best_of, describe_machine  # noqa: E402

SOURCE = 300


def location(seed: int = 0) -> list[np.ndarray]:
    """One location's 12 source files (modality x season) as (band, 300, 300) arrays."""
    rng = np.random.default_rng(seed)
    files = []
    for modality in spec.DOWNSTREAM_MODALITIES:
        bands = spec.MODALITIES[modality].n_bands
        for _ in range(spec.N_TIMES):
            if spec.MODALITIES[modality].s2:
                files.append(rng.integers(0, 10000, (bands, SOURCE, SOURCE)).astype(np.int16))
            else:
                files.append(rng.normal(-15, 5, (bands, SOURCE, SOURCE)).astype(np.float32))
    return files


def weights(n_in: int, n_out: int) -> np.ndarray:
    """The (n_out, n_in) dense interpolation matrix with the same taps as `resample`."""
    lo, hi, frac = interpolation_taps(n_in, n_out)
    matrix = np.zeros((n_out, n_in))
    np.add.at(matrix, (np.arange(n_out), lo), 1 - frac)
    np.add.at(matrix, (np.arange(n_out), hi), frac)
    return matrix


def matmul_baseline(image: np.ndarray) -> np.ndarray:
    wy, wx = weights(image.shape[1], spec.SIZE), weights(image.shape[2], spec.SIZE)
    return wy @ image.astype(np.float64) @ wx.T


def einsum_before(image: np.ndarray) -> np.ndarray:
    wy, wx = weights(image.shape[1], spec.SIZE), weights(image.shape[2], spec.SIZE)
    return np.einsum("yh,bhw,xw->byx", wy, image.astype(np.float64), wx)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5)
    args = parser.parse_args()
    files = location()
    n_bands = sum(f.shape[0] for f in files)
    for image in files:  # same result as the baseline (to float64 rounding)
        np.testing.assert_allclose(resample(image, "bilinear"), matmul_baseline(image), rtol=0, atol=1e-9)
    runs = {
        "bilinear": lambda: [resample(f, "bilinear") for f in files],
        "nearest": lambda: [resample(f, "nearest") for f in files],
        "separable matmul baseline": lambda: [matmul_baseline(f) for f in files],
    }
    times: dict[str, list[float]] = {name: [] for name in runs}
    for _ in range(args.repeat):  # interleaved, so load on the shared machine hits all alike
        for name, fn in runs.items():
            times[name].append(best_of(fn, 1)[0])
    best = {name: min(t) for name, t in times.items()}
    started = time.perf_counter()
    einsum_before(files[-1][:1])
    einsum_before(files[-1][:1])
    einsum_per_band = (time.perf_counter() - started) / 2
    print(f"# {describe_machine()}; one core; {len(files)} files, {n_bands} band images of {SOURCE}x{SOURCE} "
          f"-> {spec.SIZE}x{spec.SIZE}; best of {args.repeat}")
    for name, seconds in best.items():
        print(f"{name:<28} {seconds:7.3f} s per location")
    print(f"{'einsum (before)':<28} {einsum_per_band * n_bands:7.1f} s per location "
          f"({einsum_per_band:.2f} s per band image, scaled)")
    print(f"bilinear / baseline: {best['bilinear'] / best['separable matmul baseline']:.2f}x; "
          f"bilinear / nearest: {best['bilinear'] / best['nearest']:.1f}x")


if __name__ == "__main__":
    main()
