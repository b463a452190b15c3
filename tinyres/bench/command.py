"""The `tinyres bench` command (and `python -m tinyres.bench`): its options, the race, the table."""
import argparse
import contextlib
import datetime
import json
import os
import platform
import statistics
import sys

import numpy

from tinyres.kernels.blas import blas_description

from tinyres.bench.profile import (conv_calls, conv_gemm_flops, conv_gemm_time, profile_step,
                                   square_gemm_flops_per_second)
from tinyres.bench.race import measure_memory, probe_memory, race
from tinyres.bench.options import PATHS, add_arguments
from tinyres.bench.runners import TinyresRunner, available_paths, make_runner, set_threads
from tinyres.bench.twins import time_kernels


# ----------------------------------------------------------------------------------------------
# The report
# ----------------------------------------------------------------------------------------------
def cpu_model():
    """The CPU as /proc/cpuinfo names it, with its family and model numbers and widest vector
    instructions: the model name alone ("AMD EPYC") does not tell one machine kind from the next,
    and the kinds differ in how much faster PyTorch is than OpenBLAS + Numba."""
    fields = {}
    try:
        with open("/proc/cpuinfo") as info:
            for line in info:
                key, _, value = line.partition(":")
                fields.setdefault(key.strip(), value.strip())
    except OSError:
        return platform.processor() or platform.machine()
    flags = fields.get("flags", "").split()
    vectors = [name for flag, name in (("avx512f", "AVX-512"), ("amx_tile", "AMX"))
               if flag in flags] or (["AVX2"] if "avx2" in flags else [])
    family = ([f"family {fields['cpu family']} model {fields.get('model', '?')}"]
              if "cpu family" in fields else [])
    details = ", ".join(family + vectors)
    name = fields.get("model name") or platform.processor() or platform.machine()
    return f"{name} ({details})" if details else name


def libraries():
    """The libraries whose speed a race measures: NumPy's BLAS (and its kernel), Numba, and
    PyTorch where installed."""
    parts = [f"NumPy {numpy.__version__} on {blas_description()}"]
    with contextlib.suppress(ImportError):
        import numba
        parts.append(f"Numba {numba.__version__}")
    if "torch" in sys.modules:
        parts.append(f"PyTorch {sys.modules['torch'].__version__}")
    return "; ".join(parts)


def _ms(seconds):
    return f"{seconds * 1000:8.1f} ms"


def format_table(batch_size, train, evals, memory, baseline):
    """The results table: times, ratio to the `baseline` path (PyTorch), images/s, memory."""
    lines = [f"{'path':<11} {'train step':>11} {'ratio':>6} {'img/s':>7}   {'eval fwd':>11} "
             f"{'ratio':>6} {'img/s':>7}   {'step memory':>11} {'ratio':>6} {'peak RSS':>9}"]
    base_train = statistics.median(train[baseline]) if baseline in train else None
    base_eval = statistics.median(evals[baseline]) if baseline in evals else None
    base_mem = memory.get(baseline)
    for path in train:
        t, e = statistics.median(train[path]), statistics.median(evals[path])
        tr = f"{t / base_train:5.2f}x" if base_train else "     -"
        er = f"{e / base_eval:5.2f}x" if base_eval else "     -"
        mem = memory.get(path)
        if mem:
            step_mb = mem["peak_mb"] - mem["before_mb"]
            mr = (f"{step_mb / (base_mem['peak_mb'] - base_mem['before_mb']):5.2f}x"
                  if base_mem else "     -")
            mem_text = f"{step_mb:8.0f} MB {mr} {mem['peak_mb']:6.0f} MB"
        else:
            mem_text = f"{'-':>11} {'-':>6} {'-':>9}"
        lines.append(f"{path:<11} {_ms(t):>11} {tr:>6} {batch_size / t:7.0f}   {_ms(e):>11} "
                     f"{er:>6} {batch_size / e:7.0f}   {mem_text}")
    return "\n".join(lines)


