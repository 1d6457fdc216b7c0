#!/usr/bin/env python3
"""Benchmark the lab deploy: bare containers to a deployed estate, then a no-op redeploy.

In one run, with the machine's used memory (MemTotal - MemAvailable) sampled every second:
`hermesctl lab down`, `lab up` (bare containers), `deploy --lab` (the whole site.yml), and
`deploy --lab` again, which must change nothing. Prints a Markdown table: wall time and the
"changed" count of each step, the peak used memory over the run and the used memory with the
deployed lab idle. The lab is left up and deployed.

From the first deploy's own record (ansible-runner's job events) it also reports the floor: the
wall time of the package installs alone (each apt task from its first host's start to its last
host's end), and the deploy's ratio to it. From each run's record, the tasks that took longest.

    scripts/benchmark-deploy.py                               # the lab estate
    scripts/benchmark-deploy.py --estate inventory/estates/lab.yml
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import threading
import time
from collections import defaultdict
from datetime import datetime
from pathlib import Path

from hermes.lab.benchmark import benchmark_parser
from hermes.loader import load_estate
from hermes.paths import estate_home, runs_dir

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


# The modules that install packages: the floor a deploy cannot go below.
PACKAGE_ACTIONS = {"ansible.builtin.apt", "ansible.builtin.package"}


def newest_record(estate: Path) -> Path:
    """The artifacts directory of the estate's latest site.yml run."""
    runs = runs_dir(load_estate(estate).estate.name, estate_home(estate.resolve())) / "site" / "artifacts"
    return max(runs.iterdir(), key=lambda record: record.stat().st_mtime)


def task_walls(record: Path) -> dict[tuple[str, str, str], float]:
    """Wall seconds of each task of a run, by (play, task, action): first start to last end over its hosts."""
    spans: dict[tuple[str, str, str], list[datetime]] = defaultdict(list)
    for path in (record / "job_events").glob("*.json"):
        data = json.loads(path.read_text()).get("event_data") or {}
        if "start" in data and "end" in data and "task" in data:
            key = (str(data.get("play", "")), str(data["task"]), str(data.get("resolved_action", "")))
            spans[key] += [datetime.fromisoformat(data["start"]), datetime.fromisoformat(data["end"])]
    return {key: (max(times) - min(times)).total_seconds() for key, times in spans.items()}


def slowest(walls: dict[tuple[str, str, str], float], count: int = 8) -> str:
    rows = sorted(walls.items(), key=lambda item: -item[1])[:count]
    return "\n".join(f"| {play} | {task} | {seconds:.1f} s |" for (play, task, _), seconds in rows)


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
    first_walls = task_walls(newest_record(estate))
    second, second_out = step(estate, "deploy", "--lab")
    second_walls = task_walls(newest_record(estate))
    sampler.stop()
    time.sleep(10)  # let the deployed services settle before the idle figure
    idle = used_memory()

    gib = 1024**3
    print("| step | wall time | changed |")
    print("|---|---|---|")
    print(f"| `lab up` (bare containers) | {up:.0f} s | |")
    print(f"| `deploy --lab`, first | {first:.0f} s ({first / 60:.1f} min) | {changed(first_out)} |")
    print(f"| `deploy --lab`, again (no-op) | {second:.0f} s ({second / 60:.1f} min) | {changed(second_out)} |")
    floor = sum(seconds for (_, _, action), seconds in first_walls.items() if action in PACKAGE_ACTIONS)
    print(f"\nPackage installs alone in the first deploy: {floor:.0f} s; the deploy is {first / floor:.2f}x that floor.")
    print("\nSlowest tasks of the first deploy:\n\n| play | task | wall |\n|---|---|---|")
    print(slowest(first_walls))
    print("\nSlowest tasks of the no-op deploy:\n\n| play | task | wall |\n|---|---|---|")
    print(slowest(second_walls))
    print(
        f"\nUsed memory: {before / gib:.2f} GiB before `lab up`, peak {sampler.peak / gib:.2f} GiB during the run, "
        f"{idle / gib:.2f} GiB with the lab deployed and idle."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
