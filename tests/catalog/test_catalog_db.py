"""The catalog's own bookkeeping, below the engine."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from castoff.catalog.db import FILE_META_COLUMNS, Catalog
from castoff.layout.capture import Capture
from castoff.layout.planner import FilePlan


def test_a_plan_is_kept_column_by_column_and_read_back_as_planned(tmp_path: Path) -> None:
    cat = Catalog(tmp_path / "catalog.sqlite")
    cat.start_job("j1", argv=["castoff"], sources=["/card"], destinations=[], options={}, pid=1)
    file_id = cat.add_file("j1", rel_path="card/A001.MOV", abs_path="/card/A001.MOV", size=9, mtime_ns=1)
    when = datetime(2026, 11, 2, 9, 30, tzinfo=UTC)
    plan = FilePlan(
        layout_path="2026-11-02/A001.MOV",
        capture=Capture(when, "quicktime", "Sony", "FX6", "exif"),
        file_type="Video",
        sidecar_of="A001.XML",
        original_path="card/A001.MOV",
    )
    record = plan.catalog_record()
    assert len(record) == len(FILE_META_COLUMNS)
    cat.set_file_meta("j1", file_id, record)
    row = cat.job_file_meta("j1")[file_id]
    assert {c: row[c] for c in FILE_META_COLUMNS} == {
        "layout_path": "2026-11-02/A001.MOV",
        "original_path": "card/A001.MOV",
        "capture_time": when.isoformat(),
        "capture_source": "quicktime",
        "device": plan.capture.device,
        "device_source": "exif",
        "file_type": "Video",
        "sidecar_of": "A001.XML",
        "make": "Sony",
        "model": "FX6",
    }
    # and what a re-run plans from: the same capture, rebuilt from those columns
    cat.file_read(file_id, blake3="b" * 64, md5=None)
    prior = cat.prior_read("/card/A001.MOV", 9, 1)
    assert prior is not None and prior.capture is not None
    assert (prior.capture.when, prior.capture.make, prior.capture.model) == (when.isoformat(), "Sony", "FX6")
