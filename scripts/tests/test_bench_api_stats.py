"""scripts/bench-api-stats.py on a recorded benchmark and on made-up runs (make lint runs this).

data/bench-api-results.csv is the results.csv of one real `make bench-api`
(Debian 12, 16 connections, 5 rounds of 10 s, KEEP=1); data/bench-api-report.txt
is the report that run printed (BOOT: the worker boot it measured, its gunicorn's
max_requests + jitter / 2).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest
from script_loader import load_script

SCRIPT = Path(__file__).resolve().parents[1] / "bench-api-stats.py"
DATA = Path(__file__).resolve().parent / "data"
ARGS = ["--rounds", "5", "--target", "0.8", "--connections", "16"]
TARGET_AT_16 = "proxy (TLS, keep-alive) >= 0.8 x direct at 16 connections"
BOOT = ["--worker-boot-us", "384000", "--requests-per-boot", "1050"]


stats = load_script(SCRIPT, "bench_api_stats")


def test_report_of_a_recorded_run(capsys):
    assert stats.main([str(DATA / "bench-api-results.csv"), *ARGS, *BOOT]) == 0
    assert capsys.readouterr().out == (DATA / "bench-api-report.txt").read_text()


def write(
    tmp_path: Path,
    rps: dict[tuple[str, str], list[float]],
    cpu_us: Sequence[int] = (100,) * 6,
    proxy_cpu_us: Sequence[int] | None = None,
) -> Path:
    """rps: (endpoint, side) -> requests/s per round, each run 10 s long; cpu_us:
    CPU per request of gunicorn, nginx, journald, wrk, redis, worker (-1: not
    measured), proxy_cpu_us the proxy side's if it differs."""
    lines = []
    for (ep, side), per_round in rps.items():
        cpu = proxy_cpu_us if side == "proxy" and proxy_cpu_us is not None else cpu_us
        for r, value in enumerate(per_round, start=1):
            requests = int(value * 10)
            cpus = [-1 if us < 0 else us * requests for us in cpu]
            fields = [ep, side, r, requests, 10_000_000, 5000, 20000, 30000, 0, 0, 0, 0, 0, *cpus]
            lines.append(",".join(map(str, fields)))
    path = tmp_path / "results.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def all_endpoints(direct: list[float], proxy: list[float]) -> dict[tuple[str, str], list[float]]:
    sides = {"direct": direct, "proxy": proxy}
    return {(ep, side): values for ep in ("healthz", "limited", "tasks") for side, values in sides.items()}


def test_ratio_is_of_the_medians_and_the_target_met(tmp_path, capsys):
    path = write(tmp_path, all_endpoints([1000, 1100, 900, 1000, 5000], [850, 900, 800, 820, 100]))
    assert stats.main([str(path), *ARGS]) == 0
    out = capsys.readouterr().out
    # medians 1000 and 820: one wild run each way moves neither
    assert "GET /healthz            1000        820  0.820" in out
    assert "MET on every endpoint" in out


def test_a_ratio_under_the_target_is_missed_and_named(tmp_path, capsys):
    rps = all_endpoints([1000] * 5, [900] * 5)
    rps["tasks", "proxy"] = [700] * 5
    assert stats.main([str(write(tmp_path, rps)), *ARGS]) == 0
    out = capsys.readouterr().out
    assert "MISSED on 1/3 endpoints (POST /api/tasks 0.700)" in out


def test_rounds_that_disagree_about_the_target_are_noted(tmp_path, capsys):
    path = write(tmp_path, all_endpoints([1000] * 5, [900, 700, 900, 700, 900]))
    assert stats.main([str(path), *ARGS]) == 0
    assert "NOTE: the rounds disagree" in capsys.readouterr().out


def test_cpu_predicts_the_ratio_and_has_its_own_verdict(tmp_path, capsys):
    # 400 us per request direct; the proxy adds 100 us of nginx: 400/500 = 0.8
    rps = all_endpoints([1000] * 5, [700] * 5)
    path = write(tmp_path, rps, cpu_us=(400, 0, 0, 0, 0, 0), proxy_cpu_us=(400, 100, 0, 0, 0, 0))
    assert stats.main([str(path), *ARGS]) == 0
    out = capsys.readouterr().out
    assert "GET /healthz      measured 0.700, predicted by CPU 0.800, servers only 0.800" in out
    assert f"VERDICT (requests/s, the issue's metric): {TARGET_AT_16}: MISSED" in out
    assert f"VERDICT (CPU per request, robust to host load): {TARGET_AT_16}: MET" in out


def test_cpu_not_measured_prints_na(tmp_path, capsys):
    path = write(tmp_path, all_endpoints([1000] * 5, [900] * 5), cpu_us=(100, 10, 10, 10, -1, -1))
    assert stats.main([str(path), *ARGS, *BOOT]) == 0
    out = capsys.readouterr().out
    assert "n/a" in out
    assert "CPU not measured" in out
    assert (
        "(CPU per request, robust to host load): proxy (TLS, keep-alive) >= 0.8 x direct at 16 connections: not" in out
    )


def test_worker_boots_are_spread_over_the_requests(tmp_path, capsys):
    path = write(tmp_path, all_endpoints([1000] * 5, [900] * 5), cpu_us=(700, 0, 0, 0, 0, 0))
    assert stats.main([str(path), *ARGS, "--worker-boot-us", "350000", "--requests-per-boot", "1000"]) == 0
    out = capsys.readouterr().out
    assert "~350 us of every request's" in out
    assert "GET /healthz       50% of gunicorn's 700 us (direct)" in out


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (lambda line: line.replace(",0,0,0,0,0,", ",0,0,0,3,0,", 1), "a run with errors"),
        (lambda line: line.replace("healthz,", "readyz,", 1), "unknown endpoint"),
        (lambda line: line.rsplit(",", 1)[0], "expected 19 fields"),
    ],
)
def test_a_bad_line_fails_naming_why(tmp_path, capsys, edit, message):
    path = write(tmp_path, all_endpoints([1000] * 5, [900] * 5))
    lines = path.read_text().splitlines()
    path.write_text("\n".join([edit(lines[0]), *lines[1:]]) + "\n")
    assert stats.main([str(path), *ARGS]) == 1
    assert message in capsys.readouterr().err
