"""Name rules: which names Windows-rules filesystems refuse, the --safe-names table, mount lookup."""

from __future__ import annotations

from pathlib import Path

import pytest

from castoff import errors
from castoff.layout.names import (
    check_layout_path,
    filesystem_type,
    fold_case,
    max_file_size,
    rules_known,
    windows_problems,
    windows_rules,
    windows_safe,
)


@pytest.mark.parametrize(
    ("name", "problem", "safe"),
    [
        ("IMG_0001.JPG", None, "IMG_0001.JPG"),
        ("a?b.jpg", "characters ?", "a\uff1fb.jpg"),
        ('q"<>:|*\\.txt', 'characters " * : < > \\ |', "q\uff02\uff1c\uff1e\uff1a\uff5c\uff0a\uff3c.txt"),
        ("trailing.", "a trailing dot or space", "trailing\uff0e"),
        ("space ", "a trailing dot or space", "space\u2420"),
        ("CON", "the reserved name CON", "CON_"),
        ("con.txt", "the reserved name con", "con_.txt"),
        ("LPT9.log", "the reserved name LPT9", "LPT9_.log"),
        ("CONSOLE.txt", None, "CONSOLE.txt"),
        ("tab\there", "control characters", "tab\u2409here"),
        ("caf\u00e9 #1 (final).txt", None, "caf\u00e9 #1 (final).txt"),
    ],
)
def test_windows_rules(name: str, problem: str | None, safe: str) -> None:
    problems = windows_problems(name)
    assert (problems[0] if problems else None) == problem
    assert windows_safe(name) == safe
    assert windows_problems(windows_safe(name)) == []


def test_safe_names_stay_distinct() -> None:
    names = ["a?b", "a*b", "a:b", "a|b", "a_b"]
    assert len({windows_safe(n) for n in names}) == len(names)


@pytest.mark.parametrize("rel", ["", "/abs/x", "a//b", "a/./b", "a/../b", "..", "a/b/", "a/\0b"])
def test_layout_paths_that_would_escape_are_refused(rel: str) -> None:
    with pytest.raises(errors.KeyRejected):
        check_layout_path(rel)


def test_filesystem_type_from_the_mount_table(tmp_path: Path) -> None:
    mounts = tmp_path / "mounts"
    card = tmp_path / "media" / "EOS DIGITAL"
    (card / "DCIM").mkdir(parents=True)
    escaped = str(card).replace(" ", "\\040")
    mounts.write_text(
        f"/dev/sda1 / ext4 rw 0 0\n/dev/sdb1 {tmp_path}/media xfs rw 0 0\n/dev/sdc1 {escaped} exfat rw 0 0\n"
    )
    assert filesystem_type(str(card / "DCIM"), str(mounts)) == "exfat"
    assert filesystem_type(str(card / "not-yet" / "made"), str(mounts)) == "exfat"
    assert filesystem_type(str(tmp_path / "media"), str(mounts)) == "xfs"
    assert filesystem_type(str(tmp_path), str(mounts)) == "ext4"
    assert filesystem_type(str(tmp_path), str(tmp_path / "absent")) is None


def test_filesystem_type_of_this_machine() -> None:
    assert filesystem_type("/") is not None


@pytest.mark.parametrize(
    ("fs", "rules", "largest"),
    [
        ("vfat", True, 4 * 1024**3 - 1),
        ("msdos", True, 4 * 1024**3 - 1),
        ("fuse.fusefat", True, 4 * 1024**3 - 1),  # QA: fusefat's mount was taken for a POSIX one
        ("exfat", True, None),
        ("fuseblk", True, None),  # exfat-fuse, ntfs-3g
        ("fuse.exfat", True, None),
        ("fuse.ntfs-3g", True, None),
        ("ntfs3", True, None),
        ("cifs", True, None),
        ("fuse.sshfs", False, None),
        ("ext4", False, None),
        (None, False, None),
    ],
)
def test_filesystem_types_with_windows_rules_and_a_file_size_limit(
    fs: str | None, rules: bool, largest: int | None
) -> None:
    assert windows_rules(fs) is rules
    assert max_file_size(fs) == largest


def test_case_folded_as_a_drive_that_ignores_case_compares_names() -> None:
    assert fold_case("100canon") == fold_case("100CANON") == fold_case("100Canon") == "100CANON"
    assert fold_case("caf\u00e9") == "CAF\u00c9"
    assert fold_case("Stra\u00dfe") == "STRA\u00dfE"  # one character each: never "STRASSE"


def test_smb_through_fuse_is_known_by_its_type_or_its_gvfs_folder() -> None:
    """QA L #5: smbnetfs's and gvfs's SMB shares follow Windows rules, as cifs does; gvfs serves
    every share through one type, and only its smb-share: folders are SMB."""
    assert windows_rules("fuse.smbnetfs")
    assert windows_rules("fuse.gvfsd-fuse", "/run/user/1000/gvfs/smb-share:server=nas,share=shoots/day1")
    assert not windows_rules("fuse.gvfsd-fuse", "/run/user/1000/gvfs/sftp:host=nas/home")
    assert rules_known("ext4") and not rules_known("fuse.sshfs") and not rules_known("fuse.rclone")
