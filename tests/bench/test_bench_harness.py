"""The benchmark harness itself (bench/): a tiny scale study end to end, and the hot-spot ranking.

Not a benchmark: no timing is checked, only that the harness measures, verifies, reports and
cleans up. A few seconds.
"""

from __future__ import annotations

import importlib
import json
from collections.abc import Callable
from pathlib import Path
from types import ModuleType

import pytest

from server_fixtures import ProxyFactory, RcloneBucket
from servers import s3_error_xml

BENCH = Path(__file__).resolve().parents[2] / "bench"


Loader = Callable[[str], ModuleType]


@pytest.fixture
def bench_module(monkeypatch: pytest.MonkeyPatch) -> Loader:
    """Import a bench/ module (they import each other by their plain names)."""
    monkeypatch.syspath_prepend(str(BENCH))
    return importlib.import_module


def test_scale_study_measures_verifies_reruns_and_cleans_up(tmp_path: Path, bench_module: Loader) -> None:
    scale = bench_module("scale")
    work, out = tmp_path / "work", tmp_path / "out"
    argv = ["--counts", "40", "--sizes", "1M", "--dests", "1,2", "--workdir", str(work), "--out", str(out)]
    assert scale.main([*argv, "--sample", "4"]) == 0

    (report,) = out.glob("scale-*.json")
    doc = json.loads(report.read_text())
    rows = {(r["series"], r["dests"]): r for r in doc["rows"]}
    assert set(rows) == {("count", 1), ("count", 2), ("size", 1), ("size", 2)}
    for r in rows.values():
        assert r["status"].startswith("ok 1/1 verified"), r
        assert r["maxrss_bytes"] > 0
        assert r["wall_s"] > 0
    assert rows["count", 1]["files"] == 40
    assert rows["size", 1]["bytes"] == 1 << 20
    # the verified job of every count runs again, at every destination count
    assert rows["count", 1]["rerun_wall_s"] is not None
    assert rows["count", 2]["rerun_wall_s"] is not None
    assert rows["size", 1]["rerun_wall_s"] is None
    assert any("re-run of a fully verified job of 40 files to 2 destination(s)" in g for g in doc["goals"])
    # what castoff's state folder holds after a run, and what the re-run added to it (its catalog
    # rows and its reports: every job records every file)
    for dests in (1, 2):
        row = rows["count", dests]
        assert row["state_bytes"] > 40 * 100, row
        assert 40 * 100 < row["rerun_state_bytes"] < row["state_bytes"] * 2, row
    assert rows["count", 2]["rerun_state_bytes"] > rows["count", 1]["rerun_state_bytes"]
    assert rows["size", 1]["rerun_state_bytes"] is None
    assert any("added" in g and "MiB to castoff's state folder" in g for g in doc["goals"])
    assert (out / report.name.replace(".json", ".md")).read_text().startswith("# castoff scale study")
    # nothing left behind in the work folder: sources, destinations and catalogs are removed
    assert not work.exists() or not any(p for p in work.rglob("*") if p.is_file())


def test_peer_runs_verify_rotate_and_follow_an_untimed_warm_up(
    tmp_path: Path, bench_module: Loader, capsys: pytest.CaptureFixture[str]
) -> None:
    """A tiny card to 2 folders with every peer this machine has. Each round starts one tool
    further on: castoff, first in the list, is not the first writer of every round (it was, and
    paid the kernel's fresh pages each first run: bench/README.md)."""
    run = bench_module("run")
    work, out = tmp_path / "work", tmp_path / "out"
    argv = ["--workload", "card", "--scale", "0.005", "--runs", "2", "--jobs", "local"]
    assert run.main([*argv, "--sample", "4", "--workdir", str(work), "--out", str(out)]) == 0
    said = capsys.readouterr().out

    (report,) = out.glob("*.json")
    rows = [r for r in json.loads(report.read_text())["rows"] if r["available"]]
    assert rows[0]["tool"] == "castoff"
    n = len(rows)
    assert n >= 2, "rclone (the suite's S3 server) is a peer too"
    for i, r in enumerate(rows):
        assert [x["verified"] for x in r["runs"]] == [True, True], r
        # round k starts with the k-th tool (from 0): tool i's place in it
        assert [x["order"] for x in r["runs"]] == [(i - k) % n + 1 for k in range(2)], r
    assert "warm-up:" in said and "not timed" in said
    assert not work.exists() or not any(p for p in work.rglob("*") if p.is_file())


def test_warm_up_writes_the_bytes_asked_and_leaves_nothing(tmp_path: Path, bench_module: Loader) -> None:
    fsutil = bench_module("fsutil")
    folder = tmp_path / "dst"
    assert fsutil.warm_up(folder, 9 << 20) == 9 << 20  # two whole blocks and a part
    assert list(folder.iterdir()) == []
    assert fsutil.warm_up(folder, 0) == 0


