#!/usr/bin/env python3
"""The statistics and report of scripts/bench-redis.sh (make bench-redis).

    bench-redis-stats.py RESULTS hardened-vs-stock|plain-vs-tls --rounds N --target 0.95 --tests SET,GET,...

RESULTS is the benchmark's results.csv, one line per run and test:
variant,round,test,requests_per_second,server_cpu_us_per_request. Prints, for
one comparison, the median of the rounds per variant and test, each variant's
ratio to the base in throughput terms (>1 = faster than the base: requests/s
variant/base, CPU per request base/variant) with their geometric mean, every
run's requests/s, the largest run-to-run spread and, for hardened vs stock, the
ratio per round and the verdicts against the target. Standard library only.
"""

from __future__ import annotations

import argparse
import csv
import math
import statistics
import sys
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

RPS, CPU = "rps", "cpu"  # the two measured columns


@dataclass(frozen=True)
class Run:
    """One test of one variant in one round."""

    variant: str
    round: int
    test: str
    rps: float
    cpu: float

    def value(self, column: str) -> float:
        return self.rps if column == RPS else self.cpu


@dataclass(frozen=True)
class Table:
    lines: list[str]
    geomeans: list[str]  # per variant, "%.3f"
    below: list[str]  # "TEST ratio" where the first variant's ratio is under the target


def load(path: Path) -> list[Run]:
    with path.open(newline="") as f:
        return [Run(v, int(r), t, float(rps), float(cpu)) for v, r, t, rps, cpu in csv.reader(f)]


def values(runs: Iterable[Run], variant: str, test: str, column: str) -> list[float]:
    found = [run.value(column) for run in runs if run.variant == variant and run.test == test]
    if not found:
        raise ValueError(f"no results for {variant} {test}")
    return found


def ratio(value: float, base: float, column: str) -> str:
    """The variant's ratio to the base in throughput terms, as printed ("%.3f")."""
    return f"{value / base if column == RPS else base / value:.3f}"


def table(
    runs: Sequence[Run], column: str, base: str, variants: Sequence[str], tests: Sequence[str], target: float
) -> Table:
    dec = 0 if column == RPS else 2
    header = f"{'test':<7} {base:>12}" + "".join(f" {v:>15} {'ratio':>7}" for v in variants)
    lines, below = [header], []
    logs = [0.0] * len(variants)
    for test in tests:
        b = statistics.median(values(runs, base, test, column))
        line = f"{test:<7} {b:12.{dec}f}"
        for i, variant in enumerate(variants):
            m = statistics.median(values(runs, variant, test, column))
            r = ratio(m, b, column)
            line += f" {m:15.{dec}f} {r:>7}"
            logs[i] += math.log(float(r))
            if i == 0 and float(r) < target:
                below.append(f"{test} {r}")
        lines.append(line)
    geomeans = [f"{math.exp(s / len(tests)):.3f}" for s in logs]
    lines.append(f"{'geomean':<7} {'':>12}" + "".join(f" {'':>15} {g:>7}" for g in geomeans))
    return Table(lines, geomeans, below)


def raw(runs: Sequence[Run], variants: Sequence[str], tests: Sequence[str], rounds: int) -> list[str]:
    """requests/s of every run, in round order."""
    lines = [f"requests/s of every run, rounds 1..{rounds}:"]
    for test in tests:
        for variant in variants:
            mine = sorted((run for run in runs if run.variant == variant and run.test == test), key=lambda r: r.round)
            lines.append(f"  {test:<6} {variant:<15}" + "".join(f" {run.rps:7.0f}" for run in mine))
    return lines


def spread(runs: Sequence[Run], variants: Sequence[str]) -> str:
    """The largest run-to-run spread (max/min - 1) of one variant/test, in requests/s."""
    lo: dict[str, float] = {}
    hi: dict[str, float] = {}
    for run in runs:
        if run.variant in variants:
            key = f"{run.variant},{run.test}"
            lo[key] = min(lo.get(key, run.rps), run.rps)
            hi[key] = max(hi.get(key, run.rps), run.rps)
    worst, which = 0.0, ""
    for key, low in lo.items():
        s = hi[key] / low - 1
        if s > worst:
            worst, which = s, key
    return f"{worst * 100:.0f}% ({which})"


def round_ratios(runs: Sequence[Run], a: str, b: str) -> list[str]:
    """Per round, the geometric mean over the tests of a/b in requests/s ("%.2f")."""
    x = {(run.round, run.test): run.rps for run in runs if run.variant == a}
    y = {(run.round, run.test): run.rps for run in runs if run.variant == b}
    logs: dict[int, list[float]] = {}
    for key, value in x.items():
        if key in y:
            logs.setdefault(key[0], []).append(math.log(value / y[key]))
    out = []
    r = 1
    while r in logs:
        out.append(f"{math.exp(sum(logs[r]) / len(logs[r])):.2f}")
        r += 1
    return out


