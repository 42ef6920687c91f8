"""Regret plots from the TensorBoard logs of :class:`~bpa_gym.wrappers.regret.RegretWrapper`.

:func:`plot_regret` draws one curve per argument of ``log_dirs``:

* a directory holding event files directly is **one run** (one seed);
* a directory whose subdirectories hold event files is **one group of
  seeds** (each subdirectory one seed), drawn as the mean ± one standard
  deviation of ``regret/cumulative`` over seeds.

Each curve comes with its bound ``regret/bound`` (dashed, mean over seeds; curves with the same
bound share one dashed line).  Log-log plots use a symlog y axis when some regret is <= 0.
The CLI ``bpa-gym plot-regret LOGDIR... --out FILE --loglog`` calls it.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Mapping, Sequence

import numpy as np

from bpa_gym.common.files import atomic_write
from bpa_gym.common.validation import Arguments, Bool, NonEmptyStr, Str, check
from bpa_gym.errors import ConfigError, DataNotFoundError


class _PlotArgs(Arguments):
    loglog: Bool = False
    labels: list[Str] | None = None
    title: Str | None = None
    out_suffix: NonEmptyStr = ".png"


def _has_events(d: Path) -> bool:
    return any(p.is_file() and "tfevents" in p.name for p in d.iterdir())


def _runs_of(d: Path) -> list[Path]:
    if not d.is_dir():
        raise DataNotFoundError(f"log dir {str(d)!r} does not exist; pass a RegretWrapper(log_dir=...) directory")
    if _has_events(d):
        return [d]
    runs = sorted(p for p in d.iterdir() if p.is_dir() and _has_events(p))
    if not runs:
        raise DataNotFoundError(
            f"no TensorBoard event files in {str(d)!r} or its subdirectories; run with RegretWrapper(log_dir=...) "
            "and close() the env so the events are flushed"
        )
    return runs


def read_scalars(run_dir: str | os.PathLike, tag: str) -> tuple[np.ndarray, np.ndarray]:
    """``(steps, values)`` of one scalar tag of one run directory (all points).

    Raises:
        DataNotFoundError: the run has no such tag.
    """
    from tensorboard.backend.event_processing.event_accumulator import SCALARS, EventAccumulator

    acc = EventAccumulator(os.fspath(run_dir), size_guidance={SCALARS: 0})
    acc.Reload()
    if tag not in acc.Tags().get("scalars", []):
        raise DataNotFoundError(
            f"run {os.fspath(run_dir)!r} has no scalar {tag!r} (has {acc.Tags().get('scalars', [])}); "
            "was it written by RegretWrapper?"
        )
    events = acc.Scalars(tag)
    steps = np.array([e.step for e in events], dtype=np.int64)
    values = np.array([e.value for e in events], dtype=np.float64)
    order = np.argsort(steps, kind="stable")
    return steps[order], values[order]


def load_regret_group(log_dir: str | os.PathLike) -> dict[str, np.ndarray]:
    """Cumulative regret and bound of one group (see the module docstring), on the steps all seeds share.

    Returns:
        ``{"steps", "mean", "std", "bound", "n_seeds"}`` (``n_seeds`` a 0-d array).
    """
    runs = _runs_of(Path(log_dir))
    series = [read_scalars(r, "regret/cumulative") for r in runs]
    bounds = [read_scalars(r, "regret/bound") for r in runs]
    common = series[0][0]
    for steps, _ in series[1:]:
        common = np.intersect1d(common, steps)
    if common.size == 0:
        raise DataNotFoundError(f"the seeds under {os.fspath(log_dir)!r} share no logged step; log on the same schedule")
    vals = np.stack([v[np.searchsorted(s, common)] for s, v in series])
    bnd = np.stack([v[np.searchsorted(s, common)] for s, v in bounds])
    return {"steps": common, "mean": vals.mean(axis=0), "std": vals.std(axis=0), "bound": bnd.mean(axis=0),
            "n_seeds": np.array(len(runs))}


def plot_regret(
    log_dirs: str | os.PathLike | Sequence[str | os.PathLike],
    out_png: str | os.PathLike,
    loglog: bool = False,
    labels: Sequence[str] | None = None,
    title: str | None = None,
) -> Path:
    """Plot cumulative pseudo-regret (mean ± std over seeds) and the bound; write a PNG.

    Args:
        log_dirs: One directory or a list; each one curve (see the module
            docstring for single runs vs. groups of seeds).
        out_png: Path of the PNG to write (parent directories are created).
        loglog: Log-log axes (a slope of 1/2 is ``sqrt(T)`` growth).
        labels: Legend labels, one per log dir (default: the directory names).
        title: Figure title.

    Returns:
        The path of the PNG written.

    Raises:
        DataNotFoundError: a directory is missing or has no regret events.
        ConfigError: bad arguments (``labels`` not one string per log dir, ``loglog`` not a bool, an
            image format matplotlib cannot write, ...).
    """
    dirs = [log_dirs] if isinstance(log_dirs, (str, os.PathLike)) else log_dirs
    if isinstance(dirs, (bytes, Mapping)) or not isinstance(dirs, Sequence) \
            or not all(isinstance(d, (str, os.PathLike)) for d in dirs):
        raise ConfigError(f"log_dirs must be a path or a list of paths, got {log_dirs!r:.80}")
    dirs = list(dirs)
    if not dirs:
        raise ConfigError("plot_regret needs at least one log dir")
    if not isinstance(out_png, (str, os.PathLike)):
        raise ConfigError(f"out_png must be a path, got {type(out_png).__name__}")
    out = Path(out_png)
    if isinstance(labels, str):
        raise ConfigError(f"labels must be a list of strings (one per log dir), not one string: {labels!r}")
    args = check(_PlotArgs, "plot_regret", loglog=loglog, labels=None if labels is None else list(labels),
                 title=title, out_suffix=out.suffix or ".png")
    if args.labels is not None and len(args.labels) != len(dirs):
        raise ConfigError(f"got {len(args.labels)} labels for {len(dirs)} log dirs; give one label per log dir")
    groups = [load_regret_group(d) for d in dirs]  # every log is read (and checked) before drawing

    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(7, 4.5))
    try:
        drawn_bounds: list[tuple[np.ndarray, np.ndarray]] = []
        any_negative = False
        for i, (d, g) in enumerate(zip(dirs, groups)):
            label = args.labels[i] if args.labels is not None else Path(d).name
            n = int(g["n_seeds"])
            color = f"C{i % 10}"
            ax.plot(g["steps"], g["mean"], color=color, label=f"{label} (n={n})")
            if n > 1:
                ax.fill_between(g["steps"], g["mean"] - g["std"], g["mean"] + g["std"], color=color, alpha=0.2)
            any_negative |= bool(np.any(g["mean"] - g["std"] <= 0))
            same = any(s.shape == g["steps"].shape and np.array_equal(s, g["steps"]) and np.allclose(b, g["bound"])
                       for s, b in drawn_bounds)
            if not same:  # runs with the same m share one bound curve
                drawn_bounds.append((g["steps"], g["bound"]))
                ax.plot(g["steps"], g["bound"], color="k" if i == 0 else color, linestyle="--", linewidth=1,
                        label="bound" if i == 0 else f"{label}: bound")
        if args.loglog:
            ax.set_xscale("log")
            if any_negative:  # signal-mode regret can be <= 0
                ax.set_yscale("symlog", linthresh=1.0)
            else:
                ax.set_yscale("log")
        ax.set_xlabel("step T")
        ax.set_ylabel("cumulative pseudo-regret R_T")
        ax.set_title(args.title or "Cumulative regret (mean ± std over seeds) and bound c·m^1.5·sqrt(T log T)")
        ax.grid(True, alpha=0.3)
        ax.legend(fontsize=7)
        fig.tight_layout()
        fmt = args.out_suffix.lstrip(".").lower()
        if fmt not in fig.canvas.get_supported_filetypes():
            raise ConfigError(f"cannot write a {args.out_suffix!r} image; use one of "
                              f"{sorted('.' + k for k in fig.canvas.get_supported_filetypes())}")
        with atomic_write(out, "wb") as fh:  # no half-written image if the run is killed
            fig.savefig(fh, format=fmt, dpi=120)
    finally:
        plt.close(fig)
    return out