def test_the_boto3_floor_retries_a_server_error_as_every_peer_does(
    tmp_path: Path,
    bench_module: Loader,
    rclone_s3: RcloneBucket,
    fault_proxy: ProxyFactory,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``rclone serve s3`` answers a few of thousands of small PUTs with a 500 (two of them racing
    to make one folder): the floor rows of the many-small bench failed for it, while castoff,
    aws-cli and rclone copy retried and went on."""
    floor = bench_module("floor_s3")
    src = tmp_path / "many"
    bodies = {f"a/{i}.bin": bytes([i]) * (1000 + i) for i in range(4)}
    for rel, body in bodies.items():
        (src / rel).parent.mkdir(parents=True, exist_ok=True)
        (src / rel).write_bytes(body)
    for name, value in {
        "AWS_ACCESS_KEY_ID": rclone_s3.access_key,
        "AWS_SECRET_ACCESS_KEY": rclone_s3.secret_key,
        "AWS_DEFAULT_REGION": "us-east-1",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(name, value)
    proxy = fault_proxy(rclone_s3)
    proxy.respond(500, s3_error_xml("InternalError", "Internal Error"), method="PUT")
    argv = [str(src), "--endpoint", proxy.url, "--bucket", rclone_s3.bucket, "--prefix", "p", "--content-md5"]
    assert floor.main(argv) == 0
    assert len(proxy.fired) == 1
    listed = rclone_s3.client.list_objects_v2(Bucket=rclone_s3.bucket)["Contents"]
    assert sorted(o["Key"] for o in listed) == sorted(f"p/many/{rel}" for rel in bodies)
    for rel, body in bodies.items():
        got = rclone_s3.client.get_object(Bucket=rclone_s3.bucket, Key=f"p/many/{rel}")["Body"].read()
        assert got == body


def test_scale_study_refuses_bad_sizes(bench_module: Loader, capsys: pytest.CaptureFixture[str]) -> None:
    scale = bench_module("scale")
    with pytest.raises(SystemExit) as exc:
        scale.main(["--sizes", "12 parsecs"])
    assert exc.value.code == 2
    assert "not a size" in capsys.readouterr().err
    assert scale.parse_size("32M") == 32 << 20
    assert scale.parse_size("1.5GiB") == 3 << 29


COLLAPSED = """\
thread (11);<module> (castoff/__main__.py:5);_find_and_load (<frozen importlib._bootstrap>:1176) 1
thread (11): MainThread;<module> (castoff/__main__.py:5);Engine._read_parts (castoff/engine/job.py:460) 6
thread (11): MainThread;<module> (castoff/__main__.py:5);Catalog.add_file (castoff/catalog/db.py:270) 2
thread (12): lane-d1;Thread.run (threading.py:982);Lane._work (castoff/engine/lanes.py:90);\
Engine._close (castoff/engine/job.py:730);Catalog._tx (castoff/catalog/db.py:186) 3
thread (13): lane-d2;Thread.run (threading.py:982);Lane._work (castoff/engine/lanes.py:90);\
Condition.wait (threading.py:327) 5
thread (13): lane-d2;Thread.run (threading.py:982);Lane.push (castoff/engine/lanes.py:171);\
Condition.notify (threading.py:382) 4
not a stack line
"""


def test_hotspots_rank_functions_threads_and_categories(bench_module: Loader) -> None:
    hs = bench_module("hotspots")
    prof = hs.parse_collapsed(COLLAPSED.splitlines())
    assert (prof.samples, prof.waiting, prof.busy) == (21, 5, 16)
    # the start-up sample, taken before the thread had its name, counts under its later name;
    # the waiting samples count nowhere
    assert prof.threads == {"MainThread": 9, "lane-dN": 7}
    assert prof.self_fn["Engine._read_parts (castoff/engine/job.py)"] == 6
    assert prof.self_line["Catalog._tx (castoff/catalog/db.py:186)"] == 3
    # inclusive: once per sample, whatever the depth
    assert prof.inclusive_fn["<module> (castoff/__main__.py)"] == 9
    assert prof.inclusive_fn["Lane._work (castoff/engine/lanes.py)"] == 3
    cats = prof.categories
    assert cats["catalog (SQLite)"] == 5
    assert cats["read + hash (engine read loop)"] == 6
    # the notify is a hand-off; the lane loop under the catalog write is not
    assert cats["thread hand-off (lanes, budget, notify)"] == 4
    top = hs.summary(prof, 3)
    assert top["self_functions_pct"][0] == ("Engine._read_parts (castoff/engine/job.py)", 37.5)
    assert cats["start-up (imports)"] == 1
    sampled = {
        "7:11": ("python", 1.5),
        "7:12": ("python", 0.25),
        "7:99": ("python", 0.5),
        "6:6": ("py-spy", 2.0),
    }
    assert hs.thread_cpu(prof, sampled) == [
        ("py-spy (the profiler)", 2.0),
        ("MainThread", 1.5),
        ("(never sampled by py-spy)", 0.5),
        ("lane-dN", 0.25),
    ]
    assert [name for name, _ in top["castoff_inclusive_pct"]][:1] == ["<module> (castoff/__main__.py)"]
