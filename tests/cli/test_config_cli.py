"""Saved destinations, keys, workflows and runs, as a user types them, against real S3 servers.

Every castoff here is a subprocess with a config, state folder and keyring of the test's own
(tests/keyring_backend.py): the user's real keyring and config are never touched.
"""

from __future__ import annotations

import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import time
import tomllib
from pathlib import Path

import pytest

from castoff.cli import build_parser
from castoff.config.workflows import subparser
from castoff.destinations.mounts import mount_of
from castoff_cli import NO_KEYRING, Castoff, files_containing
from engine_runner import write
from kernel_mounts import kernel_drive
from server_fixtures import MotoBucket, RcloneBucket


@pytest.fixture
def castoff(tmp_path: Path) -> Castoff:
    return Castoff(tmp_path / "home")


@pytest.fixture
def card(tmp_path: Path) -> Path:
    src = tmp_path / "EOS_DIGITAL"
    rng = random.Random(5)
    for i in range(4):
        write(src / "DCIM" / f"IMG_{i:04}.CR3", rng.randbytes(100_000 + i))
    write(src / "CLIP.MP4", rng.randbytes(6_000_000))
    return src


def text(done: object) -> str:
    return " ".join((getattr(done, "stdout", "") + getattr(done, "stderr", "")).split())


def cells(done: object) -> str:
    """``text`` of a table: its cells, one space apart."""
    return " ".join(text(done).replace("│", " ").split())


def config(castoff: Castoff) -> dict[str, object]:
    return tomllib.loads(castoff.config.read_text()) if castoff.config.exists() else {}


def objects(bucket: MotoBucket | RcloneBucket) -> list[str]:
    listed = bucket.client.list_objects_v2(Bucket=bucket.bucket).get("Contents", [])
    return sorted(o["Key"] for o in listed)


def add_bucket(
    castoff: Castoff, name: str, bucket: MotoBucket | RcloneBucket, key: str, secret: str, *extra: str
):  # type: ignore[no-untyped-def]
    return castoff(
        "dest", "add", name, "s3", "--bucket", bucket.bucket, "--endpoint", bucket.url,
        "--access-key-id", key, "--secret-stdin", *extra,
        input=secret + "\n",
    )  # fmt: skip


# --- local destinations, list/show/rename/remove, workflows ----------------------------------


def test_local_destinations_and_a_workflow_from_add_to_remove(
    castoff: Castoff, tmp_path: Path, card: Path
) -> None:
    ssd = tmp_path / "ssd"
    r = castoff("dest", "add", "ssd", "local", str(ssd))
    assert r.returncode == 0, r.stderr
    assert "ok @ssd: writable" in text(r)
    assert castoff("dest", "add", "ssd", "local", str(ssd)).returncode == 2
    r = castoff("dest", "add", "usb", "local", str(tmp_path / "usb"), "--region", "eu-west-1")
    assert r.returncode == 2 and "--region is a bucket setting" in text(r)
    listed = json.loads(castoff("dest", "list", "--json").stdout)
    point, fs = mount_of(str(ssd)) or ("", "")
    mount = {"mounted_on": point, "filesystem": fs} if point else {}
    assert listed == [{"name": "ssd", "type": "local", "path": str(ssd), **mount}]  # (its mount: saved)

    r = castoff("workflow", "save", "shoot", "--to", "ssd", "--source", str(card), "--exclude", "*.MP4")
    assert r.returncode == 0, r.stderr
    shown = json.loads(castoff("workflow", "show", "shoot", "--json").stdout)
    assert shown["to"] == ["@ssd"] and shown["options"] == {"exclude": ["*.MP4"]}
    assert "castoff copy" in castoff("workflow", "show", "shoot").stdout
    r = castoff("workflow", "save", "twice", "--to", "ssd", "--to", "@ssd", "--source", str(card))
    assert r.returncode == 2 and "the same destination is named twice: ssd and @ssd" in text(r)

    r = castoff("dest", "remove", "ssd")
    assert r.returncode == 2 and "used by the workflow shoot" in text(r)
    r = castoff("dest", "rename", "ssd", "fast")
    assert r.returncode == 0, r.stderr
    assert json.loads(castoff("workflow", "show", "shoot", "--json").stdout)["to"] == ["@fast"]

    r = castoff("run", "shoot")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "ssd" / "EOS_DIGITAL" / "DCIM").iterdir()) == [
        f"IMG_{i:04}.CR3" for i in range(4)
    ]
    assert not (tmp_path / "ssd" / "EOS_DIGITAL" / "CLIP.MP4").exists()
    assert "done" in castoff("workflow", "list").stdout

    r = castoff("copy", str(card), "--to", "fast")  # a bare saved name, and no folder 'fast' here
    assert r.returncode == 2 and "write @fast" in text(r)
    assert not (castoff.root / "fast").exists()

    assert castoff("workflow", "remove", "shoot").returncode == 0
    assert castoff("dest", "remove", "fast").returncode == 0
    assert not any(config(castoff).values())


def _fill(drive: Path) -> None:
    """Every block of ``drive`` taken (root's reserve too: the tests run as root)."""
    with open(drive / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * (1 << 20))
                fh.flush()
        except OSError:
            pass
    os.sync()


def test_a_full_drive_is_not_called_writable(castoff: Castoff, tmp_path: Path) -> None:
    """QA M #3: on a drive with no block free, 'dest add' and 'dest test' said "ok … writable"
    (the folder could be made; no file could be written there) and saved it. A real ext4 image."""
    with kernel_drive(tmp_path / "mnt", "ext4", size="64M") as drive:
        (drive.path / "shoot2").mkdir()
        _fill(drive.path)
        for name, folder in (("full", drive.path / "shoot"), ("full2", drive.path / "shoot2")):
            r = castoff("dest", "add", name, "local", str(folder))
            assert r.returncode == 1, text(r)
            assert f"failed @{name}: " in text(r), text(r)
            said = (
                f"cannot write a file in {folder}: No space left on device",
                "the drive is full (0 B free)",
            )
            assert any(s in text(r) for s in said), text(r)  # (root may write in the reserve)
            assert "free space on the destination, then re-run" in text(r)
            assert sorted(os.listdir(drive.path)) == ["filler", "lost+found", "shoot2"]  # nothing left
            assert not os.listdir(drive.path / "shoot2")
        r = castoff("dest", "test", str(drive.path / "shoot2"))
        assert r.returncode == 1 and any(s in text(r) for s in said), text(r)
        os.unlink(drive.path / "filler")
        r = castoff("dest", "test", str(drive.path / "shoot2"))
        assert r.returncode == 0 and f"ok {drive.path / 'shoot2'}: writable, " in text(r), text(r)
        assert " MiB free" in text(r)


def test_parallel_dest_adds_lose_no_destination(castoff: Castoff, tmp_path: Path) -> None:
    procs = [
        castoff.popen("dest", "add", f"r{i}", "local", str(tmp_path / f"r{i}"), "--no-test")
        for i in range(10)
    ]
    for proc in procs:
        _, err = proc.communicate(timeout=120)
        assert proc.returncode == 0, err
    assert sorted(config(castoff)["destinations"]) == sorted(f"r{i}" for i in range(10))  # type: ignore[arg-type]


def test_a_workflow_naming_a_deleted_destination_stops_only_its_run(
    castoff: Castoff, tmp_path: Path, card: Path
) -> None:
    """QA: with [destinations.nas] deleted by hand, every command (dest list, dest add nas,
    workflow edit and remove, copy --to @ssd) failed on workflows.card.to, the fixes too."""
    for name in ("ssd", "nas"):
        assert castoff("dest", "add", name, "local", str(tmp_path / name)).returncode == 0
    assert castoff("workflow", "save", "card", "--to", "@ssd", "--to", "@nas").returncode == 0
    assert castoff("workflow", "save", "other", "--to", "@ssd").returncode == 0
    good = castoff.config.read_text()
    table = good.index("[destinations.nas]")  # the whole table, up to the next one
    castoff.config.write_text(good[:table] + good[good.index("\n[", table) + 1 :])
    said = "workflows.card.to: no saved destination 'nas'"
    r = castoff("dest", "list")
    assert r.returncode == 0 and "@ssd" in r.stdout, r.stderr
    assert f"warning: {castoff.config}, line" in text(r) and said in text(r)
    r = castoff("copy", str(card), "--to", "@ssd")
    assert r.returncode == 0 and said in text(r), text(r)
    r = castoff("run", "card", str(card))
    assert r.returncode == 2 and f"castoff: {castoff.config}, line" in text(r) and said in text(r), text(r)
    assert "castoff dest add nas" in text(r)
    assert castoff("run", "other", str(card)).returncode == 0
    before = castoff.config.read_text()
    r = castoff("workflow", "save", "w", "--to", "@nas")  # a new reference to it is still refused
    assert r.returncode == 2 and castoff.config.read_text() == before

    r = castoff("workflow", "edit", "card", "--to", "@ssd")
    assert r.returncode == 0, text(r)
    assert said not in text(castoff("dest", "list"))
    castoff.config.write_text(before)
    assert castoff("workflow", "remove", "card").returncode == 0
    castoff.config.write_text(before)
    assert castoff("dest", "add", "nas", "local", str(tmp_path / "nas")).returncode == 0
    r = castoff("run", "card", str(card))
    assert r.returncode == 0 and "warning" not in text(r), text(r)


