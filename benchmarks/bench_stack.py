"""Time-to-ready of the stack, per service and whole, for each provider.

Run: ``.venv/bin/python benchmarks/bench_stack.py [--provider local containers] [--repeat 3]``

Measures what an engineer waits for after ``loadgate stack up`` once the
one-time work is done: the OSRM map is preprocessed and the images are built
before the first timed start (a warm-up start that is not counted). Prints a
Markdown table (median of the repeats) for RESULTS.md. Absolute times on a
shared 2-core machine are noisy; compare providers measured in the same run.
"""

from __future__ import annotations

import argparse
import statistics
import time

from stack.config import StackConfig
from stack.engine import docker_problem
from stack.stack import Stack


def one_start(provider: str) -> dict[str, float]:
    config = StackConfig(provider=provider, with_replica=True)  # type: ignore[arg-type]
    started = time.monotonic()
    with Stack(config) as stack:
        times = {name: s.ready_after_s or 0.0 for name, s in stack.services.items()}
        times["whole stack"] = time.monotonic() - started
    return times


def measure(provider: str, repeat: int) -> dict[str, float]:
    one_start(provider)  # warm-up: map preprocessing, image builds
    runs = [one_start(provider) for _ in range(repeat)]
    return {name: statistics.median(run[name] for run in runs) for name in runs[0]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--provider", nargs="+", default=["local", "containers"])
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    results = {}
    for provider in args.provider:
        if provider == "containers" and docker_problem() is not None:
            print(f"skipping containers: no Docker engine ({docker_problem()})")
            continue
        results[provider] = measure(provider, args.repeat)
    names = list(next(iter(results.values())))
    print(f"\nmedian of {args.repeat} starts, seconds (each service from its own start)\n")
    print("| service | " + " | ".join(results) + " |")
    print("|---|" + "---:|" * len(results))
    for name in names:
        print(f"| {name} | " + " | ".join(f"{results[p][name]:.2f}" for p in results) + " |")


if __name__ == "__main__":
    main()
