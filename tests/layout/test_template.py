"""Templates: every token and layout rendered, every mistake refused, and no path ever escapes."""

from __future__ import annotations

import os
import posixpath
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from castoff import errors
from castoff.layout.capture import Capture
from castoff.layout.names import check_layout_path
from castoff.layout.planner import LayoutOptions, Planner
from castoff.layout.template import LAYOUTS, TOKENS, layout_template, parse_template

WHEN = datetime(2024, 5, 7, 8, 9, 3, tzinfo=timezone(timedelta(hours=2)))
CAP = Capture(WHEN, "exif", "Canon", "Canon EOS R5", "exif")


def values(
    rel: str = "EOS_DIGITAL/DCIM/100CANON/IMG_0001.CR3", cap: Capture = CAP, counter: int = 7
) -> dict[str, str]:
    planner = Planner(LayoutOptions(shoot="Harbour"))
    return planner._values(rel, cap, "RAW", counter)


TOKEN_CASES = {
    "YYYY": "2024",
    "YY": "24",
    "MM": "05",
    "DD": "07",
    "hh": "08",
    "mm": "09",
    "ss": "03",
    "shoot": "Harbour",
    "device": "Canon EOS R5",
    "make": "Canon",
    "model": "Canon EOS R5",
    "type": "RAW",
    "card": "EOS_DIGITAL",
    "path": "DCIM/100CANON/IMG_0001.CR3",
    "folder": "DCIM/100CANON",
    "name": "IMG_0001.CR3",
    "stem": "IMG_0001",
    "ext": "CR3",
    "counter": "7",
}


def test_the_table_covers_every_token() -> None:
    assert set(TOKEN_CASES) == set(TOKENS)


@pytest.mark.parametrize(("token", "want"), TOKEN_CASES.items(), ids=list(TOKEN_CASES))
def test_each_token(token: str, want: str) -> None:
    rendered = parse_template(f"x/{{{token}}}/{{name}}").render(values())
    assert rendered == f"x/{want}/IMG_0001.CR3"


@pytest.mark.parametrize(
    ("layout", "want"),
    [
        ("none", "EOS_DIGITAL/DCIM/100CANON/IMG_0001.CR3"),
        ("date", "2024-05-07/IMG_0001.CR3"),
        ("month", "2024-05/IMG_0001.CR3"),
        ("device", "Canon EOS R5/IMG_0001.CR3"),
        ("type", "RAW/IMG_0001.CR3"),
    ],
)
def test_each_layout(layout: str, want: str) -> None:
    assert set(LAYOUTS) == {"none", "date", "month", "device", "type"}
    assert layout_template(layout, None).render(values()) == want


@pytest.mark.parametrize(
    ("template", "want"),
    [
        ("{YYYY}/{MM}-{shoot}/{device}/{name}", "2024/05-Harbour/Canon EOS R5/IMG_0001.CR3"),
        ("{YY}{MM}{DD}_{counter:4}.{ext}", "240507_0007.CR3"),
        ("{{literal}}/{stem}.{ext}", "{literal}/IMG_0001.CR3"),
        ("{folder}/{name}", "DCIM/100CANON/IMG_0001.CR3"),
        ("{card}-{hh}{mm}{ss}/{path}", "EOS_DIGITAL-080903/DCIM/100CANON/IMG_0001.CR3"),
    ],
)
def test_custom_templates(template: str, want: str) -> None:
    assert parse_template(template).render(values()) == want


def test_empty_token_values_drop_their_component() -> None:
    # a single-file source has no card and no folder
    assert parse_template("{card}/{folder}/{name}").render(values("clip.mov")) == "clip.mov"


def test_metadata_values_cannot_add_folders() -> None:
    cap = Capture(WHEN, "exif", "../../etc", "a/b\\c", "exif")
    rendered = parse_template("{make}/{model}/{device}/{name}").render(values(cap=cap))
    check_layout_path(rendered)
    assert rendered.split("/")[:2] == ["-..-etc", "a-b-c"]


@pytest.mark.parametrize(
    ("template", "why"),
    [
        ("{YYYY}/{bogus}/{name}", "unknown token {bogus}"),
        ("{YYYY}//{name}", "empty folder name"),
        ("{YYYY}/{name}/", "empty folder name"),
        ("/{YYYY}/{name}", "relative"),
        ("../{name}", "would leave"),
        ("{YYYY}/./{name}", "would leave"),
        ("{YYYY}/{name", "not closed"),
        ("{YYYY}}/{name}", "has no '{'"),
        ("{YYYY}/{device}", "names no file"),
        ("{name:3}", "only {counter:N}"),
        ("{counter:0}", "only {counter:N}"),
        ("", "empty template"),
    ],
)
def test_bad_templates_are_usage_errors(template: str, why: str) -> None:
    with pytest.raises(errors.UsageError) as exc:
        parse_template(template)
    assert why in exc.value.message
    assert exc.value.exit_code == 2


