"""Run the benchmarks of issue 6 and print the table (also written as JSON).

    python -m benchmarks.run                      # the full set: 100k and 1M SKUs, 3 runs each
    python -m benchmarks.run --size 10000 --runs 1 --full-size 2000 --orders 500   # a quick look

No-op runs happen at 100k SKUs (when --size is larger) and at --size; the incremental
run at --size; the full push at --full-size; orders in a workspace of their own, against
a store allowing --orders-limit requests/s (requests per order are shown beside it).
Workspaces are kept under --workdir and reused while fresh (see workspace.py).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import sys
from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

from benchmarks import scenarios
from benchmarks.scenarios import Conditions, Figures
from benchmarks.workspace import now_utc

SMALL = 100_000
ORDERS_CATALOGUE = 10_000


@dataclass(frozen=True)
class Target:
    scenario: str
    label: str
    metric: str  # a key of the scenario's figures (or of the derived ones)
    unit: str
    goal: str
    met: Callable[[float], bool]


def targets(size: int) -> list[Target]:
    small, big = f"noop-{min(size, SMALL)}", f"noop-{size}"
    rows = [
        Target(small, f"no-op run-all, 2 channels, {min(size, SMALL):,} SKUs", "wall_s", "s", "< 2", lambda v: v < 2),
        Target(small, "  writes sent", "writes", "", "0", lambda v: v == 0),
    ]
    if size > SMALL:
        rows += [
            Target(big, f"no-op run-all, 2 channels, {size:,} SKUs", "wall_s", "s", "< 10", lambda v: v < 10),
            Target(big, "  peak RSS", "peak_rss_mb", "MB", "< 250", lambda v: v < 250),
            Target(big, "  writes sent", "writes", "", "0", lambda v: v == 0),
        ]
    return rows + [
        Target("incremental", f"100 SKUs changed among {size:,}: commit to last accepted write", "to_last_accepted_s",
               "s", "< 3", lambda v: v < 3),
        Target("incremental", "  writes sent / expected", "writes_vs_expected", "", "1.0", lambda v: v == 1),
        Target("full-push", "full push-stock: share of the limit", "share_of_limit", "", ">= 0.90", lambda v: v >= 0.9),
        Target("full-push", "  vs the naive loop", "vs_naive", "x", ">= 8", lambda v: v >= 8),
        Target("full-push", "client CPU per request", "cpu_ms_per_request", "ms", "<= 1", lambda v: v <= 1),
        Target("orders", "orders imported per second", "orders_per_s", "/s", ">= 200", lambda v: v >= 200),
        Target("orders", "  requests per order (the store allows --orders-limit/s)", "requests_per_order", "",
               "shown", lambda v: True),
        Target("orders", "  peak RSS (first run / last run: flat)", "peak_rss_mb", "MB", "flat", lambda v: True),
    ]


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    conditions = Conditions(args.latency_ms / 1000, args.limit, args.client_share, args.concurrency)
    workdir = Path(args.workdir)
    started = now_utc()
    load_before = os.getloadavg()
    results: dict[str, list[Figures]] = {}
    wanted = set(args.scenarios)

    def noop_at(size: int) -> None:
        with scenarios.lab(workdir, size, conditions, rebuild=args.rebuild) as here:
            results[f"noop-{size}"] = scenarios.noop(here, args.runs)
            if size == args.size and "incremental" in wanted:
                results["incremental"] = scenarios.incremental(here, args.runs)
                results["noop-after-incremental"] = scenarios.noop(here, 1)

    if "noop" in wanted or "incremental" in wanted:
        for size in sorted({min(args.size, SMALL), args.size}):
            noop_at(size)
    if "full" in wanted:
        with scenarios.lab(workdir, args.full_size, conditions, rebuild=args.rebuild) as here:
            results["naive"] = scenarios.naive(here, args.runs, min(args.naive_count, args.full_size))
            results["full-push"] = scenarios.full_push(here, args.runs)
    if "orders" in wanted:
        orders_conditions = replace(conditions, limit_per_s=args.orders_limit)
        with scenarios.lab(workdir / "orders", ORDERS_CATALOGUE, orders_conditions, rebuild=True) as here:
            results["orders"] = scenarios.orders(here, args.runs, args.orders)

    summary = _summaries(results)
    report = {
        "command": " ".join(["python -m benchmarks.run", *(argv if argv is not None else sys.argv[1:])]),
        "started_at": started.isoformat(), "finished_at": now_utc().isoformat(),
        "machine": _machine(load_before), "conditions": asdict(conditions) | {"client_rate": conditions.client_rate},
        "runs": results, "summary": summary,
        "targets": [_judge(target, summary) for target in targets(args.size) if target.scenario in summary],
    }
    Path(args.json).write_text(json.dumps(report, indent=2, default=str))
    print(_table(report))
    return 0


def _summaries(results: dict[str, list[Figures]]) -> dict[str, dict[str, dict[str, float]]]:
    """Per scenario and metric: median, min and max over the runs."""
    derived = {name: [dict(run) for run in runs] for name, runs in results.items()}
    for run in derived.get("incremental", []):
        run["writes_vs_expected"] = run["writes"] / run["expected_writes"]
    naive_rate = statistics.median(run["requests_per_s"] for run in results.get("naive", [])) if "naive" in results else None
    for run in derived.get("full-push", []):
        run["cpu_ms_per_request"] = run["cpu_s_per_1000_requests"]
        if naive_rate:
            run["vs_naive"] = run["requests_per_s"] / naive_rate
    return {
        name: {
            metric: {"median": statistics.median(values), "min": min(values), "max": max(values)}
            for metric in runs[0]
            if all(isinstance(run.get(metric), int | float) for run in runs)
            for values in [[run[metric] for run in runs]]
        }
        for name, runs in derived.items()
    }


def _judge(target: Target, summary: dict[str, dict[str, dict[str, float]]]) -> dict[str, Any]:
    figures = summary[target.scenario][target.metric]
    return {"label": target.label, "unit": target.unit, "goal": target.goal, **figures, "met": target.met(figures["median"])}


def _table(report: dict[str, Any]) -> str:
    lines = [
        "| scenario | target | median | min | max | met |",
        "|---|---|---|---|---|---|",
    ]
    for row in report["targets"]:
        unit = f" {row['unit']}" if row["unit"] else ""
        cells = [_number(row[key]) + unit for key in ("median", "min", "max")]
        lines.append(f"| {row['label']} | {row['goal']}{unit} | {' | '.join(cells)} | {'yes' if row['met'] else '**no**'} |")
    machine = report["machine"]
    lines.append("")
    lines.append(f"{machine['cpu']}, {machine['cpus']} CPUs, {machine['memory_gb']} GB; load average "
                 f"{machine['load_before'][0]:.1f} before, {machine['load_after'][0]:.1f} after")
    return "\n".join(lines)


def _number(value: float) -> str:
    if value == int(value) and abs(value) >= 10:
        return f"{int(value):,}"
    return f"{value:.3g}" if abs(value) < 100 else f"{value:,.0f}"


def _machine(load_before: tuple[float, float, float]) -> dict[str, Any]:
    cpu = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                if line.startswith("model name")), platform.processor())
    memory_kb = next(int(line.split()[1]) for line in Path("/proc/meminfo").read_text().splitlines()
                     if line.startswith("MemTotal"))
    return {
        "cpu": cpu, "cpus": os.cpu_count(), "memory_gb": round(memory_kb / 1024 / 1024, 1),
        "python": platform.python_version(), "load_before": load_before, "load_after": os.getloadavg(),
    }


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.run", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--size", type=int, default=1_000_000, help="the largest catalogue (SKUs)")
    parser.add_argument("--full-size", type=int, default=SMALL, help="SKUs the full push sends")
    parser.add_argument("--naive-count", type=int, default=2000, help="SKUs the naive loop sends (it is slow)")
    parser.add_argument("--orders", type=int, default=10_000, help="orders to import")
    parser.add_argument("--orders-limit", type=float, default=1000,
                        help="the store's limit for the orders scenario: it measures syncctl's own cost (requests/s)")
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--latency-ms", type=float, default=20)
    parser.add_argument("--limit", type=float, default=500, help="the stores' rate limit, requests/s")
    parser.add_argument("--client-share", type=float, default=0.96, help="syncctl's rate_per_s as a share of it")
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--scenarios", nargs="+", default=["noop", "incremental", "full", "orders"],
                        choices=["noop", "incremental", "full", "orders"])
    parser.add_argument("--workdir", default="/tmp/syncctl-benchmarks")
    parser.add_argument("--rebuild", action="store_true", help="rebuild the workspaces even if fresh")
    parser.add_argument("--json", default="benchmarks/results.json")
    return parser


if __name__ == "__main__":
    raise SystemExit(main())
