#!/usr/bin/env python3
"""Benchmark `hermesctl render`: whole-process time and peak memory at 1x, 10x and 100x Hermes.

For each scale it runs the real CLI in a fresh process (best of --runs) and reads
that process's peak RSS from wait4(); then, in this process, it times serializing
the same output alone (the rendered files' data dumped and written again), and
reports render time / serialization time. Results go to stdout as a Markdown table.

    scripts/benchmark-render.py                 # 1x, 10x, 100x
    scripts/benchmark-render.py --scales 1 10   # quicker
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import yaml

from hermes.render.yamlfile import dump

ROOT = Path(__file__).resolve().parents[1]
HERMESCTL = Path(sys.executable).with_name("hermesctl")


def _generator():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("generate", ROOT / "scripts" / "generate-synthetic-estate.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def run_render(estate: Path, out: Path) -> tuple[float, int]:
    """Wall seconds and peak RSS bytes of one `hermesctl render` process."""
    start = time.perf_counter()
    process = subprocess.Popen([str(HERMESCTL), "render", "-e", str(estate), "-o", str(out)], stdout=subprocess.DEVNULL)
    _, status, usage = os.wait4(process.pid, 0)
    elapsed = time.perf_counter() - start
    code = os.waitstatus_to_exitcode(status)
    if code != 0:
        # hermesctl has reported why; keep its exit code (a signal's as the shell gives it).
        print(f"render of {estate} failed", file=sys.stderr)
        raise SystemExit(code if code > 0 else 128 - code)
    return elapsed, usage.ru_maxrss * 1024


def serialize_alone(rendered: Path) -> float:
    """Seconds to dump and write the rendered files' data again, with no model work."""
    loader = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
    documents = {p: yaml.load(p.read_text(), Loader=loader) for p in sorted(rendered.rglob("*.yml"))}  # noqa: S506
    target = Path(tempfile.mkdtemp(prefix="hermes-serialize-"))
    start = time.perf_counter()
    for path, data in documents.items():
        text = dump(data)
        out = target / path.relative_to(rendered)
        out.parent.mkdir(parents=True, exist_ok=True)
        out.write_text(text)
    elapsed = time.perf_counter() - start
    shutil.rmtree(target)
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", type=int, nargs="+", default=[1, 10, 100])
    parser.add_argument("--runs", type=int, default=3, help="renders per scale; the best is reported")
    args = parser.parse_args()
    generate = _generator()
    work = Path(tempfile.mkdtemp(prefix="hermes-bench-"))
    rows, base = [], None
    try:
        for scale in args.scales:
            estate = ROOT / "inventory" / "estates" / "hermes-2007.yml" if scale == 1 else generate.write(scale, work / "estates")
            out = work / f"rendered-x{scale}"
            results = [run_render(estate, out) for _ in range(args.runs)]
            seconds, peak = min(r[0] for r in results), max(r[1] for r in results)
            base = base if base is not None else seconds
            serialize = serialize_alone(out)
            accounts = sum(1 for _ in (estate.parent / f"{estate.stem}.accounts").open()) - 1
            rows.append(
                f"| {scale}x | {accounts:,} | {seconds:.3f} s | {seconds / base:.1f}x | {peak / 2**20:,.0f} MiB "
                f"| {serialize:.3f} s | {seconds / serialize:.1f} |"
            )
            print(rows[-1], file=sys.stderr, flush=True)
    finally:
        shutil.rmtree(work)
    print("| scale | accounts | render (whole process) | vs 1x | peak RSS | serialize alone | render / serialize |")
    print("|---|---|---|---|---|---|---|")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