def run(args):
    """The `tinyres bench` command; returns an exit status."""
    found, notes = available_paths()
    paths = [p for p in (args.paths or found) if p in found]
    for p in args.paths or ():
        if p not in found:
            print(f"skipping {p}: {notes.get(p, 'not available here')}")
    if args.kernels:
        return _run_kernels(args, found)
    threads = args.threads or os.cpu_count()
    print(f"tinyres bench: {args.model}, batch {args.batch_size}, {threads} threads, "
          f"{args.steps} interleaved steps after {args.warmup} warm-up; "
          f"{datetime.date.today().isoformat()}, {cpu_model()}, {os.cpu_count()} CPUs")
    for path, note in notes.items():
        if path in PATHS and path not in found:
            print(f"  (no {path}: {note})")
    set_threads(threads)
    runners = [make_runner(p, args.model, args.batch_size) for p in paths]
    set_threads(threads)                                   # again: torch's pool exists now
    print(f"  {libraries()}")
    if args.profile:
        floor = None
        for runner in runners:
            if isinstance(runner, TinyresRunner):
                print(f"\nper-op breakdown of one training step, path '{runner.name}' "
                      f"(medians of {args.steps} steps):")
                rows = profile_step(runner, args.steps)
                total = rows[-1][1]
                for label, seconds in rows:
                    print(f"  {label:<40} {_ms(seconds)} {100 * seconds / total:6.1f} %")
                if runner.kernels == "fast" and runner.device == "cpu":
                    calls = conv_calls(runner)
                    floor = conv_gemm_time(calls, args.steps)
                    print(f"  {'(the conv GEMMs alone, same shapes)':<40} {_ms(floor)} "
                          f"{100 * floor / total:6.1f} %   the floor of the fast convs: their "
                          "BLAS products only, as the kernels chunk and share them")
                    print(f"  (those GEMMs run at {conv_gemm_flops(calls) / floor / 1e9:.0f} "
                          f"GFLOP/s; BLAS on square 1024 x 1024 products: "
                          f"{square_gemm_flops_per_second() / 1e9:.0f} GFLOP/s)")
        others = [r for r in runners if not isinstance(r, TinyresRunner)]
        for name, times in race(others, "train_step", args.steps, args.warmup).items():
            step = statistics.median(times)
            print(f"\n{name} whole training step, same run: {_ms(step).strip()}"
                  + (f"; the fast path's conv GEMMs alone take {floor / step:.0%} of it"
                     if floor else ""))
        return 0
    load_before = _load_average()
    train = race(runners, "train_step", args.steps, args.warmup)
    evals = race(runners, "eval_forward", args.steps, args.warmup)
    load_after = _load_average()
    memory = {}
    if not args.no_memory:
        for p in paths:
            if not p.endswith("cuda") and p != "cupy":
                memory[p] = measure_memory(p, args.model, args.batch_size, threads)
    print()
    print(format_table(args.batch_size, train, evals, memory,
                       "torch" if "torch" in paths else None))
    if memory:
        method = next((m["method"] for m in memory.values() if m), "-")
        print(f"\nstep memory: {method}, over 3 training steps after 2 warm-up steps and "
              "malloc_trim, one fresh process per path; peak RSS: the whole process's "
              "high-water mark during those steps.")
    print(f"load average (1 min) before / after the race: {load_before} / {load_after} "
          f"on {os.cpu_count()} CPUs (other processes slow down multi-threaded paths unevenly: "
          "compare runs made on an otherwise idle machine)")
    if "torch" not in found:
        print("\n(no PyTorch: install torch to get the ratio columns)")
    return 0


def _load_average():
    try:
        return f"{os.getloadavg()[0]:.2f}"
    except (OSError, AttributeError):
        return "-"


def _run_kernels(args, found):
    devices = ["cpu"] + (["cuda"] if "cupy" in found else [])
    threads = args.threads or os.cpu_count()
    set_threads(threads)
    for device in devices:
        kind = "GPU kernels (tinyres.kernels.gpu) vs the references on CuPy built-ins" \
            if device == "cuda" else "CPU kernels (tinyres.kernels.cpu) vs the NumPy references"
        if device == "cpu" and "fast" not in found:
            print("no CPU kernels: Numba is not installed")
            continue
        print(f"{kind}, ResNet-20 first-stage shapes, batch {args.batch_size}, {threads} threads:")
        print(f"  {'twin':<32} {'reference':>11} {'kernel':>11} {'speed-up':>9}")
        for name, reference, kernel in time_kernels(device, args.batch_size):
            print(f"  {name:<32} {_ms(reference)} {_ms(kernel)} {reference / kernel:8.1f}x")
    if "cupy" not in found:
        print("\n(no GPU: the GPU kernels of tinyres.kernels.gpu are timed only where CuPy sees a "
              "GPU)")
    return 0


def main(argv=None):
    parser = argparse.ArgumentParser(prog="python -m tinyres.bench", description=__doc__.split(
        "\n")[0])
    add_arguments(parser)
    args = parser.parse_args(argv)
    if args.probe_memory:
        print(json.dumps(probe_memory(args.probe_memory, args.model, args.batch_size,
                                      args.threads or os.cpu_count())))
        return 0
    return run(args)