def test_workflow_edit_with_options_and_in_an_editor(castoff: Castoff, tmp_path: Path) -> None:
    assert castoff("dest", "add", "a", "local", str(tmp_path / "a")).returncode == 0
    assert castoff("dest", "add", "b", "local", str(tmp_path / "b")).returncode == 0
    assert castoff("workflow", "save", "w", "--to", "@a", "--include", "*.CR3", "--rehash").returncode == 0
    r = castoff("workflow", "edit", "w", "--to", "@b", "--on-conflict", "skip", "--unset", "rehash")
    assert r.returncode == 0, r.stderr
    saved = config(castoff)["workflows"]["w"]  # type: ignore[index]
    assert saved == {"to": ["@b"], "options": {"include": ["*.CR3"], "on_conflict": "skip"}}

    editor = tmp_path / "editor.py"
    editor.write_text(
        "import os, pathlib, sys\n"
        "p = pathlib.Path(sys.argv[1])\n"
        "p.write_text(p.read_text().replace('skip', os.environ['NEW']))\n"
    )
    before = castoff.config.read_text()
    bad = castoff("workflow", "edit", "w", env={"EDITOR": f"{sys.executable} {editor}", "NEW": "clobber"})
    assert bad.returncode == 2
    assert (
        "line" in text(bad)
        and "workflows.w.options.on_conflict" in text(bad)
        and "draft is kept" in text(bad)
    )
    assert castoff.config.read_text() == before
    good = castoff("workflow", "edit", "w", env={"EDITOR": f"{sys.executable} {editor}", "NEW": "fail"})
    assert good.returncode == 0, good.stderr
    assert config(castoff)["workflows"]["w"]["options"]["on_conflict"] == "fail"  # type: ignore[index]


def test_a_workflows_description_is_set_by_save_and_edit_and_shown_in_its_json(castoff: Castoff) -> None:
    """QA: ``--description`` was undocumented, ``workflow edit`` could only --unset it, and
    ``workflow show --json`` and ``list --json`` left it out."""
    assert castoff("workflow", "save", "w", "--to", "/tmp/x", "--description", "the A camera").returncode == 0
    assert json.loads(castoff("workflow", "show", "w", "--json").stdout)["description"] == "the A camera"
    r = castoff("workflow", "edit", "w", "--description", "the B camera")
    assert r.returncode == 0, r.stderr
    assert config(castoff)["workflows"]["w"]["description"] == "the B camera"  # type: ignore[index]
    assert json.loads(castoff("workflow", "list", "--json").stdout)[0]["description"] == "the B camera"
    assert castoff("workflow", "edit", "w", "--unset", "description").returncode == 0
    assert json.loads(castoff("workflow", "show", "w", "--json").stdout)["description"] is None


def test_a_workflow_filters_as_copy_does_ignoring_case_unless_saved_case_sensitive(
    castoff: Castoff, tmp_path: Path
) -> None:
    card = tmp_path / "card"
    for name in ("IMG_0001.JPG", "img_0002.jpg", "IMG_0003.CR3", "THUMBS.DB"):
        write(card / name, name.encode())
    assert castoff("dest", "add", "a", "local", str(tmp_path / "a")).returncode == 0
    r = castoff("workflow", "save", "w", "--to", "@a", "--source", str(card), "--include", "*.jpg")
    assert r.returncode == 0, r.stderr
    r = castoff("run", "w")
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (tmp_path / "a" / "card").iterdir()) == ["IMG_0001.JPG", "img_0002.jpg"]
    assert castoff("workflow", "edit", "w", "--case-sensitive").returncode == 0
    assert config(castoff)["workflows"]["w"]["options"] == {  # type: ignore[index]
        "include": ["*.jpg"],
        "case_sensitive": True,
    }
    shutil.rmtree(tmp_path / "a" / "card")
    r = castoff("run", "w", "--rehash")
    assert r.returncode == 0, r.stderr
    assert [p.name for p in (tmp_path / "a" / "card").iterdir()] == ["img_0002.jpg"]


def test_an_editor_draft_with_a_table_twice_or_a_failed_editor_saves_nothing(
    castoff: Castoff, tmp_path: Path
) -> None:
    assert castoff("dest", "add", "a", "local", str(tmp_path / "a")).returncode == 0
    assert castoff("workflow", "save", "w", "--to", "@a", "--include", "*.CR3").returncode == 0
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import os, pathlib, sys\n"
        "p = pathlib.Path(sys.argv[1])\n"
        "p.write_text(p.read_text() + os.environ['APPEND'])\n"
        "sys.exit(int(os.environ.get('CODE', '0')))\n"
    )
    before = castoff.config.read_text()

    def edit(append: str, code: int = 0) -> subprocess.CompletedProcess[str]:
        env = {"EDITOR": f"{sys.executable} {editor}", "APPEND": append, "CODE": str(code)}
        return castoff("workflow", "edit", "w", env=env)

    twice = edit("\n[workflows.w.options]\nrehash = true\n")  # tomlkit: KeyAlreadyPresent
    assert twice.returncode == 2, twice.stderr
    assert "Traceback" not in twice.stderr
    line = len(before.splitlines()) + 2  # the second [workflows.w.options], after a blank line
    assert f"line {line}: not valid TOML" in text(twice) and "draft is kept" in text(twice)
    draft = Path(text(twice).split("draft is kept in ")[1].split()[0])
    assert draft.read_text().endswith("rehash = true\n")
    draft.unlink()
    assert castoff.config.read_text() == before

    failed = edit("\n# a change the editor did not mean to save\n", code=3)
    assert failed.returncode == 2, failed.stderr
    assert "the editor exited with code 3, so nothing was saved" in text(failed)
    assert castoff.config.read_text() == before
    Path(text(failed).split("draft is kept in ")[1].split()[0]).unlink()


def test_an_editor_that_saves_with_a_byte_order_mark_is_understood(castoff: Castoff, tmp_path: Path) -> None:
    """Windows editors begin UTF-8 with a byte order mark, which TOML does not allow: the edit is
    saved (without it) instead of failing on line 1 with "Empty key"."""
    assert castoff("dest", "add", "a", "local", str(tmp_path / "a")).returncode == 0
    assert castoff("workflow", "save", "w", "--to", "@a").returncode == 0
    editor = tmp_path / "editor.py"
    editor.write_text(
        "import pathlib, sys\n"
        "p = pathlib.Path(sys.argv[1])\n"
        "more = '\\n[workflows.w.options]\\nrehash = true\\n'\n"
        "p.write_bytes(b'\\xef\\xbb\\xbf' + (p.read_text() + more).encode())\n"
    )
    r = castoff("workflow", "edit", "w", env={"EDITOR": f"{sys.executable} {editor}"})
    assert r.returncode == 0, text(r)
    saved = castoff.config.read_bytes()
    assert not saved.startswith(b"\xef\xbb\xbf") and b"rehash = true" in saved
    assert castoff("workflow", "show", "w").returncode == 0


def test_names_with_brackets_are_printed_as_they_are(castoff: Castoff, tmp_path: Path) -> None:
    """QA: rich read ``[raw]`` in a path, and ``[destinations]`` in a config message, as markup:
    they vanished, and 'workflow show' gave a copy command that named other folders."""
    shoot, out, card = tmp_path / "shoot [raw] copies", tmp_path / "out [bold]x \\[", tmp_path / "card [red]"
    r = castoff("dest", "add", "raw", "local", str(shoot))
    assert r.returncode == 0 and "ok @raw: writable, " in text(r), text(r)
    assert f" free ({shoot} does not exist yet" in text(r), text(r)
    assert f"@raw local {shoot}" in cells(castoff("dest", "list"))
    assert f"path {shoot}" in cells(castoff("dest", "show", "raw"))
    r = castoff("workflow", "save", "mk", "--to", str(out), "--to", "@raw", "--source", str(card))
    assert r.returncode == 0, r.stderr
    r = castoff("workflow", "show", "mk")
    assert f"source: {card}" in text(r) and f"to: {out}, @raw" in text(r), text(r)
    assert f"same as: castoff copy '{card}' --to '{out}' --to @raw" in text(r), text(r)
    assert f"mk {card} {out}, @raw never" in cells(castoff("workflow", "list"))
    for wrong, said in (
        ("[destination.ssd]\n", "the sections are [destinations] and [workflows]"),
        ("destinations = 5\n", "destinations: must be a table ([destinations.NAME] sections)"),
    ):
        castoff.config.write_text(wrong)
        r = castoff("dest", "list")
        assert r.returncode == 2 and said in text(r) and "Traceback" not in text(r), text(r)


@pytest.mark.parametrize(
    ("options", "said"),
    [
        (["--layout", "date", "--template", "{name}"], "give --layout or --template, not both"),
        (["--template", "{bogus}/{name}"], "--template '{bogus}/{name}': unknown token {bogus}"),
        (["--template", "{shoot}/{name}"], "the template uses {shoot}: give the shoot's name with --shoot"),
        (
            ["--memory", "12"],
            "--memory 12 is too small for the chunk size, 16.0 MiB: the default (--chunk-size",
        ),
        (["--chunk-size", "200M"], "the default memory budget (256.0 MiB) is too small for --chunk-size"),
        (["--part-size", "banana"], "--part-size 'banana' is not a size"),
    ],
)
def test_workflow_save_and_edit_refuse_what_copy_refuses(
    castoff: Castoff, tmp_path: Path, card: Path, options: list[str], said: str
) -> None:
    """QA: these were saved, and copy refused them only at 'castoff run'."""
    out = str(tmp_path / "out")
    r = castoff("copy", str(card), "--to", out, *options)
    assert r.returncode == 2 and said in text(r), text(r)  # copy's own message
    r = castoff("workflow", "save", "w", "--to", out, *options)
    assert r.returncode == 2 and said in text(r), text(r)
    assert not config(castoff)
    assert castoff("workflow", "save", "w", "--to", out).returncode == 0
    before = castoff.config.read_text()
    r = castoff("workflow", "edit", "w", *options)
    assert r.returncode == 2 and said in text(r), text(r)
    assert castoff.config.read_text() == before


