#!/usr/bin/env python3
"""Benchmark the lab deploy: bare containers to a deployed estate, then a no-op redeploy.

In one run, with the machine's used memory (MemTotal - MemAvailable) sampled every second:
`hermesctl lab down`, `lab up` (bare containers), `deploy --lab` (the whole site.yml), and
`deploy --lab` again, which must change nothing. Prints a Markdown table: wall time and the
"changed" count of each step, the peak used memory over the run and the used memory with the
deployed lab idle. The lab is left up and deployed.

    scripts/benchmark-deploy.py                               # the lab estate
    scripts/benchmark-deploy.py --estate inventory/estates/lab.yml
"""

from __future__ import annotations

import re
import subprocess
import sys
import threading
import time
from pathlib import Path

from hermes.lab.benchmark import benchmark_parser

ROOT = Path(__file__).resolve().parents[1]
HERMESCTL = Path(sys.executable).with_name("hermesctl")
# deploy's summary line: "<playbook> on <estate>: successful, <n> changed; ...".
SUMMARY = re.compile(r": (successful|failed), (\d+) changed;")


def used_memory() -> int:
    """Bytes in use on the machine: what the kernel could not hand out without reclaiming."""
    fields = dict(line.split(":", 1) for line in Path("/proc/meminfo").read_text().splitlines())
    return (int(fields["MemTotal"].split()[0]) - int(fields["MemAvailable"].split()[0])) * 1024


class MemorySampler(threading.Thread):
    def __init__(self) -> None:
        super().__init__(daemon=True)
        self.peak = used_memory()
        self._done = threading.Event()

    def run(self) -> None:
        while not self._done.wait(1.0):
            self.peak = max(self.peak, used_memory())

    def stop(self) -> None:
        self._done.set()
        self.join()


def step(estate: Path, *args: str) -> tuple[float, str]:
    """Wall seconds and output of one hermesctl command; exits with its code if it fails."""
    start = time.perf_counter()
    done = subprocess.run([str(HERMESCTL), *args, "--estate", str(estate)], capture_output=True, text=True, check=False)
    elapsed = time.perf_counter() - start
    if done.returncode != 0:
        print(done.stdout[-4000:], done.stderr[-4000:], sep="\n", file=sys.stderr)
        raise SystemExit(done.returncode)
    return elapsed, done.stdout


def changed(output: str) -> str:
    match = SUMMARY.search(output)
    return match.group(2) if match else "?"


def main() -> int:
    parser = benchmark_parser(__doc__)
    parser.add_argument("--estate", type=Path, default=ROOT / "inventory" / "estates" / "lab.yml")
    args = parser.parse_args()
    estate: Path = args.estate

    step(estate, "lab", "down")
    before = used_memory()
    sampler = MemorySampler()
    sampler.start()
    up, _ = step(estate, "lab", "up")
    first, first_out = step(estate, "deploy", "--lab")
    second, second_out = step(estate, "deploy", "--lab")
    sampler.stop()
    time.sleep(10)  # let the deployed services settle before the idle figure
    idle = used_memory()

    gib = 1024**3
    print("| step | wall time | changed |")
    print("|---|---|---|")
    print(f"| `lab up` (bare containers) | {up:.0f} s | |")
    print(f"| `deploy --lab`, first | {first:.0f} s ({first / 60:.1f} min) | {changed(first_out)} |")
    print(f"| `deploy --lab`, again (no-op) | {second:.0f} s ({second / 60:.1f} min) | {changed(second_out)} |")
    print(
        f"\nUsed memory: {before / gib:.2f} GiB before `lab up`, peak {sampler.peak / gib:.2f} GiB during the run, "
        f"{idle / gib:.2f} GiB with the lab deployed and idle."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
