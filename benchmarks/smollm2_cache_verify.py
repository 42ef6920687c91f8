"""How long the SmolLM2 cache check takes on load: cold (first load in a process: full sha256 of every file)
and warm (later loads: size + mtime only).

    BPA_CACHE_DIR=/tmp/bpa-cache python benchmarks/smollm2_cache_verify.py
"""

from __future__ import annotations

import time

import bpa_gym.receivers.smollm2 as smollm2


def main() -> None:
    gguf = smollm2.smollm2_gguf_path()
    target = smollm2.smollm2_path()  # converts once if needed
    size = sum(p.stat().st_size for p in target.iterdir() if p.is_file())
    source_size = gguf.stat().st_size
    smollm2._VERIFIED.clear()
    t0 = time.perf_counter()
    assert smollm2._cache_problem(target, source_size) is None
    cold = time.perf_counter() - t0
    warm = []
    for _ in range(100):
        t0 = time.perf_counter()
        smollm2._cache_problem(target, source_size)
        warm.append(time.perf_counter() - t0)
    warm.sort()
    print(f"cache folder: {size / 1e6:.0f} MB")
    print(f"cold (first load in a process, full sha256): {cold * 1e3:.0f} ms")
    print(f"warm (size + mtime):                         {warm[len(warm) // 2] * 1e3:.3f} ms (median of 100)")


if __name__ == "__main__":
    main()
