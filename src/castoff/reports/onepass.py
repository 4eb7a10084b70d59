"""Both reports of a job, the JSON and the HTML, written together from one pass over every file: the
JSON's list of files is written as the HTML's template pulls its full list, both in path order."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from castoff.catalog.db import Catalog
from castoff.reports import html, json_report
from castoff.reports.rows import file_groups, has_problem
from castoff.reports.staged import staged
from castoff.reports.summary import PROBLEM_FILES_SQL, Tally
from castoff.units import TimeText


def write(catalog: Catalog, job_id: str, folder: Path, counts: Tally) -> tuple[Path, Path]:
    """``<folder>/<job id>.json`` and ``.html``, byte for byte what ``json_report.write`` and
    ``html.write`` write, from one query over every file instead of two each. The files with a
    problem, which both reports list first and apart, come from queries of their own that read only
    them (and none when the summary counts none). Both files appear only complete, and only both."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = folder / f"{job_id}.json", folder / f"{job_id}.html"
    with staged(*paths) as (json_fh, html_fh):
        files = json_report.dump_head(catalog, job_id, json_fh, counts)
        iso = TimeText(json_report.ISO)
        if counts.problem_files:
            for rows in file_groups(catalog, job_id, PROBLEM_FILES_SQL):
                files.add(json_report.file_line(rows, iso))
        riding = _each_file(catalog, job_id, files, iso, problems_listed=counts.problem_files > 0)
        html.render(catalog, job_id, html_fh, counts, files=riding)
        for _ in riding:  # the template lists every file; were it to stop early, the JSON still would
            pass
        json_report.dump_tail(catalog, job_id, json_fh, files)
    catalog.set_report_path(job_id, str(paths[0]))
    return paths


def _each_file(
    catalog: Catalog, job_id: str, files: json_report.ListWriter, iso: TimeText, *, problems_listed: bool
) -> Iterator[list[tuple[Any, ...]]]:
    """Each file's rows for the HTML's full list, written to the JSON's list on the way unless it is
    one of the problems listed already."""
    for rows in file_groups(catalog, job_id):
        if not (problems_listed and has_problem(rows)):
            files.add(json_report.file_line(rows, iso))
        yield rows
