"""The one timing and reporting helper shared by every benchmark script.

A benchmark script builds its data once, then hands each competitor to :func:`measure`, which

* runs it once untimed (warm-up: Numba compilation, BLAS thread start-up, GPU context and
  kernel caches, allocator pools),
* times it ``repeat`` times with :func:`time.perf_counter` (stopping early once ``max_seconds``
  of timed runs have accumulated, so that a slow peer does not dominate the run) and keeps
  the best and the median,
* calls an optional ``sync`` callable before every clock read, so that asynchronous GPU work
  is counted (``cupy.cuda.Device().synchronize``, ``torch.cuda.synchronize``, ...),
* computes quality metrics on the result of the last timed run, outside the timed region,
* catches any exception, so that one broken peer becomes a row with a reason instead of
  ending the benchmark.

The rows are plain dictionaries. :func:`print_table` prints them as an aligned table with
ratio columns relative to chosen baseline rows, and :func:`write_json` stores them, with the
:func:`environment` they ran in, as JSON (atomically: a temporary file and ``os.replace``),
so that runs can be compared with each other.

Thread settings: users run at their libraries' default thread counts, and a benchmark run
only at one thread hides how the BLAS pools behave together. :func:`thread_setting` runs a
block at one setting (``None``: the defaults; ``n``: every BLAS/OpenMP pool, Numba and torch
limited to ``n`` and restored afterwards), :func:`thread_passes` runs a block once per setting
and labels its rows ``threads``, and :func:`openblas_warning` says when two OpenBLAS libraries
(two thread pools that spin against each other) are loaded.

Ratio convention: the column ``vs <baseline>`` holds ``time(baseline) / time(row)``, so a
value above 1 means the row is that many times *faster* than the baseline. With
``group_by="threads"`` the baseline is the row of that name *at the same thread setting*.
"""

from __future__ import annotations

import argparse
import contextlib
import datetime
import importlib
import json
import math
import os
import platform
import statistics
import sys
import tempfile
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

__all__ = [
    "Column",
    "Timing",
    "add_common_arguments",
    "environment",
    "format_environment",
    "limit_threads",
    "measure",
    "openblas_warning",
    "parse_thread_settings",
    "print_table",
    "thread_label",
    "thread_passes",
    "thread_setting",
    "threadpool_snapshot",
    "time_call",
    "write_json",
]


# --------------------------------------------------------------------------- timing


@dataclass
class Timing:
    """Wall-clock times of the timed runs of one call (seconds)."""

    times: list[float] = field(default_factory=list)
    result: Any = None

    @property
    def best(self) -> float:
        return min(self.times)

    @property
    def median(self) -> float:
        return statistics.median(self.times)


def time_call(
    fn: Callable[[], Any],
    *,
    repeat: int = 5,
    warmup: int = 1,
    max_seconds: float | None = None,
    sync: Callable[[], Any] | None = None,
    warmup_fn: Callable[[], Any] | None = None,
) -> Timing:
    """Time ``fn()``: ``warmup`` untimed calls, then up to ``repeat`` timed ones.

    ``warmup_fn`` (if given) is called for the warm-up instead of ``fn``: a smaller problem
    that compiles the same kernels and starts the same threads, for rows whose full run is
    too slow to spend once untimed. ``sync`` (if given) is called right before each start
    and stop of the clock, so that work queued asynchronously (on a GPU) is finished before
    the clock is read. Timed runs stop early once their total exceeds ``max_seconds`` (at
    least one timed run is always made). The result of the last timed call is kept in
    ``Timing.result``.
    """
    if repeat < 1:
        raise ValueError(f"repeat must be >= 1, got {repeat}")
    do_sync = sync if sync is not None else _no_sync
    for _ in range(warmup):
        (warmup_fn or fn)()
    do_sync()
    timing = Timing()
    total = 0.0
    for _ in range(repeat):
        do_sync()
        t0 = time.perf_counter()
        result = fn()
        do_sync()
        dt = time.perf_counter() - t0
        timing.times.append(dt)
        timing.result = result
        # Drop the reference between runs so that two results never coexist in memory.
        result = None
        total += dt
        if max_seconds is not None and total >= max_seconds:
            break
    return timing