def test_layout_and_template_together_is_refused() -> None:
    with pytest.raises(errors.UsageError):
        layout_template("date", "{name}")
    with pytest.raises(errors.UsageError):
        layout_template("weekly", None)


# -- properties: nothing escapes ------------------------------------------------------------

_TOKEN = st.sampled_from([f"{{{t}}}" for t in TOKENS] + ["{counter:3}"])
_LITERAL = st.sampled_from(["..", ".", "/", "//", "x", "-", " ", "{{", "}}", "\\", "~", "\0"])
_TEMPLATE = st.lists(st.one_of(_TOKEN, _LITERAL), min_size=1, max_size=10).map("".join)
_NAME = st.text(
    alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="/\0"), min_size=1, max_size=20
).filter(lambda n: n not in (".", ".."))
_META = st.one_of(st.none(), st.text(max_size=20))


@settings(max_examples=400, deadline=None)
@given(template=_TEMPLATE, folders=st.lists(_NAME, max_size=3), name=_NAME, make=_META, model=_META)
def test_no_template_and_no_name_leaves_the_destination(
    template: str, folders: list[str], name: str, make: str | None, model: str | None
) -> None:
    try:
        parsed = parse_template(template)
    except errors.UsageError:
        return
    rel = "/".join(["card", *folders, name])
    cap = Capture(WHEN, "exif", make, model, "exif")
    try:
        out = parsed.render(values(rel, cap))
    except errors.KeyRejected:
        return  # refused before anything is written: also safe
    assert out and not out.startswith("/")
    assert all(part not in ("", ".", "..") for part in out.split("/"))
    root = "/dest/prefix"
    assert posixpath.normpath(posixpath.join(root, out)).startswith(root + "/")
    assert os.path.commonpath([root, posixpath.normpath(posixpath.join(root, out))]) == root


@pytest.mark.parametrize(
    ("template", "place"),
    [
        (LAYOUTS["none"], "EOS_DIGITAL/PRIVATE/M4ROOT/THMBNL"),
        ("{card}/{folder}/{name}", "EOS_DIGITAL/PRIVATE/M4ROOT/THMBNL"),
        ("backup/{shoot}-{card}/{path}", "backup/Harbour-EOS_DIGITAL/PRIVATE/M4ROOT/THMBNL"),
        ("{shoot}/{folder}/{name}", "Harbour/PRIVATE/M4ROOT/THMBNL"),
        ("{path}", "PRIVATE/M4ROOT/THMBNL"),
        *((LAYOUTS[k], None) for k in ("date", "month", "device", "type")),
        ("{card}/{YYYY}/{path}", None),  # a date of a file
        ("{card}/{folder}/{counter:4}-{name}", None),  # a counter of files
        ("{card}/{folder}/{stem}.{ext}", None),  # the same path, but made of the file's fields
        ("{card}/{ext}/{folder}/{name}", None),
        ("{card}/{name}", None),  # every folder flattened
        ("{folder}/{path}", None),
    ],
)
def test_only_a_template_of_the_source_folders_places_a_folder_that_holds_no_file(
    template: str, place: str | None
) -> None:
    """An empty folder has no date, camera, type, extension or number: only a template made of the
    source's folders (and fixed text, {card}, {shoot}) has a place for it."""
    planner = Planner(LayoutOptions(template=parse_template(template), shoot="Harbour"))
    assert parse_template(template).keeps_folders is (place is not None)
    assert planner.place_folder("EOS_DIGITAL/PRIVATE/M4ROOT/THMBNL") == place
    # the folder of a file is where that file lands
    if place is not None:
        file_path = planner.options.template.render(values("EOS_DIGITAL/PRIVATE/M4ROOT/THMBNL/a.jpg"))
        assert posixpath.dirname(file_path) == place


def test_an_empty_source_is_placed_at_its_own_name_or_nowhere() -> None:
    """A source that is one empty folder: its own folder under {card}; under {path} alone that is
    the destination's root, which is there already."""
    assert Planner(LayoutOptions()).place_folder("EOS_DIGITAL") == "EOS_DIGITAL"
    assert Planner(LayoutOptions(template=parse_template("{path}"))).place_folder("EOS_DIGITAL") is None
