"""Both reports of a job, the JSON and the HTML, written together: in one pass over the catalog when
no file has a problem (the usual case, where both list the files in path order), else one by one."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from pathlib import Path

from castoff.catalog.db import Catalog
from castoff.reports import html, json_report
from castoff.reports.rows import TimeText, file_groups
from castoff.reports.staged import staged
from castoff.reports.summary import Tally


def write(catalog: Catalog, job_id: str, folder: Path, counts: Tally) -> tuple[Path, Path]:
    """``<folder>/<job id>.json`` and ``.html``, as ``json_report.write`` and ``html.write`` write
    them; each appears only complete."""
    if counts.problem_files:  # both list the problems first, apart: a pass of their own
        return json_report.write(catalog, job_id, folder, counts), html.write(catalog, job_id, folder, counts)
    return one_pass(catalog, job_id, folder, counts)


def one_pass(catalog: Catalog, job_id: str, folder: Path, counts: Tally) -> tuple[Path, Path]:
    """Both reports of a job without a problem file from one query: the JSON's list of files is
    written as the HTML's template pulls its full list. They appear only both and complete."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / f"{job_id}.json", folder / f"{job_id}.html"
    with staged(*paths) as (json_fh, html_fh):
        files = json_report.dump_head(catalog, job_id, json_fh, counts)
        riding = _each_file(catalog, job_id, files)
        html.render(catalog, job_id, html_fh, counts, files=riding)
        for _ in riding:  # the template lists every file; were it to stop early, the JSON still would
            pass
        json_report.dump_tail(catalog, job_id, json_fh, files)
    catalog.set_report_path(job_id, str(paths[0]))
    return paths


def _each_file(catalog: Catalog, job_id: str, files: json_report.ListWriter) -> Iterator[list[sqlite3.Row]]:
    """Each file's rows for the HTML's full list, written to the JSON's list on the way."""
    iso = TimeText(json_report.ISO)
    for rows in file_groups(catalog, job_id):
        files.add(json_report.file_line(rows, iso))
        yield rows