def _no_sync() -> None:
    return None


def measure(
    name: str,
    fn: Callable[[], Any],
    *,
    repeat: int = 5,
    warmup: int = 1,
    max_seconds: float | None = None,
    sync: Callable[[], Any] | None = None,
    metrics: Callable[[Any], dict[str, Any]] | None = None,
    warmup_fn: Callable[[], Any] | None = None,
    **fields: Any,
) -> dict[str, Any]:
    """Time ``fn`` with :func:`time_call` and return one result row.

    The row holds ``name``, the extra ``fields`` (case, dtype, ...), ``threads`` (the
    :func:`thread_setting` it ran in, when it ran in one), ``time`` (best),
    ``time_median``, ``runs`` and whatever ``metrics(result)`` returns. If ``fn`` or
    ``metrics`` raises, the row gets ``time=None`` and ``error`` (the exception, one line),
    and the benchmark goes on.
    """
    row: dict[str, Any] = {"name": name, **fields}
    if _CURRENT_SETTING is not _OUTSIDE:
        row.setdefault("threads", thread_label(_CURRENT_SETTING))
    try:
        timing = time_call(
            fn,
            repeat=repeat,
            warmup=warmup,
            max_seconds=max_seconds,
            sync=sync,
            warmup_fn=warmup_fn,
        )
        row.update(time=timing.best, time_median=timing.median, runs=len(timing.times))
        if metrics is not None:
            row.update(metrics(timing.result))
    except Exception as exc:  # a broken peer must not end the benchmark
        row.update(time=row.get("time"), error=_one_line(exc))
        if os.environ.get("BENCH_TRACEBACK"):
            traceback.print_exc()
    return row


def _one_line(exc: BaseException) -> str:
    msg = " ".join(str(exc).split())
    if len(msg) > 160:
        msg = msg[:157] + "..."
    return f"{type(exc).__name__}: {msg}" if msg else type(exc).__name__


# --------------------------------------------------------------------------- environment


def _try_import(name: str) -> Any:
    try:
        return importlib.import_module(name)
    except Exception:  # ImportError, or a broken CUDA runtime under cupy
        return None


