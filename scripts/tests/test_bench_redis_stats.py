"""scripts/bench-redis-stats.py on a recorded benchmark (make lint runs this).

data/bench-redis-results.csv is the results.csv of one real `make bench-redis`
(Debian 12, Redis 7.0, 5 rounds, KEEP=1). data/bench-redis-*.txt are the report
that run printed while the statistics were still awk in scripts/bench-redis.sh:
the Python version must print the same.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from script_loader import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "bench-redis-stats.py"
DATA = Path(__file__).resolve().parent / "data"
RESULTS = DATA / "bench-redis-results.csv"
ARGS = ["--rounds", "5", "--target", "0.95", "--tests", "SET,GET,INCR,LPUSH,XADD"]


stats = load_script(SCRIPT, "bench_redis_stats")


@pytest.mark.parametrize("report", ["hardened-vs-stock", "plain-vs-tls"])
def test_report_is_the_one_the_awk_version_printed(report, capsys):
    assert stats.main([str(RESULTS), report, *ARGS]) == 0
    assert capsys.readouterr().out == (DATA / f"bench-redis-{report}.txt").read_text()


def write(tmp_path: Path, rows: dict[str, list[tuple[float, float]]]) -> Path:
    """rows: variant -> one (rps, cpu) per round, the same for every test."""
    path = tmp_path / "results.csv"
    lines = [
        f"{variant},{r},{test},{rps},{cpu}"
        for variant, runs in rows.items()
        for r, (rps, cpu) in enumerate(runs, start=1)
        for test in ("SET", "GET")
    ]
    path.write_text("\n".join(lines) + "\n")
    return path


def report(path: Path, rounds: int) -> list[str]:
    return stats.hardened_vs_stock(stats.load(path), ["SET", "GET"], rounds, "0.95")


def test_median_of_an_even_count_is_the_mean_of_the_middle_two(tmp_path):
    path = write(
        tmp_path,
        {
            "stock": [(100, 10), (300, 10), (200, 10), (900, 10)],
            "hardened": [(100, 10)] * 4,
            "hardened-noaof": [(100, 10)] * 4,
        },
    )
    out = report(path, 4)
    assert out[2] == "SET              250             100   0.400             100   0.400"


def test_missed_target_is_listed_per_test_with_the_cost_outside_aof(tmp_path):
    # hardened: 10% slower and 25% more CPU, with AOF off still 20% more CPU.
    path = write(
        tmp_path,
        {
            "stock": [(1000, 8.0)] * 3,
            "hardened": [(900, 10.0)] * 3,
            "hardened-noaof": [(1000, 9.6)] * 3,
        },
    )
    out = report(path, 3)
    assert (
        "VERDICT (requests/s, the issue's metric): hardened >= 0.95 x stock: "
        "MISSED on 2/2 tests (SET 0.900 GET 0.900; geomean 0.900)"
    ) in out
    assert "Where the cost is: not only AOF; with AOF off the hardened process is still at 0.833 x stock" in out
    assert not any(line.startswith("NOTE:") for line in out)  # every round agrees


def test_rounds_that_disagree_get_a_note(tmp_path):
    path = write(
        tmp_path,
        {
            "stock": [(1000, 8.0)] * 3,
            "hardened": [(1000, 8.0), (800, 8.0), (1000, 8.0)],
            "hardened-noaof": [(1000, 8.0)] * 3,
        },
    )
    out = report(path, 3)
    assert "  hardened/stock:       1.00 0.80 1.00   (below 0.95 in 1/3 rounds)" in out
    assert any(line.startswith("NOTE: the rounds disagree") for line in out)
    assert "largest run-to-run spread of one variant/test: 25% (hardened,SET)" in out


def test_a_missing_variant_fails_with_a_message(tmp_path, capsys):
    path = write(tmp_path, {"stock": [(1000, 8.0)]})
    assert stats.main([str(path), "hardened-vs-stock", *ARGS]) == 1
    assert "no results for hardened SET" in capsys.readouterr().err
