"""The benchmark harness itself runs (tiny load, a few seconds, no timing assertions)."""

import json
import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("tool", ["asyncio", "wrk"])
def test_bench_harness_runs(tmp_path, tool):
    if tool == "wrk" and subprocess.run(["which", "wrk"], capture_output=True).returncode:
        pytest.skip("wrk is not installed (make bench installs it); the asyncio client ran")
    env = {k: v for k, v in os.environ.items() if k != "BENCH_DATABASE_URL"}
    result = subprocess.run(
        [sys.executable, "bench/run.py", "--smoke", "--tool", tool, "--out", str(tmp_path)],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert result.returncode == 0, result.stderr[-2000:]
    report = json.loads((tmp_path / "latest.json").read_text())
    assert report["tool"] == tool
    assert {"hash", "verify"} == set(report["limits"])
    assert all(len(runs) == 2 for runs in report["limit_runs"].values())  # start and end
    for key in (
        "signup_admin_c1",
        "signup_customer_c2",
        "login_c2",
        "rejection",
        "floor",
        "verify_c2",
        "floor_verify_c2",
        "forgot_c2",
        "floor_forgot_c2",
        "patch_me_c2",
        "floor_patch_me_c2",
    ):
        assert report["results"][key]["requests"] > 0
    assert report["results"]["verify_c2"]["unexpected"] == 0  # every token was valid
    for key in ("signup_admin_c1", "login_c2"):  # the limit measured around each figure
        figures = report["results"][key]
        assert len(figures["limit_runs"]) == 2
        assert report["ratios"][key] == figures["throughput"] / figures["limit"]
    assert report["results"]["memory"]["peak_mb"] > 0
    assert (tmp_path / "latest.png").stat().st_size > 0
    assert "| target | met |" in (tmp_path / "latest.md").read_text()