def count_below(ratios: Iterable[str], target: float) -> int:
    return sum(float(r) < target for r in ratios)


def verdict(what: str, geomean: str, below: Sequence[str], target: str, tests: int) -> str:
    if not below:
        return f"VERDICT ({what}): hardened >= {target} x stock: MET on every test (geomean {geomean})"
    return (
        f"VERDICT ({what}): hardened >= {target} x stock: MISSED on {len(below)}/{tests} tests "
        f"({' '.join(below)}; geomean {geomean})"
    )


def hardened_vs_stock(runs: Sequence[Run], tests: Sequence[str], rounds: int, target_text: str) -> list[str]:
    target = float(target_text)
    variants = ["hardened", "hardened-noaof"]
    rps = table(runs, RPS, "stock", variants, tests, target)
    cpu = table(runs, CPU, "stock", variants, tests, target)
    rr = round_ratios(runs, "hardened", "stock")
    rn = round_ratios(runs, "hardened-noaof", "stock")
    nb = count_below(rr, target)
    out = [
        f"requests/s (median of {rounds}; ratio = variant / stock):",
        *rps.lines,
        "",
        "server CPU us per request (median; ratio = stock / variant, so in throughput terms too):",
        *cpu.lines,
        "",
        "hardened-noaof is the hardened process with AOF switched off live: its ratio is what ACL",
        "auth/checks and the rest of the role's config cost; the gap to the hardened ratio is AOF.",
        "",
        *raw(runs, ["stock", *variants], tests, rounds),
        f"largest run-to-run spread of one variant/test: {spread(runs, ['stock', *variants])}",
        "requests/s ratio per round (geomean over the tests of runs seconds apart):",
        f"  hardened/stock:       {' '.join(rr)}   (below {target_text} in {nb}/{rounds} rounds)",
        f"  hardened-noaof/stock: {' '.join(rn)}   (below {target_text} in {count_below(rn, target)}/{rounds} rounds)",
        "",
        verdict("requests/s, the issue's metric", rps.geomeans[0], rps.below, target_text, len(tests)),
        verdict("server CPU per request, robust to host load", cpu.geomeans[0], cpu.below, target_text, len(tests)),
    ]
    cgm, cgmn = float(cpu.geomeans[0]), float(cpu.geomeans[1])
    if cgm < target <= cgmn:
        out += [
            "Where the cost is: AOF (appendfsync everysec). With AOF off the same hardened process is at",
            f"  {cpu.geomeans[1]} x stock by CPU per request: ACL checks and the rest of the role's config are "
            "within target.",
        ]
    elif cgmn < target:
        out += [
            f"Where the cost is: not only AOF; with AOF off the hardened process is still at {cpu.geomeans[1]} x stock",
            "  by CPU per request (ACL checks, maxmemory, ...).",
        ]
    if 0 < nb < rounds:
        out += [
            "NOTE: the rounds disagree on requests/s: run-to-run noise on this host is about as large as",
            "      the 5% margin. Trust the CPU figures more, or re-run on an idle host / with ROUNDS=9.",
        ]
    return out


def plain_vs_tls(runs: Sequence[Run], tests: Sequence[str], rounds: int, target_text: str) -> list[str]:
    target = float(target_text)  # no target for TLS: only the table's shape needs one
    return [
        f"requests/s (median of {rounds}; ratio = tls / plain):",
        *table(runs, RPS, "plain", ["tls"], tests, target).lines,
        "server CPU us per request (median; ratio = plain / tls):",
        *table(runs, CPU, "plain", ["tls"], tests, target).lines,
        *raw(runs, ["plain", "tls"], tests, rounds),
        f"largest run-to-run spread of one variant/test: {spread(runs, ['plain', 'tls'])}",
        "(no target for TLS; informational)",
    ]


REPORTS = {"hardened-vs-stock": hardened_vs_stock, "plain-vs-tls": plain_vs_tls}


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("results", type=Path, help="results.csv of scripts/bench-redis.sh")
    parser.add_argument("report", choices=sorted(REPORTS))
    parser.add_argument("--rounds", type=int, required=True)
    parser.add_argument("--target", required=True, help="e.g. 0.95: hardened must reach this ratio to stock")
    parser.add_argument("--tests", required=True, help="comma-separated test names, in report order")
    args = parser.parse_args(argv)
    try:
        lines = REPORTS[args.report](load(args.results), args.tests.split(","), args.rounds, args.target)
    except (OSError, ValueError) as e:
        print(f"bench-redis-stats: {e}", file=sys.stderr)
        return 1
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