def _version(name: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def _cpu_model() -> str:
    with contextlib.suppress(OSError):
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    return platform.processor() or platform.machine()


def environment() -> dict[str, Any]:
    """Describe where the benchmark runs: machine, CPU, BLAS and thread settings, GPU, date.

    Call it after the benchmark so that lazily chosen settings (Numba's threading layer is
    only chosen once a parallel kernel runs) are reported as they were used.
    """
    env: dict[str, Any] = {
        "date": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
        "host": platform.node(),
        "platform": platform.platform(),
        "machine": platform.machine(),
        "cpu": _cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": sys.version.split()[0],
        "thread_limit": _THREAD_LIMIT,
        "thread_env": {
            k: os.environ[k]
            for k in (
                "OMP_NUM_THREADS",
                "MKL_NUM_THREADS",
                "OPENBLAS_NUM_THREADS",
                "NUMBA_NUM_THREADS",
                "NUMBA_THREADING_LAYER",
            )
            if k in os.environ
        },
        "versions": {
            n: _version(n)
            for n in (
                "sparselin",
                "numpy",
                "scipy",
                "numba",
                "scikit-learn",
                "torch",
                "cupy-cuda12x",
                "cupy-cuda11x",
                "cupy",
                "fbpca",
                "threadpoolctl",
            )
            if _version(n) is not None
        },
    }
    # BLAS/OpenMP pools as threadpoolctl sees them (numpy/scipy must be loaded to be seen).
    _try_import("numpy")
    _try_import("scipy.linalg")
    tpc = _try_import("threadpoolctl")
    env["threadpools"] = (
        [
            {k: d.get(k) for k in ("user_api", "internal_api", "num_threads", "version", "prefix")}
            for d in tpc.threadpool_info()
        ]
        if tpc is not None
        else "threadpoolctl not installed"
    )
    env["threadpool_info"] = threadpool_snapshot()
    env["openblas_warning"] = openblas_warning(env["threadpool_info"])
    numba = _try_import("numba")
    if numba is not None:
        try:
            layer = numba.threading_layer()
        except ValueError:
            layer = f"not chosen yet (config: {numba.config.THREADING_LAYER})"
        env["numba"] = {"threading_layer": layer, "num_threads": numba.get_num_threads()}
    torch = sys.modules.get("torch")  # only report torch if the benchmark loaded it
    if torch is not None:
        env["torch"] = {
            "num_threads": torch.get_num_threads(),
            "num_interop_threads": torch.get_num_interop_threads(),
            "cuda": torch.cuda.is_available(),
        }
        if torch.cuda.is_available():
            # TF32 matmuls change float32 accuracy and speed on NVIDIA GPUs: record the setting.
            with contextlib.suppress(Exception):
                env["torch"]["allow_tf32_matmul"] = bool(torch.backends.cuda.matmul.allow_tf32)
    env["gpu"] = _gpus()
    return env


def _gpus() -> list[str]:
    names: list[str] = []
    cp = sys.modules.get("cupy")
    if cp is not None:
        with contextlib.suppress(Exception):
            for i in range(cp.cuda.runtime.getDeviceCount()):
                props = cp.cuda.runtime.getDeviceProperties(i)
                name = props["name"]
                names.append(name.decode() if isinstance(name, bytes) else str(name))
            return names
    torch = sys.modules.get("torch")
    if torch is not None:
        with contextlib.suppress(Exception):
            if torch.cuda.is_available():
                names = [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return names


def format_environment(env: dict[str, Any]) -> str:
    """A few readable lines summarising :func:`environment`."""
    lines = [
        f"date     {env['date']}",
        f"machine  {env['cpu']} x{env['cpu_count']} logical CPUs; {env['platform']}",
        f"python   {env['python']}; "
        + ", ".join(f"{k} {v}" for k, v in env.get("versions", {}).items()),
    ]
    pools = env.get("threadpool_info")
    if not isinstance(pools, list):
        pools = env.get("threadpools")
    if isinstance(pools, list):
        # The file path tells the pools apart: NumPy's and SciPy's OpenBLAS share a prefix.
        for p in pools:
            lines.append(
                f"threads  {p.get('internal_api')} {p.get('version') or ''} "
                f"({p.get('user_api')}): {p.get('num_threads')} threads, "
                f"{p.get('filepath') or p.get('prefix')}"
            )
    else:
        lines.append(f"threads  {pools}")
    if env.get("openblas_warning"):
        lines.append(f"WARNING  {env['openblas_warning']}")
    if "numba" in env:
        nb = env["numba"]
        lines.append(
            f"numba    threading layer {nb['threading_layer']}, {nb['num_threads']} threads"
        )
    if "torch" in env:
        lines.append(f"torch    {env['torch']}")
    if env.get("thread_limit") is not None:
        lines.append(f"limit    all thread pools limited to {env['thread_limit']} (--threads)")
    if env.get("thread_env"):
        lines.append(f"env      {env['thread_env']}")
    lines.append("gpu      " + (", ".join(env["gpu"]) if env.get("gpu") else "none"))
    return "\n".join(lines)


# --------------------------------------------------------------------------- printing


@dataclass
class Column:
    """One table column: the row key, its header and a format for the value."""

    key: str
    header: str
    fmt: str | Callable[[Any], str] = "{}"

    def render(self, row: dict[str, Any]) -> str:
        value = row.get(self.key)
        if value is None:
            return "-"
        if callable(self.fmt):
            return self.fmt(value)
        if isinstance(value, float) and not math.isfinite(value):
            return str(value)
        return self.fmt.format(value)


def format_seconds(t: float) -> str:
    """Seconds in a readable unit: 1.23 s, 45.6 ms, 789 us."""
    if t >= 1.0:
        return f"{t:.3g} s" if t < 100 else f"{t:.0f} s"
    if t >= 1e-3:
        return f"{t * 1e3:.3g} ms"
    return f"{t * 1e6:.3g} us"


def print_table(
    rows: Sequence[dict[str, Any]],
    columns: Sequence[Column],
    *,
    baselines: dict[str, str] | None = None,
    title: str | None = None,
    file: Any = None,
    group_by: str | None = None,
) -> None:
    """Print ``rows`` as an aligned table.

    ``baselines`` maps a column header to the ``name`` of a baseline row; each adds a column
    ``time(baseline) / time(row)`` (above 1: the row is faster). With ``group_by`` (a row
    key, e.g. ``"threads"``) the baseline of a row is the one with the same value of that
    key, and a blank line separates the groups. A row that failed shows its
    ``error`` at the end of the line. Columns ``time``, ``time_median`` are formatted as
    durations automatically when they are given with the default format.
    """
    out = file if file is not None else sys.stdout
    cols = list(columns)

    def baseline_time(base_name: str, row: dict[str, Any]) -> float | None:
        for r in rows:
            if r.get("name") == base_name and (
                group_by is None or r.get(group_by) == row.get(group_by)
            ):
                return r.get("time")
        return None

    ratio_names = list((baselines or {}).items())
    headers = [c.header for c in cols] + [h for h, _ in ratio_names] + ["note"]
    table: list[list[str]] = []
    breaks: set[int] = set()
    for i, r in enumerate(rows):
        if group_by is not None and i > 0 and r.get(group_by) != rows[i - 1].get(group_by):
            breaks.add(i)
        ratio_cols = [(h, baseline_time(b, r)) for h, b in ratio_names]
        cells = []
        for c in cols:
            if c.key in ("time", "time_median") and c.fmt == "{}":
                cells.append(format_seconds(r[c.key]) if r.get(c.key) is not None else "-")
            else:
                cells.append(c.render(r))
        for _, t in ratio_cols:
            rt = r.get("time")
            cells.append(f"{t / rt:.2f}x" if t and rt else "-")
        note = r.get("error") or r.get("note") or ""
        cells.append(("FAILED: " if r.get("error") else "") + note)
        table.append(cells)
    # Left-align text columns (first ones and the note), right-align the numbers.
    numeric = [
        all(_looks_numeric(row[i]) for row in table) if table else False
        for i in range(len(headers))
    ]
    widths = [max([len(h)] + [len(row[i]) for row in table]) for i, h in enumerate(headers)]
    widths[-1] = len(headers[-1])  # the note column is last and not padded

    def fmt_line(cells: Iterable[str]) -> str:
        parts = []
        for i, cell in enumerate(cells):
            if i == len(headers) - 1:
                parts.append(cell)
            elif numeric[i]:
                parts.append(cell.rjust(widths[i]))
            else:
                parts.append(cell.ljust(widths[i]))
        return "  ".join(parts).rstrip()

    if title:
        print(f"\n{title}", file=out)
    header_line = fmt_line(headers)
    print(header_line, file=out)
    print("-" * len(header_line), file=out)
    for i, row in enumerate(table):
        if i in breaks:
            print(file=out)
        print(fmt_line(row), file=out)
    out.flush()


def _looks_numeric(cell: str) -> bool:
    if cell in ("-", ""):
        return True
    head = cell.split()[0].rstrip("x")
    try:
        float(head)
    except ValueError:
        return False
    return True


# --------------------------------------------------------------------------- threads

_THREAD_LIMIT: int | None = None
_LIMITER: Any = None  # the entered thread_setting, kept alive so the limits last the whole run


def limit_threads(n: int | None) -> None:
    """Limit every thread pool the benchmark may use to ``n`` threads, for the whole run.

    Covers BLAS and OpenMP pools loaded so far (threadpoolctl), torch's intra-op pool and
    Numba's parallel kernels. Import the libraries under test (torch in particular, which
    brings its own OpenMP) *before* calling this, or their pools are not seen. ``None``
    leaves everything at the libraries' defaults. The limit is recorded by
    :func:`environment`.
    """
    global _LIMITER, _THREAD_LIMIT
    if n is None:
        return
    # The same limits as a thread_setting block, entered and never left.
    limiter = thread_setting(n)
    limiter.__enter__()
    _LIMITER = limiter
    _THREAD_LIMIT = n


# Thread setting the code runs in: _OUTSIDE (no thread_setting active), None (defaults), n.
_OUTSIDE: Any = object()
_CURRENT_SETTING: Any = _OUTSIDE


def thread_label(n: int | None) -> str:
    """``"default"`` for the libraries' defaults, else the thread count as text."""
    return "default" if n is None else str(n)


def parse_thread_settings(text: str) -> list[int | None]:
    """``"default,1"`` -> ``[None, 1]``: the settings of :func:`thread_passes`, in order."""
    settings: list[int | None] = []
    for item in text.split(","):
        item = item.strip().lower()
        if item in ("default", "d", ""):
            value = None
        else:
            try:
                value = int(item)
            except ValueError:
                raise argparse.ArgumentTypeError(
                    f"thread settings are 'default' or positive integers, got {item!r}"
                ) from None
            if value < 1:
                raise argparse.ArgumentTypeError(f"thread counts must be >= 1, got {value}")
        if value not in settings:
            settings.append(value)
    return settings


@contextlib.contextmanager
def thread_setting(n: int | None) -> Any:
    """Run the ``with`` block with every thread pool at ``n`` threads, then restore them.

    ``None`` changes nothing (each library's default, as users run it). An integer limits
    every BLAS/OpenMP pool loaded so far (threadpoolctl: NumPy's and SciPy's OpenBLAS, torch's
    OpenMP/MKL), Numba's parallel kernels and torch's intra-op pool, all in this process, and
    puts each back as it was on exit. Import the libraries under test before entering, or
    their pools are not seen. Rows timed by :func:`measure` inside the block are labelled
    with :func:`thread_label` of ``n``.
    """
    global _CURRENT_SETTING
    previous_setting = _CURRENT_SETTING
    stack = contextlib.ExitStack()
    try:
        if n is not None:
            if n < 1:
                raise ValueError(f"threads must be >= 1, got {n}")
            _try_import("numpy")
            _try_import("scipy.linalg")
            tpc = _try_import("threadpoolctl")
            if tpc is None:
                raise ImportError("a thread limit needs threadpoolctl: pip install threadpoolctl")
            # Numba first: starting its threading layer may load an OpenMP library, which
            # threadpoolctl only limits if it is loaded when the limit is set.
            numba = _try_import("numba")
            if numba is not None:
                old_numba = numba.get_num_threads()
                numba.set_num_threads(min(n, numba.config.NUMBA_NUM_THREADS))
                stack.callback(numba.set_num_threads, old_numba)
            stack.enter_context(tpc.threadpool_limits(limits=n))
            torch = sys.modules.get("torch")
            if torch is not None:
                old_torch = torch.get_num_threads()
                torch.set_num_threads(n)
                stack.callback(torch.set_num_threads, old_torch)
        _CURRENT_SETTING = n
        yield
    finally:
        _CURRENT_SETTING = previous_setting
        stack.close()


def thread_passes(
    settings: Sequence[int | None], block: Callable[[], list[dict[str, Any]]]
) -> list[dict[str, Any]]:
    """Call ``block()`` once inside each :func:`thread_setting`; all rows, in order.

    Every row gets ``threads`` (its setting's label) if ``block`` did not set it, so tables can
    compare rows at the same setting (``print_table(..., group_by="threads")``).
    """
    rows: list[dict[str, Any]] = []
    for n in settings:
        with thread_setting(n):
            for row in block():
                row.setdefault("threads", thread_label(n))
                rows.append(row)
    return rows


def threadpool_snapshot() -> list[dict[str, Any]] | str:
    """``threadpoolctl.threadpool_info()`` now (every field), or why it is not available."""
    _try_import("numpy")
    _try_import("scipy.linalg")
    tpc = _try_import("threadpoolctl")
    if tpc is None:
        return "threadpoolctl not installed"
    return [dict(d) for d in tpc.threadpool_info()]


def openblas_warning(info: Any = None) -> str | None:
    """A warning when more than one OpenBLAS library is loaded, else ``None``.

    NumPy's and SciPy's wheels each bundle their own OpenBLAS, each with a thread pool whose
    idle workers busy-wait for a while after a call; code that alternates between the two
    makes the pools compete for the cores, which a single-thread run never shows.
    """
    if info is None:
        info = threadpool_snapshot()
    if not isinstance(info, list):
        return None
    libs = [d for d in info if d.get("internal_api") == "openblas"]
    if len(libs) < 2:
        return None
    where = "; ".join(
        f"{os.path.basename(str(d.get('filepath')))} {d.get('version') or ''} "
        f"({d.get('num_threads')} threads)"
        for d in libs
    )
    return (
        f"{len(libs)} OpenBLAS libraries are loaded ({where}): their thread pools can spin "
        "against each other at default threads; compare the default and one-thread rows"
    )


# --------------------------------------------------------------------------- arguments, JSON


def add_common_arguments(
    parser: argparse.ArgumentParser, *, repeat: int = 5, thread_passes: bool = False
) -> None:
    """``--quick``, ``--json PATH``, ``--repeat N``, ``--threads`` and ``--max-seconds S``.

    With ``thread_passes=True``, ``--threads`` is the list of settings every row runs at
    (default ``default,1``, parsed by :func:`parse_thread_settings`); otherwise it is one
    limit for the whole run (:func:`limit_threads`).
    """
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: a smoke run of the whole script"
    )
    parser.add_argument("--json", metavar="PATH", help="also write the rows as JSON to PATH")
    parser.add_argument(
        "--repeat", type=int, default=repeat, help=f"timed runs per row (default {repeat})"
    )
    if thread_passes:
        parser.add_argument(
            "--threads",
            type=parse_thread_settings,
            default=[None, 1],
            metavar="LIST",
            help="run every row at each of these thread settings, in one process: 'default' "
            "(the libraries' own) and/or thread counts for BLAS/OpenMP, torch and Numba "
            "(default: default,1)",
        )
    else:
        parser.add_argument(
            "--threads",
            type=int,
            default=None,
            help="limit BLAS/OpenMP, torch and Numba to N threads (default: libraries' defaults)",
        )
    parser.add_argument(
        "--max-seconds",
        type=float,
        default=20.0,
        help="stop repeating a row once its timed runs took this long (default 20)",
    )


def _jsonable(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_jsonable(v) for v in value]
    if isinstance(value, float):
        return value if math.isfinite(value) else str(value)
    if isinstance(value, (str, int, bool)) or value is None:
        return value
    # numpy scalars and anything else with an item() method, else its text
    item = getattr(value, "item", None)
    if callable(item):
        with contextlib.suppress(Exception):
            return _jsonable(item())
    return str(value)


def write_json(
    path: str | os.PathLike[str],
    rows: Sequence[dict[str, Any]],
    *,
    benchmark: str,
    env: dict[str, Any] | None = None,
    **meta: Any,
) -> None:
    """Write ``{"benchmark", "environment", "argv", **meta, "rows"}`` to ``path`` atomically.

    The JSON goes to a temporary file in the target's directory first and is moved into place
    with :func:`os.replace`, so a reader never sees a half-written file.
    """
    payload = {
        "benchmark": benchmark,
        "environment": env if env is not None else environment(),
        "argv": sys.argv,
        **meta,
        "rows": list(rows),
    }
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=".tmp-", suffix=".json", dir=directory)
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_jsonable(payload), f, indent=2)
            f.write("\n")
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def load_cupy() -> tuple[Any, str | None]:
    """``(cupy, None)`` when CuPy imports and sees a GPU, else ``(None, reason)``.

    The GPU benchmarks call this first so that, without a device, they say why and stop
    instead of failing on import.
    """
    try:
        import cupy as cp
    except Exception as exc:
        return None, f"CuPy does not import ({type(exc).__name__}: {exc})"
    try:
        n = cp.cuda.runtime.getDeviceCount()
    except Exception as exc:
        return None, f"CuPy sees no CUDA device ({type(exc).__name__}: {exc})"
    if n < 1:
        return None, "CuPy sees no CUDA device"
    return cp, None


def load_torch_cuda() -> tuple[Any, str | None]:
    """``(torch, None)`` when a CUDA build of torch sees a GPU, else ``(None, reason)``."""
    try:
        import torch
    except Exception as exc:
        return None, f"torch does not import ({type(exc).__name__}: {exc})"
    if not torch.cuda.is_available():
        return None, "torch has no CUDA support here"
    return torch, None