def test_a_part_size_the_provider_refuses_is_not_saved(
    castoff: Castoff, moto: MotoBucket, card: Path
) -> None:
    """QA: a part size below the provider's minimum was only warned about at each upload, and
    the upload failed at its end: a saved destination or workflow must not hold one."""
    below = "below the minimum of S3-compatible server (5242880 bytes, 5.0 MiB)"
    r = add_bucket(castoff, "ark", moto, "a", "b", "--prefix", "raw/", "--part-size", "1K")
    assert r.returncode == 2 and f"@ark: part size 1024 bytes (1.0 KiB) is out of range: {below}" in text(r)
    assert "give a part size of 5MiB or more" in text(r)
    assert not config(castoff)
    assert add_bucket(castoff, "ark", moto, "a", "b", "--prefix", "raw/").returncode == 0
    url = f"s3://{moto.bucket}/wf/?endpoint={moto.url}"
    for to in ("@ark", url):
        r = castoff("workflow", "save", "w", "--to", to, "--part-size", "4M")
        assert r.returncode == 2 and f"part size 4194304 bytes (4.0 MiB) is out of range: {below}" in text(r)
        assert (
            "@ark: part size" in text(r) if to == "@ark" else f"s3://{moto.bucket}/wf: part size" in text(r)
        )
    assert "workflows" not in config(castoff)
    assert castoff("workflow", "save", "w", "--to", "@ark", "--part-size", "5M").returncode == 0
    # hand-edited into the config: copy refuses before anything is read or sent
    castoff.config.write_text(
        castoff.config.read_text().replace('prefix = "raw/"', 'prefix = "raw/"\npart_size = "1K"')
    )
    r = castoff("copy", str(card), "--to", "@ark")
    assert r.returncode == 2 and f"@ark: part size 1024 bytes (1.0 KiB) is out of range: {below}" in text(r)
    assert objects(moto) == []


def test_workflow_edit_unset_names_what_it_can_drop(castoff: Castoff, tmp_path: Path) -> None:
    """QA: '--unset nonsense', '--unset to' and unsetting what was not set all said "changed"."""
    out, card = str(tmp_path / "out"), str(tmp_path / "card")
    r = castoff("workflow", "save", "w", "--to", out, "--source", card, "--layout", "date", "--rehash")
    assert r.returncode == 0, r.stderr
    before = castoff.config.read_text()
    for name in ("nonsense", "to"):
        r = castoff("workflow", "edit", "w", "--unset", name)
        assert r.returncode == 2 and f"--unset {name}: " in text(r), text(r)
        assert "workflow 'w' has these to unset: source, layout, rehash" in text(r), text(r)
    assert "change them with --to" in text(castoff("workflow", "edit", "w", "--unset", "to"))
    for same in (["--unset", "on-conflict"], ["--unset", "description"], ["--layout", "date"], ["--to", out]):
        r = castoff("workflow", "edit", "w", *same)
        assert r.returncode == 0 and "nothing to change in workflow 'w'" in text(r), (same, text(r))
    assert castoff.config.read_text() == before
    r = castoff("workflow", "edit", "w", "--unset", "layout", "--unset", "rehash", "--unset", "source")
    assert r.returncode == 0 and "changed workflow 'w'" in text(r), text(r)
    assert config(castoff)["workflows"] == {"w": {"to": [out]}}


# --- buckets and keys -------------------------------------------------------------------------


def test_bucket_keys_live_in_the_keyring_and_rotate(castoff: Castoff, moto: MotoBucket, card: Path) -> None:
    key, secret = moto.enable_write_only()
    r = add_bucket(castoff, "ark", moto, key, secret, "--prefix", "raw/")
    assert r.returncode == 0, r.stderr
    assert "ok @ark: takes writes" in text(r)
    assert "keys: in the OS keyring (keyring backend FileKeyring)" in text(r)  # which one, by name
    saved = config(castoff)["destinations"]["ark"]  # type: ignore[index]
    assert saved["credentials"] == "keyring" and "access_key_id" not in saved
    assert secret in castoff.keyring()
    assert f"in the keyring (key {key[:4]}…)" in castoff("dest", "show", "ark").stdout

    r = castoff("copy", str(card), "--to", "@ark")
    assert r.returncode == 0, r.stderr
    assert "@ark" in r.stderr  # the progress and summary name the saved destination
    assert "raw/EOS_DIGITAL/CLIP.MP4" in objects(moto)

    # a wrong new secret: tested, refused, the old keys kept
    new_key, new_secret = moto.enable_write_only()
    r = castoff(
        "dest", "credentials", "ark", "--access-key-id", new_key, "--secret-stdin", input="WRONG-SECRET-x1\n"
    )
    assert r.returncode == 1 and "old keys are kept" in text(r)
    assert secret in castoff.keyring()
    # the new pair: tested, saved; the old key is deactivated at once and the next job works
    r = castoff(
        "dest", "credentials", "ark", "--access-key-id", new_key, "--secret-stdin", input=new_secret + "\n"
    )
    assert r.returncode == 0, r.stderr
    assert "old key can be deactivated now" in text(r)
    assert new_secret in castoff.keyring() and secret not in castoff.keyring()
    deactivate(moto, key)
    r = castoff("copy", str(card), "--to", "@ark", "--rehash")
    assert r.returncode == 0, r.stderr

    for s in (secret, new_secret, "WRONG-SECRET-x1"):
        assert not files_containing(s, [castoff.root / "config", castoff.state])
        assert all(s not in out for out in castoff.outputs)


def deactivate(moto: MotoBucket, key: str) -> None:
    """Delete an access key at moto's IAM, as a user would in the provider's console."""
    server = moto.server
    server.disable_auth()
    iam = server._iam()
    for user in iam.list_users()["Users"]:
        for k in iam.list_access_keys(UserName=user["UserName"])["AccessKeyMetadata"]:
            if k["AccessKeyId"] == key:
                iam.delete_access_key(UserName=user["UserName"], AccessKeyId=key)
    server._enable_auth()


def test_keys_from_the_keyring_that_the_server_refuses_point_at_dest_credentials(
    castoff: Castoff, moto: MotoBucket, card: Path
) -> None:
    """QA: a saved bucket whose keys are in the keyring, refused by the server, said "check the
    access key id (AWS_ACCESS_KEY_ID or the profile)": neither is where its keys come from."""
    key, secret = moto.enable_write_only()
    fix = "castoff dest credentials wobad"
    for given, said in (
        ("AKIAIOSFODNN7EXAMPLE", "does not know this access key id"),
        (key, "secret key is wrong"),
    ):
        r = add_bucket(
            castoff, "wobad", moto, given, "WRONG-SECRET-x1", "--prefix", "bad/", "--no-test", "--replace"
        )
        assert r.returncode == 0, r.stderr
        r = castoff("dest", "test", "wobad")
        assert r.returncode == 1 and said in text(r), text(r)
        assert f"OS keyring: set the right one with {fix}" in text(r), text(r)
        assert "AWS_ACCESS_KEY_ID" not in text(r)
        r = castoff("copy", str(card), "--to", "@wobad")  # a job says the same
        assert r.returncode == 2 and fix in text(r) and "AWS_ACCESS_KEY_ID" not in text(r), text(r)
    # what was typed to 'dest add' (not saved: it failed its test) is what to check
    r = add_bucket(castoff, "other", moto, key, "WRONG-SECRET-x1")
    assert r.returncode == 1 and "check the access key id and the secret given here" in text(r), text(r)
    # keys from the AWS chain keep the chain's hint
    r = castoff(
        "dest", "test", f"s3://{moto.bucket}/bad/?endpoint={moto.url}",
        env={"AWS_ACCESS_KEY_ID": "AKIAIOSFODNN7EXAMPLE", "AWS_SECRET_ACCESS_KEY": secret},
    )  # fmt: skip
    assert r.returncode == 1 and "AWS_ACCESS_KEY_ID or the profile" in text(r), text(r)


def test_a_bucket_that_fails_its_test_is_not_saved(castoff: Castoff, moto: MotoBucket) -> None:
    key, _ = moto.enable_write_only()
    r = add_bucket(castoff, "ark", moto, key, "FAKE-SECRET-0123456789")
    assert r.returncode == 1
    assert "the secret key is wrong" in text(r) and "not saved" in text(r)
    assert not castoff.config.exists() and "FAKE-SECRET" not in castoff.keyring()
    r = add_bucket(castoff, "ark", moto, key, "FAKE-SECRET-0123456789", "--no-test")
    assert r.returncode == 0, r.stderr
    assert "ark" in config(castoff)["destinations"]  # type: ignore[operator]
    assert all("FAKE-SECRET-0123456789" not in out for out in castoff.outputs)


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--bucket", "My_Bucket", "--region", "eu-west-1"], "contain only lowercase letters"),
        (
            ["--bucket", "b2-raw-shoots", "--provider", "b2", "--region", "us-west-004"],
            "not start with 'b2-'",
        ),
        (["--bucket", "goog-raw", "--provider", "gcs"], "not start with 'goog'"),
        (["--bucket", "raw", "--endpoint", "http://192.0.2.10:9000"], "plain HTTP to another computer"),
        (
            ["--bucket", "raw", "--endpoint", "https://s3.example.com", "--ca-bundle", "/no/such.pem"],
            "does not exist",
        ),
        (["--bucket", "raw", "--provider", "r2"], "needs --endpoint"),
        (["--bucket", "raw", "--max-parallel", "0"], "1 or more"),
    ],
)
def test_bad_settings_are_refused_before_any_request(castoff: Castoff, args: list[str], words: str) -> None:
    r = castoff(
        "dest", "add", "x", "s3", *args, "--access-key-id", "AKIAEXAMPLE", "--secret-stdin", input="s\n"
    )
    assert r.returncode == 2, r.stderr
    assert words in text(r)
    assert "Traceback" not in r.stderr
    assert not castoff.config.exists() and not castoff.keyring()


