"""Keep-both names (``photo (2).jpg``), shortened where the destination's limit needs it."""

from __future__ import annotations

from castoff.engine.conflicts import alt_target, is_alt_of, name_room


def test_a_keep_both_name_that_fits_is_the_name_and_its_number() -> None:
    assert alt_target("/d/photo.jpg", 2, max_name=255) == "/d/photo (2).jpg"
    assert alt_target("/d/.profile", 3, max_name=255) == "/d/.profile (3)"
    assert alt_target("/d/README", 2) == "/d/README (2)"


def test_a_keep_both_name_too_long_loses_whole_characters_of_its_stem_and_keeps_its_extension() -> None:
    for stem, cut in (
        ("x" * 251, "x" * 247),
        ("é" * 125, "é" * 123),
        ("😀" * 62, "😀" * 61),
        ("e\u0301" * 83, "e\u0301" * 82),
    ):
        alt = alt_target(f"/d/{stem}.jpg", 2, max_name=255)
        assert alt == f"/d/{cut} (2).jpg"
        assert len(alt.rpartition("/")[2].encode()) <= 255
        assert is_alt_of(alt, f"/d/{stem}.jpg", max_name=255)
        assert not is_alt_of(alt, f"/d/{stem}.jpg")  # (no limit given: not one of its names)
    # ten more: " (10)" takes one byte more
    assert alt_target("/d/" + "x" * 251 + ".jpg", 10, max_name=255) == "/d/" + "x" * 246 + " (10).jpg"
    # a stem that cannot shrink enough is kept whole: the destination refuses the name then
    assert alt_target("/d/a." + "j" * 252, 2, max_name=255) == "/d/a (2)." + "j" * 252


def test_a_shortened_name_is_no_keep_both_name_of_another_file() -> None:
    long = "/d/" + "x" * 251 + ".jpg"
    assert not is_alt_of("/d/x (2).jpg", long, max_name=255)
    assert not is_alt_of("/d/" + "x" * 247 + " (2).png", long, max_name=255)
    assert not is_alt_of("/d/" + "y" * 247 + " (2).jpg", long, max_name=255)


def test_the_room_for_a_name_is_the_folders_limit_or_what_a_key_limit_leaves() -> None:
    assert name_room("/mnt/ssd/a/b.jpg", max_name=255, max_path=4096) == 255
    key = "shoots/" + "p" * 900 + "/IMG.jpg"  # an S3 key: 1024 bytes in all, no limit per name
    assert name_room(key, max_name=None, max_path=1024) == 1024 - len("shoots/" + "p" * 900) - 1
    assert name_room("a/b", max_name=None, max_path=None) is None
    alt = alt_target(key.replace("IMG", "I" * 120), 2, max_name=name_room(key, max_name=None, max_path=1024))
    assert len(alt.encode()) <= 1024 and alt.endswith(" (2).jpg")