def test_a_bucket_name_warning_is_said_once(castoff: Castoff) -> None:
    """QA: 'bk' is too short for AWS (warned, not refused: another provider may take it); dest add
    said so twice, once as it checked the settings and again as it opened the bucket to save it."""
    r = castoff(
        "dest", "add", "arch", "s3", "--bucket", "bk", "--endpoint", "http://127.0.0.1:9", "--no-test"
    )
    assert r.returncode == 0, r.stderr
    assert text(r).count("'bk' is not a valid Amazon S3 name") == 1, r.stderr


def test_keys_or_characters_in_a_bucket_name_are_refused_before_any_job(
    castoff: Castoff, rclone_s3: RcloneBucket, card: Path
) -> None:
    """QA: ``s3://KEY:SECRET@bucket/`` only warned, then failed per file with a traceback (exit 1)
    and left the secret in the catalog and both reports; ``bk:t2`` and ``bk@t2`` the same. Now
    every command that takes a bucket refuses them (exit 2), the secret never shown nor kept."""
    key, secret = rclone_s3.access_key, rclone_s3.secret_key
    env = {"AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    in_url = f"s3://{key}:{secret}@{rclone_s3.bucket}/q/?endpoint={rclone_s3.url}"
    at = f"?endpoint={rclone_s3.url}"
    refused = [
        (["copy", str(card), "--to", in_url], "credentials in the s3:// URL are not accepted"),
        (["copy", str(card), "--to", f"s3://bk:t2/q/{at}"], "bad bucket name 'bk:t2'"),
        (["copy", str(card), "--to", f"s3://bk@t2/q/{at}"], "credentials in the s3:// URL"),
        (["dest", "add", "colon", "s3", "--bucket", "bk:t2", "--endpoint", rclone_s3.url], "bad bucket name"),
        (["dest", "add", "at", "s3", "--bucket", f"{key}:{secret}@b", "--endpoint-url", rclone_s3.url],
         "bad bucket name '***@b'"),
        (["dest", "test", in_url], "credentials in the s3:// URL"),
        (["workflow", "save", "w", "--to", in_url, "--source", str(card)], "credentials in the s3:// URL"),
        (["workflow", "save", "w", "--to", "s3://b!x/raw/"], "bad bucket name 'b!x'"),
    ]  # fmt: skip
    for args, words in refused:
        r = castoff(*args, env=env)
        out = text(r)
        assert r.returncode == 2 and words in out, (args, out)
        assert "Traceback" not in out and "warning" not in out, out
        assert secret not in out, out
    castoff.config.parent.mkdir(parents=True, exist_ok=True)
    castoff.config.write_text(f'[workflows.w]\nto = ["{in_url}"]\nsource = "{card}"\n')
    r = castoff("run", "w", env=env)
    assert r.returncode == 2 and "credentials in the s3:// URL" in text(r), text(r)
    castoff.config.write_text(f'[destinations.x]\ntype = "s3"\nbucket = "{key}:{secret}@b"\n')
    r = castoff("copy", str(card), "--to", "@x", env=env)
    assert r.returncode == 2 and "line 3: destinations.x.bucket: bad bucket name '***@b'" in text(r), text(r)
    assert all(secret not in out for out in castoff.outputs)
    assert not files_containing(secret, [castoff.state]) if castoff.state.exists() else True
    assert not (castoff.state / "reports").exists()
    assert objects(rclone_s3) == []


BUCKET = ["--bucket", "raw-bucket", "--endpoint", "http://127.0.0.1:9"]


@pytest.mark.parametrize(
    ("args", "words"),
    [
        (["--secret-stdin"], "--secret-stdin needs --access-key-id"),
        (["--secret-stdin", "--no-test"], "--secret-stdin needs --access-key-id"),
        (["--ask-secret", "--no-test"], "--ask-secret needs --access-key-id"),
        (
            ["--credential-command", "echo {}", "--access-key-id", "AKIAEXAMPLE", "--no-test"],
            "--credential-command conflicts with --access-key-id",
        ),
        (
            ["--credential-command", "echo {}", "--secret-stdin", "--no-test"],
            "--credential-command conflicts with --secret-stdin",
        ),
        (
            ["--credential-command", "echo {}", "--ask-secret", "--access-key-id", "AKIAEXAMPLE"],
            "--credential-command conflicts with --access-key-id, --ask-secret",
        ),
        (
            ["--access-key-id", "AKIAEXAMPLE", "--ask-secret", "--secret-stdin", "--no-test"],
            "--secret-stdin conflicts with --ask-secret --no-test",
        ),
        (["/tmp/a-folder", "--no-test"], "a bucket takes no folder"),
    ],
)
def test_key_options_that_conflict_or_miss_their_key_id_are_refused_before_anything_is_saved(
    castoff: Castoff, args: list[str], words: str
) -> None:
    """Before: each was dropped without a word (--secret-stdin alone saved a bucket on the AWS
    chain, its secret unread; --credential-command won over --access-key-id), exit 0."""
    r = castoff("dest", "add", "x", "s3", *args, *BUCKET, input="SECRET-NEVER-SAVED\n")
    assert r.returncode == 2, r.stderr
    assert words in text(r), text(r)
    assert "Traceback" not in r.stderr
    assert not castoff.config.exists() and not castoff.keyring()


def test_key_options_given_to_a_local_destination_are_refused(castoff: Castoff, tmp_path: Path) -> None:
    r = castoff("dest", "add", "ssd", "local", str(tmp_path / "ssd"), "--secret-stdin", input="s\n")
    assert r.returncode == 2 and "--secret-stdin is a bucket setting" in text(r), text(r)
    r = castoff("dest", "add", "ssd", "local", str(tmp_path / "ssd"), "--access-key-id", "A", "--ask-secret")
    assert r.returncode == 2 and "--access-key-id, --ask-secret are bucket settings" in text(r), text(r)
    assert not castoff.config.exists() and not castoff.keyring()


def test_credentials_options_that_conflict_are_refused_and_change_nothing(castoff: Castoff) -> None:
    r = castoff(
        "dest", "add", "ark", "s3", *BUCKET, "--access-key-id", "AKIAOLD", "--secret-stdin", "--no-test",
        input="SECRET-OLD\n",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    r = castoff(
        "dest", "add", "asky", "s3", *BUCKET, "--access-key-id", "AKIAASK", "--ask-secret", "--no-test"
    )
    assert r.returncode == 0, r.stderr
    before, kept = castoff.config.read_text(), castoff.keyring()
    for argv, words in [
        (["ark", "--forget", "--access-key-id", "AKIANEW"], "--forget conflicts with --access-key-id"),
        (
            ["ark", "--forget", "--secret-stdin", "--no-test"],
            "--forget conflicts with --secret-stdin, --no-test",
        ),
        (["ark", "--secret-stdin", "--no-test"], "--secret-stdin needs --access-key-id"),
        (["asky", "--access-key-id", "AKIANEW", "--secret-stdin"], "--secret-stdin conflicts with how @asky"),
    ]:
        r = castoff("dest", "credentials", *argv, input="SECRET-NEW\n")
        assert r.returncode == 2, (argv, r.stderr)
        assert words in text(r), (argv, text(r))
        assert castoff.config.read_text() == before and castoff.keyring() == kept
    assert "SECRET-NEW" not in kept


def test_plain_http_elsewhere_needs_insecure_http_and_says_it(castoff: Castoff, card: Path) -> None:
    url = "s3://raw/?endpoint=http://192.0.2.10:9000"
    r = castoff("copy", str(card), "--to", url)
    assert r.returncode == 2 and "unencrypted" in text(r)
    r = castoff(
        "dest",
        "add",
        "far",
        "s3",
        "--bucket",
        "raw",
        "--endpoint",
        "http://192.0.2.10:9000",
        "--insecure-http",
        "--no-test",
    )
    assert r.returncode == 0, r.stderr
    assert config(castoff)["destinations"]["far"]["insecure_http"] is True  # type: ignore[index]
    r = castoff("dest", "add", "legacy", "s3", "--bucket", "Old_Bucket", "--no-test")
    assert r.returncode == 0 and "legacy us-east-1 rules" in text(r)


def test_without_a_keyring_castoff_says_so_and_never_writes_the_secret(
    castoff: Castoff, rclone_s3: RcloneBucket, card: Path
) -> None:
    secret = rclone_s3.secret_key
    r = castoff(
        "dest", "add", "ark", "s3", "--bucket", rclone_s3.bucket, "--endpoint", rclone_s3.url,
        "--access-key-id", rclone_s3.access_key, "--secret-stdin",
        input=secret + "\n", env={"PYTHON_KEYRING_BACKEND": NO_KEYRING},
    )  # fmt: skip
    assert r.returncode == 2
    assert "no OS keyring is available here" in text(r) and "never writes secrets to a file" in text(r)
    assert not castoff.config.exists() and not castoff.keyring_file.exists()

    # saved where there is a keyring, then run where there is none: the AWS chain takes over
    assert add_bucket(castoff, "ark", rclone_s3, rclone_s3.access_key, secret).returncode == 0
    env = {
        "PYTHON_KEYRING_BACKEND": NO_KEYRING,
        "AWS_ACCESS_KEY_ID": rclone_s3.access_key,
        "AWS_SECRET_ACCESS_KEY": secret,
    }
    r = castoff("copy", str(card), "--to", "@ark", env=env)
    assert r.returncode == 0, r.stderr
    assert "no OS keyring here" in text(r) and "using the AWS chain instead" in text(r)
    assert "EOS_DIGITAL/CLIP.MP4" in objects(rclone_s3)


def test_dest_credentials_without_a_keyring_says_what_works_from_there(
    castoff: Castoff, rclone_s3: RcloneBucket
) -> None:
    """QA: ``dest credentials`` without an OS keyring gave dest add's hint (--profile,
    --credential-command, --ask-secret), options dest credentials does not take: it says how to
    save that bucket again with one of them, which works there."""
    bucket = ["--bucket", rclone_s3.bucket, "--endpoint", rclone_s3.url]
    assert castoff("dest", "add", "ark", "s3", *bucket, "--no-test").returncode == 0  # the AWS chain
    no_keyring = {"PYTHON_KEYRING_BACKEND": NO_KEYRING}
    r = castoff(
        "dest", "credentials", "ark", "--access-key-id", rclone_s3.access_key, "--secret-stdin",
        input=rclone_s3.secret_key + "\n", env=no_keyring,
    )  # fmt: skip
    assert r.returncode == 2 and "no OS keyring is available here" in text(r), text(r)
    hint = "castoff dest add ark s3 … --replace --access-key-id ID --ask-secret"
    assert hint in text(r) and "(--profile," not in text(r) and "(--credential-command)" not in text(r), text(
        r
    )
    r = castoff(
        "dest", "add", "ark", "s3", *bucket, "--replace", "--access-key-id", rclone_s3.access_key,
        "--ask-secret", "--no-test", env=no_keyring,
    )  # fmt: skip
    assert r.returncode == 0, text(r)
    assert config(castoff)["destinations"]["ark"]["credentials"] == "ask"  # type: ignore[index]


def test_replace_remove_and_rename_take_the_keys_along_or_change_nothing(
    castoff: Castoff, tmp_path: Path
) -> None:
    def add(name: str, secret: str) -> None:
        r = castoff(
            "dest", "add", name, "s3", "--bucket", "raw-bucket", "--access-key-id", "AKIAEXAMPLE",
            "--secret-stdin", "--no-test", input=secret + "\n",
        )  # fmt: skip
        assert r.returncode == 0, r.stderr

    def kept() -> dict[str, str]:
        return json.loads(castoff.keyring() or "{}")  # type: ignore[no-any-return]

    add("ark", "SECRET-ARK-1")
    before = castoff.config.read_text()
    no_keyring = {"PYTHON_KEYRING_BACKEND": NO_KEYRING}
    for argv, done in [
        (["dest", "remove", "ark"], "removed"),
        (["dest", "rename", "ark", "ark2"], "moved"),
        (["dest", "add", "ark", "local", str(tmp_path / "ssd"), "--replace", "--no-test"], "removed"),
        (["dest", "credentials", "ark", "--forget"], "removed"),
    ]:
        r = castoff(*argv, env=no_keyring)
        assert r.returncode == 2, (argv, r.stderr)
        assert f"the keys of @ark could not be {done}" in text(r) and "nothing was changed" in text(r)
        assert "where the keyring" in text(r)
        assert castoff.config.read_text() == before and "SECRET-ARK-1" in kept()["castoff/destination:ark"]

    assert castoff("dest", "rename", "ark", "ark2").returncode == 0
    assert list(kept()) == ["castoff/destination:ark2"]
    assert "ark2" in config(castoff)["destinations"]  # type: ignore[operator]
    r = castoff("dest", "add", "ark2", "local", str(tmp_path / "ssd"), "--replace", "--no-test")
    assert r.returncode == 0, r.stderr
    assert kept() == {}

    add("b", "SECRET-B")
    r = castoff(
        "dest", "add", "b", "s3", "--bucket", "raw-bucket", "--access-key-id", "AKIAEXAMPLE", "--ask-secret",
        "--no-test", "--replace",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert kept() == {}
    add("c", "SECRET-C")
    r = castoff("dest", "remove", "c")
    assert r.returncode == 0 and "and its keys from the keyring" in text(r)
    assert kept() == {}


def test_ask_secret_fails_at_once_unattended_and_asks_on_a_terminal(
    castoff: Castoff, rclone_s3: RcloneBucket, card: Path
) -> None:
    r = castoff(
        "dest", "add", "asky", "s3", "--bucket", rclone_s3.bucket, "--endpoint", rclone_s3.url,
        "--access-key-id", rclone_s3.access_key, "--ask-secret", "--no-test",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    saved = config(castoff)["destinations"]["asky"]  # type: ignore[index]
    assert saved["credentials"] == "ask" and saved["access_key_id"] == rclone_s3.access_key
    r = castoff("copy", str(card), "--to", "@asky")
    assert r.returncode == 2
    assert "asks for its secret at every run" in text(r) and "no terminal" in text(r)
    # QA: the hint said "castoff dest credentials NAME", NAME as such, which changes only the
    # key id of such a bucket: it names the bucket and what keeps its secret for a run unattended
    assert "castoff dest add asky s3 … --replace --access-key-id ID (without --ask-secret)" in text(r)
    assert "dest credentials" not in text(r) and "NAME" not in text(r), text(r)
    assert json.loads(castoff("jobs", "--json").stdout) == []  # failed before any job began
    assert objects(rclone_s3) == []

    code, out = castoff.in_terminal(
        "copy", str(card), "--to", "@asky", answers=[("Secret access key for @asky", rclone_s3.secret_key)]
    )
    assert code == 0, out
    assert rclone_s3.secret_key not in out  # typed without echo
    assert "EOS_DIGITAL/CLIP.MP4" in objects(rclone_s3)
    assert not files_containing(rclone_s3.secret_key, [castoff.root / "config", castoff.state])


def test_ctrl_d_at_a_secret_prompt_is_no_answer(castoff: Castoff) -> None:
    for argv, prompt in [
        (["dest", "add", "ark", "s3", "--bucket", "raw-bucket", "--access-key-id", "AKIAEXAMPLE"], "Secret"),
        (
            [
                "dest",
                "add",
                "ark",
                "s3",
                "--bucket",
                "raw-bucket",
                "--ask-secret",
                "--access-key-id",
                "AKIA0",
            ],
            "Secret",
        ),
    ]:
        code, out = castoff.in_terminal(*argv, answers=[(prompt, "\x04")])  # Ctrl-D
        assert code == 2, out
        assert "no secret was entered" in out and "Traceback" not in out
    assert not castoff.config.exists() and not castoff.keyring()


def test_a_credential_command_gives_the_keys(
    castoff: Castoff, rclone_s3: RcloneBucket, tmp_path: Path, card: Path
) -> None:
    script = tmp_path / "creds.py"
    script.write_text(
        "import json, os, sys\n"
        "if os.environ.get('FAIL'): print('SECRET-IN-OUTPUT'); sys.exit(3)\n"
        f"print(json.dumps({{'Version': 1, 'AccessKeyId': {rclone_s3.access_key!r},"
        f" 'SecretAccessKey': {rclone_s3.secret_key!r}}}))\n"
    )
    command = f"{sys.executable} {script}"
    r = castoff(
        "dest", "add", "cmd", "s3", "--bucket", rclone_s3.bucket, "--endpoint", rclone_s3.url,
        "--credential-command", command,
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    assert castoff("copy", str(card), "--to", "@cmd").returncode == 0
    assert "EOS_DIGITAL/CLIP.MP4" in objects(rclone_s3)
    r = castoff("copy", str(card), "--to", "@cmd", env={"FAIL": "1"})
    assert r.returncode == 2 and "failed with exit code 3" in text(r)
    assert "SECRET-IN-OUTPUT" not in text(r)


@pytest.mark.parametrize(
    ("version", "said"),
    [
        ("2", "Version 2"),
        ("'1'", "a Version that is not a number"),
        ("True", "a Version that is not"),
        (None, "no Version"),
    ],
)
def test_a_credential_command_printing_another_version_than_1_is_refused(
    castoff: Castoff, tmp_path: Path, version: str | None, said: str
) -> None:
    """QA: ``{"Version": 2, …}`` was taken; AWS's credential_process knows only Version 1."""
    script = tmp_path / "creds.py"
    fields = f"'Version': {version}, " if version is not None else ""
    script.write_text(
        "import json\n"
        f"print(json.dumps({{{fields}'AccessKeyId': 'AKIAEXAMPLE', 'SecretAccessKey': 'SECRET-PRINTED'}}))\n"
    )
    r = castoff(
        "dest", "add", "cmd", "s3", "--bucket", "raw", "--endpoint", "http://127.0.0.1:9",
        "--credential-command", f"{sys.executable} {script}",
    )  # fmt: skip
    assert r.returncode == 2, text(r)
    assert f"printed {said}" in text(r) and "credential_process JSON is Version 1" in text(r), text(r)
    assert "SECRET-PRINTED" not in text(r) and "Traceback" not in text(r)
    assert not castoff.config.exists()


# --- run and resume ---------------------------------------------------------------------------


def _wait_for(path: Path, proc: subprocess.Popen[str], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if proc.poll() is not None:
            raise AssertionError(f"the run ended before it could be interrupted: {proc.communicate()}")
        assert time.monotonic() < deadline, f"{path} did not appear"
        time.sleep(0.05)


def test_run_offers_to_resume_an_interrupted_run(
    castoff: Castoff, rclone_s3: RcloneBucket, tmp_path: Path
) -> None:
    src = tmp_path / "CARD"
    data = random.Random(9).randbytes(16 * 1024 * 1024)
    write(src / "BIG.MOV", data)
    assert castoff("dest", "add", "ssd", "local", str(tmp_path / "ssd")).returncode == 0
    assert add_bucket(castoff, "ark", rclone_s3, rclone_s3.access_key, rclone_s3.secret_key).returncode == 0
    r = castoff(
        "workflow", "save", "shoot", "--to", "@ssd", "--to", "@ark", "--source", str(src),
        "--part-size", "5M", "--bwlimit", "2M",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr

    proc = castoff.popen("run", "shoot")
    try:
        # the local copy is done at once; the upload, paced at 2 MB/s, is still going
        _wait_for(tmp_path / "ssd" / "CARD" / "BIG.MOV", proc)
    finally:
        proc.kill()
        proc.communicate(timeout=30)

    r = castoff("run", "shoot")  # unattended, no flag: say what to do
    assert r.returncode == 2
    assert "was interrupted" in text(r) and "--resume" in text(r) and "--new" in text(r)

    code, out = castoff.in_terminal("run", "shoot", "--bwlimit", "1G", answers=[("Resume it [R]", "r")])
    assert code == 0, out
    assert "resuming 'shoot'" in " ".join(out.split())
    report = json.loads(sorted((castoff.state / "reports").glob("*.json"))[-1].read_text())
    big = next(f for f in report["files"] if f["path"].endswith("BIG.MOV"))
    statuses = {d["destination"]: d["status"] for d in big["destinations"]}
    assert statuses["@ark"] == "verified" and statuses["@ssd"] in ("skipped", "already"), statuses
    got = rclone_s3.client.get_object(Bucket=rclone_s3.bucket, Key="CARD/BIG.MOV")["Body"].read()
    assert got == data
    assert "done" in castoff("workflow", "list").stdout

    r = castoff("run", "shoot", "--resume", "--bwlimit", "1G")  # nothing to resume: runs, all skipped
    assert r.returncode == 0 and "nothing to resume" in text(r)


def test_resume_and_new_unattended(castoff: Castoff, tmp_path: Path, card: Path) -> None:
    assert castoff("dest", "add", "ssd", "local", str(tmp_path / "ssd")).returncode == 0
    assert castoff("workflow", "save", "w", "--to", "@ssd").returncode == 0
    r = castoff("run", "w")
    assert r.returncode == 2 and "no saved source" in text(r)
    assert castoff("run", "w", str(card)).returncode == 0
    # mark that run interrupted, as a killed process leaves it
    with sqlite3.connect(castoff.state / "catalog.sqlite") as db:
        db.execute("UPDATE jobs SET status='interrupted'")
    code, out = castoff.in_terminal("run", "w", answers=[("Resume it [R]", "\x04")])  # Ctrl-D: quit
    assert code == 130 and "nothing was run" in out and "Traceback" not in out, out
    other = tmp_path / "OTHER"
    write(other / "x.txt", b"x")
    r = castoff("run", "w", str(other), "--resume")
    assert r.returncode == 2, text(r)
    assert (
        f"nothing to resume on {other}: 'w' never ran on it; the run of 'w' on {card} was interrupted"
        in text(r)
    )
    assert f"castoff run w {card} --resume finishes that one" in text(r)
    r = castoff("run", "w", str(other), "--new")
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "ssd" / "OTHER" / "x.txt").exists()


def _interrupt(castoff: Castoff, job_id: str) -> None:
    """Mark a job interrupted, as a killed process leaves it."""
    with sqlite3.connect(castoff.state / "catalog.sqlite") as db:
        db.execute("UPDATE jobs SET status='interrupted' WHERE id=?", (job_id,))


def _last_job(castoff: Castoff) -> dict[str, object]:
    newest: dict[str, object] = json.loads(castoff("jobs", "--json").stdout)[0]
    return newest


def test_resume_finishes_the_job_as_it_ran_after_the_workflow_was_edited(
    castoff: Castoff, tmp_path: Path, card: Path
) -> None:
    """QA: 'castoff run w --resume' after 'workflow edit w --layout date' copied every file again
    in the new layout (saying it resumed), and the interrupted job's copies were in no ASC MHL
    generation: 'castoff verify' of the drive failed. It finishes the job with the layout and
    destinations it ran with, says what changed, and the next plain run says it places anew."""
    ssd = tmp_path / "ssd"
    assert castoff("dest", "add", "ssd", "local", str(ssd)).returncode == 0
    assert castoff("workflow", "save", "w", "--to", "@ssd", "--source", str(card)).returncode == 0
    assert castoff("run", "w").returncode == 0
    _interrupt(castoff, str(_last_job(castoff)["id"]))
    write(card / "DCIM" / "IMG_0009.CR3", b"not copied before the kill")  # what the job had left
    assert castoff("dest", "add", "nas", "local", str(tmp_path / "nas")).returncode == 0
    r = castoff("workflow", "edit", "w", "--layout", "date", "--to", "@ssd", "--to", "@nas")
    assert r.returncode == 0, r.stderr

    r = castoff("run", "w", "--resume")
    assert r.returncode == 0, text(r)
    assert "as it ran" in text(r) and "(layout none → layout date; @nas added)" in text(r), text(r)
    assert sorted(p.name for p in ssd.iterdir()) == ["EOS_DIGITAL", "ascmhl"]  # no date folder
    assert (ssd / "EOS_DIGITAL" / "DCIM" / "IMG_0009.CR3").read_bytes() == b"not copied before the kill"
    assert not (tmp_path / "nas").exists()
    assert castoff("verify", str(ssd)).returncode == 0
    resumed = _last_job(castoff)
    assert resumed["options"]["workflow"] == {}  # type: ignore[index]
    assert [d["spec"] for d in resumed["destinations"]] == ["@ssd"]  # type: ignore[attr-defined]

    r = castoff("run", "w")  # the workflow as it is now: placed anew, and said so
    assert r.returncode == 0, text(r)
    said = (
        f"the layout of 'w' differs from its last run on {card} (job {resumed['id']} placed files by"
        " layout none; this run by layout date): every file is placed anew at each destination"
    )
    assert said in text(r)
    assert any(p.name[:2] == "20" for p in ssd.iterdir())
    with sqlite3.connect(castoff.state / "catalog.sqlite") as db:
        logged = [m for (m,) in db.execute("SELECT message FROM events WHERE level='warning'")]
    assert any(said in " ".join(m.split()) for m in logged), logged
    r = castoff("run", "w")
    assert r.returncode == 0 and "differs from its last run" not in text(r)


def test_an_option_given_to_the_killed_run_or_to_the_resume_is_no_change_of_the_workflow(
    castoff: Castoff, tmp_path: Path, card: Path
) -> None:
    """QA N #6: a run killed with --chunk-size on its command line, resumed with 'castoff run w
    --resume' (or the reverse), said "the workflow has changed since (options changed:
    --chunk-size)": nobody had edited the workflow. The resumed job uses what the killed run
    used, says the option given to that run as such, and an option given to the resume as given
    now; an edit of the workflow is still said."""
    assert castoff("dest", "add", "ssd", "local", str(tmp_path / "ssd")).returncode == 0
    assert castoff("workflow", "save", "w", "--to", "@ssd", "--source", str(card)).returncode == 0
    assert castoff("run", "w", "--chunk-size", "8M").returncode == 0
    _interrupt(castoff, str(_last_job(castoff)["id"]))
    r = castoff("run", "w", "--resume")
    assert r.returncode == 0, text(r)
    assert "as it ran (with --chunk-size 8M, given to that run):" in text(r), text(r)
    assert "changed" not in text(r), text(r)
    resumed = _last_job(castoff)
    assert resumed["options"]["workflow"] == {"chunk_size": "8M"}  # type: ignore[index]
    assert resumed["options"]["chunk_size"] == 8 * 1024 * 1024  # type: ignore[index]

    _interrupt(castoff, str(resumed["id"]))  # that one killed too: resumed with another value
    r = castoff("run", "w", "--resume", "--chunk-size", "4M")
    assert r.returncode == 0, text(r)
    assert "as it ran (--chunk-size 4M as given now):" in text(r) and "changed" not in text(r), text(r)
    assert _last_job(castoff)["options"]["chunk_size"] == 4 * 1024 * 1024  # type: ignore[index]

    assert castoff("run", "w").returncode == 0  # the reverse: killed without it, resumed with it
    _interrupt(castoff, str(_last_job(castoff)["id"]))
    r = castoff("run", "w", "--resume", "--chunk-size", "8M")
    assert r.returncode == 0, text(r)
    assert "as it ran (--chunk-size 8M as given now):" in text(r) and "changed" not in text(r), text(r)
    _interrupt(castoff, str(_last_job(castoff)["id"]))
    r = castoff("run", "w", "--resume")
    assert "as it ran (with --chunk-size 8M, given to that run):" in text(r) and "changed" not in text(r)

    assert castoff("run", "w").returncode == 0  # an edit of the workflow is one, and said
    _interrupt(castoff, str(_last_job(castoff)["id"]))
    assert castoff("workflow", "edit", "w", "--on-conflict", "skip").returncode == 0
    r = castoff("run", "w", "--resume", "--chunk-size", "4M")
    assert r.returncode == 0, text(r)
    assert "the workflow has changed since (options changed: --on-conflict)" in text(r), text(r)


def test_resume_refuses_what_it_cannot_finish_as_it_ran(castoff: Castoff, tmp_path: Path, card: Path) -> None:
    """A destination no longer saved, or a job of a castoff that did not record its options
    whose destinations changed: refused (exit 2), naming what changed and the choices."""
    for name in ("ssd", "nas"):
        assert castoff("dest", "add", name, "local", str(tmp_path / name)).returncode == 0
    assert (
        castoff("workflow", "save", "w", "--to", "@ssd", "--to", "@nas", "--source", str(card)).returncode
        == 0
    )
    assert castoff("run", "w").returncode == 0
    job = str(_last_job(castoff)["id"])
    _interrupt(castoff, job)
    assert castoff("workflow", "edit", "w", "--to", "@ssd").returncode == 0
    assert castoff("dest", "remove", "nas").returncode == 0
    r = castoff("run", "w", "--resume")
    assert r.returncode == 2, text(r)
    assert f"job {job} of 'w' cannot be resumed as it ran: its destination @nas is no longer saved" in text(r)
    assert "castoff run w --new" in text(r)

    assert castoff("dest", "add", "nas", "local", str(tmp_path / "nas")).returncode == 0
    with sqlite3.connect(castoff.state / "catalog.sqlite") as db:  # as a castoff before it left it
        db.execute("UPDATE jobs SET options=json_remove(options, '$.workflow')")
    r = castoff("run", "w", "--resume")
    assert r.returncode == 2, text(r)
    assert "its destinations have changed since (@nas removed)" in text(r)
    assert "castoff workflow edit w --to @ssd --to @nas" in text(r)
    r = castoff("run", "w", "--new")
    assert r.returncode == 0, text(r)


def test_resume_finds_the_interrupted_run_of_the_source_being_run(
    castoff: Castoff, tmp_path: Path, card: Path
) -> None:
    """QA: one workflow on two readers; 'castoff run w --resume' looked at the workflow's newest
    job only, and said "nothing to resume" while the run on the other reader was interrupted."""
    other = tmp_path / "EOS_DIGITAL1"
    write(other / "DCIM" / "IMG_0100.CR3", b"the second card")
    assert (
        castoff("workflow", "save", "w", "--to", str(tmp_path / "ssd"), "--source", str(card)).returncode == 0
    )
    assert castoff("run", "w").returncode == 0
    first = str(_last_job(castoff)["id"])
    _interrupt(castoff, first)
    assert castoff("run", "w", str(other)).returncode == 0  # the other reader's run, newer, done
    r = castoff("run", "w", "--resume")  # the saved source's run is the one to finish
    assert r.returncode == 0, text(r)
    assert f"resuming 'w' (job {first}" in text(r)

    second = str(_last_job(castoff)["id"])
    assert castoff("run", "w", str(other)).returncode == 0
    _interrupt(castoff, str(_last_job(castoff)["id"]))
    assert castoff("run", "w").returncode == 0  # the saved source: not the one interrupted
    r = castoff("run", "w", "--resume")
    assert r.returncode == 2, text(r)
    assert f"nothing to resume on {card}: its last run (job" in text(r)
    assert f"was not interrupted; the run of 'w' on {other} was interrupted" in text(r)
    assert f"castoff run w {other} --resume finishes that one" in text(r)
    r = castoff("run", "w", str(other), "--resume")
    assert r.returncode == 0 and "resuming 'w'" in text(r), text(r)
    assert second != str(_last_job(castoff)["id"])


# --- secrets never leak -----------------------------------------------------------------------


def test_a_secret_never_appears_in_files_or_output(
    castoff: Castoff, rclone_s3: RcloneBucket, tmp_path: Path, card: Path
) -> None:
    secret = rclone_s3.secret_key
    fake = "CASTOFF-FAKE-SECRET-7f3a9c"
    ssd = tmp_path / "ssd"
    assert castoff("dest", "add", "ssd", "local", str(ssd)).returncode == 0
    assert add_bucket(castoff, "ark", rclone_s3, rclone_s3.access_key, secret).returncode == 0
    assert castoff("--debug", "dest", "test", "ark").returncode == 0
    assert (
        castoff("workflow", "save", "w", "--to", "@ssd", "--to", "@ark", "--source", str(card)).returncode
        == 0
    )
    assert castoff("--debug", "run", "w").returncode == 0
    assert castoff("--debug", "run", "w", "--rehash", "--json").returncode == 0
    r = castoff(
        "--debug", "copy", str(card), "--to", "@ark", "--to", "@ark"
    )  # an error after the keys are read
    assert r.returncode == 2 and "Traceback" in r.stderr
    r = castoff("--debug", "copy", str(card), "--to", "@ark", "--memory", "1K")
    assert r.returncode == 2
    # a wrong secret, failing against the real server, with --debug
    assert castoff("dest", "credentials", "ark", "--access-key-id", rclone_s3.access_key,
                   "--secret-stdin", "--no-test", input=fake + "\n").returncode == 0  # fmt: skip
    write(card / "DCIM" / "IMG_0100.CR3", os.urandom(2000))  # a new file: the bucket is asked
    r = castoff("--debug", "run", "w", "--include", "IMG_0100.CR3")
    assert r.returncode == 1 and "wrong secret key" in text(r), text(r)
    # the same command alone meets the same wrong key: fix it first
    assert "Fix what is said above of the destination that stopped, then re-run" in text(r), text(r)
    r = castoff("--debug", "dest", "test", "ark")
    assert r.returncode == 1 and "secret key is wrong" in text(r)
    castoff("jobs")
    castoff("jobs", "show", json.loads(castoff("jobs", "--json").stdout)[0]["id"])
    castoff("uploads")
    for s in (secret, fake):
        assert not files_containing(s, [castoff.root / "config", castoff.state, ssd]), s
        assert all(s not in out for out in castoff.outputs), s
        assert all(s not in arg for argv in castoff.argvs for arg in argv)
    assert fake in castoff.keyring()  # where it is meant to be, and only there


# --- help, completion, demo -------------------------------------------------------------------


HELP_COMMANDS = [
    ["copy"], ["jobs"], ["uploads"], ["dest"], ["dest", "add"], ["dest", "list"], ["dest", "show"],
    ["dest", "test"], ["dest", "credentials"], ["dest", "remove"], ["dest", "rename"], ["workflow"],
    ["workflow", "save"], ["workflow", "list"], ["workflow", "show"], ["workflow", "edit"],
    ["workflow", "remove"], ["run"], ["completion"], ["demo"],
]  # fmt: skip


def test_every_command_has_help_with_an_example() -> None:
    parser = build_parser()
    for command in HELP_COMMANDS:
        sub = parser
        for word in command:
            sub = subparser(sub, word)
        shown = sub.format_help()
        assert "example" in shown and "castoff " + command[0] in shown, command


def test_help_is_printed_by_the_command(castoff: Castoff) -> None:
    r = castoff("dest", "add", "--help")
    assert r.returncode == 0 and "castoff dest add ssd local" in r.stdout


def completions(castoff: Castoff, tmp_path: Path, line: str) -> list[str]:
    """What bash completion offers for ``line`` (argcomplete, as the shell asks it)."""
    out = tmp_path / "completions"
    out.unlink(missing_ok=True)
    castoff(
        env={
            "_ARGCOMPLETE": "1",
            "COMP_LINE": line,
            "COMP_POINT": str(len(line)),
            "_ARGCOMPLETE_STDOUT_FILENAME": str(out),
            "_ARGCOMPLETE_IFS": "\n",
        }
    )
    return out.read_text().split()


def test_shell_completion_scripts_and_saved_names(castoff: Castoff, tmp_path: Path) -> None:
    for shell in ("bash", "zsh", "fish"):
        r = castoff("completion", shell)
        assert r.returncode == 0 and "castoff" in r.stdout and "_ARGCOMPLETE" in r.stdout
    assert castoff("dest", "add", "ssd", "local", str(tmp_path / "ssd")).returncode == 0
    assert castoff("workflow", "save", "shoot", "--to", "@ssd").returncode == 0

    def complete(line: str) -> list[str]:
        return completions(castoff, tmp_path, line)

    assert complete("castoff run ") == ["shoot"]
    assert "@ssd" in complete("castoff workflow save w2 --to @")
    assert "workflow" in complete("castoff wo")


def test_jobs_show_completes_a_job_id_and_run_needs_only_a_name(
    castoff: Castoff, tmp_path: Path, card: Path
) -> None:
    """QA: ``castoff jobs show <TAB>`` completed nothing (nor ``uploads abort``), and ``castoff
    run`` alone said "required: NAME, SOURCE", where SOURCE is optional (the saved one)."""

    def complete(line: str) -> list[str]:
        return completions(castoff, tmp_path, line)

    assert complete("castoff jobs show ") == []  # no catalog yet: nothing, and none is made
    assert not (castoff.state / "catalog.sqlite").exists()
    assert castoff("copy", str(card), "--to", str(tmp_path / "ssd"), "--quiet").returncode == 0
    [job] = json.loads(castoff("jobs", "--json").stdout)
    assert complete("castoff jobs show ") == [job["id"]]
    assert complete(f"castoff jobs show {job['id'][:4]}") == [job["id"]]
    assert complete("castoff uploads abort ") == []  # none unfinished
    r = castoff("run")
    assert r.returncode == 2 and "required: NAME" in r.stderr and "SOURCE" not in r.stderr.splitlines()[-1]


@pytest.mark.skipif(shutil.which("bash") is None, reason="needs bash")
def test_bash_completes_a_saved_name_with_its_at(castoff: Castoff, tmp_path: Path) -> None:
    """QA: bash has '@' in COMP_WORDBREAKS, argcomplete cut the candidates after it, but bash
    replaces the '@' too (one of readline's special prefixes): '--to @ss<TAB>' became '--to ssd',
    which copies into a folder ssd. The script is run as bash runs it on TAB."""
    for name in ("ssd", "ssd2"):
        assert castoff("dest", "add", name, "local", str(tmp_path / name)).returncode == 0
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "castoff").write_text(f'#!/bin/sh\nexec {sys.executable} -m castoff "$@"\n')
    (bin_dir / "castoff").chmod(0o755)
    script = castoff("completion", "bash").stdout
    test = """
        eval "$SCRIPT"
        complete -p castoff
        COMP_WORDBREAKS=$' \\t\\n"\\'@><=;|&(:'
        for line in "castoff copy card --to @ss" "castoff copy card --to @" "castoff workflow save w --to @s"
        do
            COMP_LINE="$line" COMP_POINT=${#line} COMP_TYPE=9
            read -ra COMP_WORDS <<< "${line//@/ @ }"
            COMP_CWORD=$(( ${#COMP_WORDS[@]} - 1 ))
            _python_argcomplete castoff "${COMP_WORDS[-1]}" "${COMP_WORDS[-2]}"
            echo "${COMPREPLY[*]}"
        done
    """
    env = {**castoff.environ(), "SCRIPT": script, "PATH": f"{bin_dir}{os.pathsep}{os.environ['PATH']}"}
    done = subprocess.run(
        ["bash", "--norc", "-c", test], capture_output=True, text=True, env=env, check=False
    )
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].startswith("complete ") and "-F _python_argcomplete castoff" in lines[0]
    assert lines[1:] == ["@ssd @ssd2"] * 3, done.stdout


@pytest.mark.slow
def test_demo_offloads_a_sample_card_through_a_saved_workflow(castoff: Castoff, tmp_path: Path) -> None:
    out = tmp_path / "demo-out"
    r = castoff("demo", "--out", str(out), timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Reports:" in r.stdout
    saved = tomllib.loads((out / "config.toml").read_text())
    assert saved["workflows"]["offload"]["to"] == ["@ssd", "@nas", "@bucket"]
    report = json.loads(next((out / "state" / "reports").glob("*.json")).read_text())
    assert {d["status"] for f in report["files"] for d in f["destinations"]} == {"verified"}
    bucket = (
        out / "bucket-data" / "demo-bucket" / "raw-shoots" / "EOS_DIGITAL" / "PRIVATE" / "M4ROOT" / "CLIP"
    )
    card = out / "EOS_DIGITAL"
    for clip in ("C0001.MP4", "C0002.MP4"):  # the big one went up as a multipart upload
        source = card / "PRIVATE" / "M4ROOT" / "CLIP" / clip
        assert (bucket / clip).read_bytes() == source.read_bytes()
    assert (bucket / "C0002.MP4").stat().st_size > 48 * 1024 * 1024
    assert {f["capture"]["source"] for f in report["files"] if f["path"].endswith(".CR3")} == {"exif"}
    assert not castoff.config.exists()  # the user's (here: the test's) config is not touched


def test_demo_never_clears_a_folder_it_did_not_make(castoff: Castoff, tmp_path: Path) -> None:
    precious = tmp_path / "precious"
    write(precious / "Photos" / "IMG_1.JPG", b"x")
    r = castoff("demo", "--out", str(precious))
    assert r.returncode == 2, r.stdout + r.stderr
    assert "is not empty and was not made by castoff demo" in text(r) and "another --out" in text(r)
    assert (precious / "Photos" / "IMG_1.JPG").read_bytes() == b"x"
    a_file = tmp_path / "notes.txt"
    a_file.write_text("mine")
    r = castoff("demo", "--out", str(a_file))
    assert r.returncode == 2 and "is a file, not a folder" in text(r)
    assert "Traceback" not in r.stderr and a_file.read_text() == "mine"


def test_demo_clears_only_its_own_folder_on_the_next_run(tmp_path: Path) -> None:
    from castoff import demo

    out = tmp_path / "demo-out"
    demo.prepare(out)  # a new folder: made, and marked as the demo's
    write(out / "EOS_DIGITAL" / "DCIM" / "IMG_1.JPG", b"x")
    (out / "rclone.log").write_text("log")
    demo.prepare(out)  # the demo's own: emptied for the next run, the marker kept
    assert [p.name for p in out.iterdir()] == [demo.MARKER]
    empty = tmp_path / "empty"
    empty.mkdir()
    demo.prepare(empty)
    assert (empty / demo.MARKER).is_file()


def test_dest_show_names_the_provider_once(castoff: Castoff) -> None:
    r = castoff(
        "dest", "add", "b2", "s3", "--bucket", "studio-raw", "--provider", "b2", "--region", "us-west-004",
        "--no-test",
    )  # fmt: skip
    assert r.returncode == 0, r.stderr
    shown = castoff("dest", "show", "b2").stdout
    assert "b2 (Backblaze B2)" in shown, shown
    assert shown.count("provider") == 1, shown  # was twice: the saved name, then the table's title
    assert "4.8 MiB to 4.7 GiB" in shown  # what the provider table adds is still shown
    doc = json.loads(castoff("dest", "show", "b2", "--json").stdout)
    assert doc["provider"] == "b2" and doc["from_the_provider_table"]["provider"] == "Backblaze B2"
    # QA: keys with spaces, where every other key of castoff's JSON is snake_case
    assert doc["from_the_provider_table"]["part_sizes"].startswith("4.8 MiB to 4.7 GiB"), doc
    assert not [k for k in (*doc, *doc["from_the_provider_table"]) if " " in k], doc


def test_dest_add_takes_every_provider_a_url_takes(
    castoff: Castoff, rclone_s3: RcloneBucket, card: Path
) -> None:
    """QA: ``--provider rclone`` was refused (invalid choice) although provider=rclone works in a
    URL and in the config file, and the README says a saved destination takes the same options."""
    r = add_bucket(
        castoff, "rc", rclone_s3, rclone_s3.access_key, rclone_s3.secret_key,
        "--provider", "rclone", "--part-size", "1MiB",
    )  # fmt: skip
    assert r.returncode == 0, text(r)
    assert config(castoff)["destinations"]["rc"]["provider"] == "rclone"  # type: ignore[index]
    assert "rclone (rclone serve s3)" in cells(castoff("dest", "show", "rc"))
    assert castoff("copy", str(card), "--to", "@rc").returncode == 0
    assert len(objects(rclone_s3)) == 5


def test_max_parallel_small_is_one_option_in_a_url_the_config_and_dest_add(
    castoff: Castoff, rclone_s3: RcloneBucket, card: Path
) -> None:
    """QA: ``max_parallel_small`` worked in a URL, but in config.toml it was an unknown setting
    (exit 2), and dest add had no flag for it."""
    from castoff.config.resolve import Resolver

    r = add_bucket(
        castoff, "rc", rclone_s3, rclone_s3.access_key, rclone_s3.secret_key, "--max-parallel-small", "2"
    )
    assert r.returncode == 0, text(r)
    assert config(castoff)["destinations"]["rc"]["max_parallel_small"] == 2  # type: ignore[index]
    assert "max_parallel_small 2" in cells(castoff("dest", "show", "rc"))
    castoff.config.write_text(
        castoff.config.read_text().replace("max_parallel_small = 2", "max_parallel_small = 3")
    )
    res = Resolver(castoff.config)
    assert res.checked_options(res.saved("rc")).max_parallel_small == 3
    assert castoff("copy", str(card), "--to", "@rc").returncode == 0
    assert len(objects(rclone_s3)) == 5
    castoff.config.write_text(
        castoff.config.read_text().replace("max_parallel_small = 3", "max_parallel_small = 0")
    )
    r = castoff("dest", "show", "rc")
    assert r.returncode == 2 and "destinations.rc.max_parallel_small: bad value" in text(r), text(r)
    r = add_bucket(castoff, "x", rclone_s3, "k", "s", "--max-parallel-small", "0", "--no-test")
    assert r.returncode == 2 and "--max-parallel-small: must be 1 or more" in text(r), text(r)


def test_an_access_key_id_is_shown_the_same_way_everywhere(castoff: Castoff) -> None:
    """QA: dest show of an --ask-secret bucket showed the key id whole in one row and as
    ``QAKE…`` in the next. Everywhere it is shown, it is its first four characters."""
    key = "AKIAEXAMPLEKEYID7788"
    r = castoff(
        "dest", "add", "ask", "s3", "--bucket", "raw", "--endpoint", "http://127.0.0.1:9",
        "--access-key-id", key, "--ask-secret", "--no-test",
    )  # fmt: skip
    assert r.returncode == 0, text(r)
    assert config(castoff)["destinations"]["ask"]["access_key_id"] == key  # type: ignore[index]
    shown = cells(castoff("dest", "show", "ask"))
    assert "access_key_id AKIA…" in shown and "(key AKIA…)" in shown, shown
    assert json.loads(castoff("dest", "show", "ask", "--json").stdout)["access_key_id"] == "AKIA…"
    assert json.loads(castoff("dest", "list", "--json").stdout)[0]["access_key_id"] == "AKIA…"
    r = castoff("dest", "credentials", "ask", "--access-key-id", "AKIAOTHERKEYID5566")
    assert r.returncode == 0 and "key AKIA… at every run" in text(r), text(r)
    assert all(key not in out and "AKIAOTHERKEYID5566" not in out for out in castoff.outputs)


def test_a_destination_renamed_by_hand_says_where_its_keys_may_be(castoff: Castoff, card: Path) -> None:
    """QA: after a rename in config.toml by hand, '@y: its keys are not in the keyring' said
    nothing of the keys left under the old name."""
    r = castoff(
        "dest", "add", "x", "s3", "--bucket", "raw", "--endpoint", "http://127.0.0.1:9",
        "--access-key-id", "AKIAEXAMPLE", "--secret-stdin", "--no-test", input="s\n",
    )  # fmt: skip
    assert r.returncode == 0, text(r)
    castoff.config.write_text(castoff.config.read_text().replace("[destinations.x]", "[destinations.y]"))
    r = castoff("copy", str(card), "--to", "@y")
    assert r.returncode == 2, text(r)
    assert "@y: its keys are not in the keyring" in text(r)
    assert "set them with: castoff dest credentials y" in text(r)
    assert "renamed by hand" in text(r) and "'castoff dest rename' takes them along" in text(r), text(r)
