"""``castoff copy --layout/--template/--metadata`` end to end: a sample card to a local folder and
to a bucket on the moto server (write-only key), read back with the admin client."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

from castoff.samples import make_sample_card
from castoff_cli import CASTOFF, run_castoff
from engine_runner import write


def bucket_url(moto: Any, prefix: str = "shoots/") -> str:
    return f"s3://{moto.bucket}/{prefix}?endpoint={moto.url}&region=us-east-1&addressing=path"


def write_only_env(moto: Any) -> dict[str, str]:
    key, secret = moto.enable_write_only()
    return {**os.environ, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}


def latest_report(state: Path) -> dict[str, Any]:
    path = max((state / "reports").glob("*.json"), key=lambda p: p.stat().st_mtime_ns)
    return json.loads(path.read_text())  # type: ignore[no-any-return]


def keys(moto: Any) -> set[str]:
    listed = moto.admin_client().list_objects_v2(Bucket=moto.bucket)
    return {o["Key"] for o in listed.get("Contents", [])}


def test_date_layout_to_a_folder_and_a_bucket_with_metadata_both(tmp_path: Path, moto: Any) -> None:
    card = make_sample_card(tmp_path / "EOS_DIGITAL")
    state, out = tmp_path / "state", tmp_path / "ssd"
    env = write_only_env(moto)
    args = [
        "copy",
        str(card),
        "--to",
        str(out),
        "--to",
        bucket_url(moto),
        "--layout",
        "date",
        "--metadata",
        "both",
    ]
    r = run_castoff(*args, "--quiet", state=state, env=env)
    assert r.returncode == 0, r.stderr

    assert (out / "2024-05-17" / "IMG_0001.CR3").read_bytes() == (
        card / "DCIM/100CANON/IMG_0001.CR3"
    ).read_bytes()
    assert (out / "2024-05-17" / "IMG_0001.XMP").is_file()  # the sidecar beside its original
    assert (out / "2024-05-18" / "C0001.LRV").is_file()
    assert not list(out.rglob("*.castoff.json"))  # sidecar objects are for buckets

    names = keys(moto)
    assert "shoots/2024-05-17/IMG_0001.CR3" in names
    assert "shoots/2024-05-17/IMG_0001.CR3.castoff.json" in names
    assert "shoots/2024-05-18/C0001.WAV" in names
    n_files = sum(1 for p in card.rglob("*") if p.is_file())
    assert len(names) == 2 * n_files

    admin = moto.admin_client()
    head = admin.head_object(Bucket=moto.bucket, Key="shoots/2024-05-17/IMG_0001.CR3")
    meta = head["Metadata"]
    assert meta["capture-time"] == "2024-05-17T09:00:00+02:00"
    assert meta["capture-source"] == "exif"
    assert meta["device"] == "Canon EOS R5"
    assert meta["original-path"] == "EOS_DIGITAL/DCIM/100CANON/IMG_0001.CR3"
    assert len(meta["blake3"]) == 64 and "mtime" in meta

    body = admin.get_object(Bucket=moto.bucket, Key="shoots/2024-05-17/IMG_0001.XMP.castoff.json")[
        "Body"
    ].read()
    doc = json.loads(body)
    assert doc["schema"] == "castoff.sidecar/1"
    assert doc["sidecar_of"] == "IMG_0001.CR3"
    assert doc["capture"] == {"time": "2024-05-17T09:00:00+02:00", "source": "exif"}
    assert doc["layout_path"] == "2024-05-17/IMG_0001.XMP"

    report = latest_report(state)
    assert report["schema"] == "castoff.report/2"
    by_path = {f["path"]: f for f in report["files"]}
    mov = by_path["EOS_DIGITAL/Phone/IMG_4242.MOV"]
    assert mov["capture"]["source"] == "quicktime"
    assert mov["capture"]["device"] == "Apple iPhone 15 Pro"
    assert mov["capture"]["layout_path"] == "2024-05-19/IMG_4242.MOV"
    txt = by_path["EOS_DIGITAL/notes/shot list.txt"]
    assert txt["capture"]["source"] == "mtime"
    bucket_entry = next(d for d in mov["destinations"] if d["destination"].startswith("s3://"))
    assert bucket_entry["metadata_sidecar"]["status"] == "verified"
    assert bucket_entry["metadata_sidecar"]["key"] == "shoots/2024-05-19/IMG_4242.MOV.castoff.json"

    # A re-run: every file skipped, every sidecar known to be there; nothing sent again.
    r = run_castoff(*args, "--quiet", state=state, env=env)
    assert r.returncode == 0, r.stderr
    again = latest_report(state)
    statuses = {d["status"] for f in again["files"] for d in f["destinations"]}
    assert statuses == {"skipped"}
    side = {
        d["metadata_sidecar"]["status"]
        for f in again["files"]
        for d in f["destinations"]
        if d["metadata_sidecar"]
    }
    assert side == {"already"}


def test_what_does_not_fit_in_object_metadata_goes_to_a_sidecar(tmp_path: Path, moto: Any) -> None:
    deep = tmp_path / "CARD" / "/".join(["f" * 200] * 10)
    deep.mkdir(parents=True)
    (deep / "long.txt").write_bytes(b"a long way down")
    (tmp_path / "CARD" / "short.txt").write_bytes(b"near the top")
    state = tmp_path / "state"
    env = write_only_env(moto)
    r = run_castoff(
        "copy", str(tmp_path / "CARD"), "--to", bucket_url(moto), "--layout", "type", state=state, env=env
    )
    assert r.returncode == 0, r.stderr
    assert keys(moto) == {
        "shoots/Other/long.txt",
        "shoots/Other/long.txt.castoff.json",
        "shoots/Other/short.txt",
    }
    admin = moto.admin_client()
    meta = admin.head_object(Bucket=moto.bucket, Key="shoots/Other/long.txt")["Metadata"]
    assert "original-path" not in meta and meta["capture-source"] == "mtime"
    doc = json.loads(
        admin.get_object(Bucket=moto.bucket, Key="shoots/Other/long.txt.castoff.json")["Body"].read()
    )
    assert doc["original_path"].endswith("/long.txt") and len(doc["original_path"]) > 2000
    assert doc["left_out_of_object_metadata"] == ["original-path"]
    report = {f["path"].rsplit("/", 1)[-1]: f for f in latest_report(state)["files"]}
    entry = report["long.txt"]["destinations"][0]
    assert "original-path did not fit in the object" in entry["detail"]
    assert entry["metadata_sidecar"]["status"] == "verified"
    assert report["short.txt"]["destinations"][0]["metadata_sidecar"] is None


def test_unknown_token_is_refused_before_anything_is_touched(tmp_path: Path) -> None:
    card = make_sample_card(tmp_path / "card")
    state, out = tmp_path / "state", tmp_path / "out"
    r = run_castoff("copy", str(card), "--to", str(out), "--template", "{YYYY}/{lens}/{name}", state=state)
    assert r.returncode == 2
    assert "unknown token {lens}" in r.stderr
    assert "{device}" in r.stderr  # the hint lists the tokens there are
    assert not out.exists() and not state.exists()


def test_shoot_token_needs_a_shoot_name(tmp_path: Path) -> None:
    card = make_sample_card(tmp_path / "card")
    state, out = tmp_path / "state", tmp_path / "out"
    r = run_castoff("copy", str(card), "--to", str(out), "--template", "{shoot}/{name}", state=state)
    assert r.returncode == 2 and "--shoot" in r.stderr
    r = run_castoff(
        "copy", str(card), "--to", str(out), "--template", "{shoot}/{name}", "--shoot", "a/b", state=state
    )
    assert r.returncode == 2 and "one folder name" in r.stderr
    assert not out.exists()
    r = run_castoff(
        "copy",
        str(card),
        "--to",
        str(out),
        "--template",
        "{YYYY}/{MM}-{shoot}/{device}/{name}",
        "--shoot",
        "Harbour",
        "--quiet",
        state=state,
    )
    assert r.returncode == 0, r.stderr
    assert (out / "2024" / "05-Harbour" / "Canon EOS R5" / "IMG_0003.JPG").is_file()
    assert (out / "2024" / "05-Harbour" / "Sony" / "C0001.THM").is_file()


def _two_cards(tmp_path: Path) -> tuple[Path, Path]:
    """Two cards whose source folders have the same name, and a file of the same name on each."""
    cards = []
    for card, files in (
        ("A", {"IMG_0001.JPG": b"card A"}),
        ("B", {"IMG_0001.JPG": b"card B", "IMG_0002.JPG": b"B2"}),
    ):
        for name, data in files.items():
            path = tmp_path / "media" / card / "DCIM" / "100CANON" / name
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(data)
            os.utime(path, (1715948400, 1715948400))  # 2024-05-17 (UTC)
        cards.append(tmp_path / "media" / card / "DCIM")
    return cards[0], cards[1]


def test_two_cards_of_one_folder_name_are_refused_only_where_the_layout_names_the_folder(
    tmp_path: Path,
) -> None:
    """Before: refused whatever the layout, though --layout date never puts a source's name in a
    path: both cards' files land by date, and two of one name are kept both."""
    a, b = _two_cards(tmp_path)
    state = tmp_path / "state"
    for layout in ([], ["--layout", "none"], ["--template", "{YYYY}/{card}/{name}"]):
        out = tmp_path / "refused"
        r = run_castoff("copy", str(a), str(b), "--to", str(out), *layout, state=state)
        assert r.returncode == 2, r.stderr
        said = " ".join(r.stderr.split())
        assert f"sources {a} and {b} would land in the same folder 'DCIM'" in said
        assert "a layout that does not name each source's folder ({card}): --layout date" in said
        assert not out.exists()

    # a template without {card} merges the cards' folders; same names are kept both there too
    out = tmp_path / "by-path"
    r = run_castoff("copy", str(a), str(b), "--to", str(out), "--template", "{path}", "--no-mhl", state=state)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "100CANON").iterdir()) == [
        "IMG_0001 (2).JPG",
        "IMG_0001.JPG",
        "IMG_0002.JPG",
    ]
    r = run_castoff("copy", str(a), str(b), "--to", str(out), "--template", "{path}", "--no-mhl", state=state)
    assert r.returncode == 0, r.stderr  # a re-run: every copy is there, none is replaced or added
    assert len(list((out / "100CANON").iterdir())) == 3
    # ... and each file's own copy is known: none is read again (before: the catalog kept one
    # copy per planned name, so the card whose copy was renamed was read and its copy compared)
    rows = latest_report(state)["files"]
    assert sorted(
        (f["path"], d["status"], Path(d["target"]).name) for f in rows for d in f["destinations"]
    ) == [
        ("DCIM (2)/100CANON/IMG_0001.JPG", "skipped", "IMG_0001 (2).JPG"),
        ("DCIM (2)/100CANON/IMG_0002.JPG", "skipped", "IMG_0002.JPG"),
        ("DCIM/100CANON/IMG_0001.JPG", "skipped", "IMG_0001.JPG"),
    ]

    out = tmp_path / "by-date"
    r = run_castoff("copy", str(a), str(b), "--to", str(out), "--layout", "date", "--mhl-source", state=state)
    assert r.returncode == 0, r.stderr
    day = next(out.glob("2024-05-1*"))  # (the day in this computer's time zone)
    got = {p.name: p.read_bytes() for p in day.iterdir()}
    assert got == {"IMG_0001.JPG": b"card A", "IMG_0001 (2).JPG": b"card B", "IMG_0002.JPG": b"B2"}
    rows = latest_report(state)["files"]
    assert sorted((f["path"], f["source"]) for f in rows) == [  # a path of its own for each file
        ("DCIM (2)/100CANON/IMG_0001.JPG", str(b / "100CANON" / "IMG_0001.JPG")),
        ("DCIM (2)/100CANON/IMG_0002.JPG", str(b / "100CANON" / "IMG_0002.JPG")),
        ("DCIM/100CANON/IMG_0001.JPG", str(a / "100CANON" / "IMG_0001.JPG")),
    ]
    # each card's own ASC MHL history holds its own files, not the other card's
    for card, files in ((a, 1), (b, 2)):
        assert f"{card}: ASC MHL generation 1: {files} file{'s' if files != 1 else ''}" in r.stderr
        v = run_castoff("verify", str(card), state=state)
        assert v.returncode == 0, v.stdout + v.stderr


def test_one_source_twice_or_two_files_of_one_name_are_still_refused(tmp_path: Path) -> None:
    a, b = _two_cards(tmp_path)
    state = tmp_path / "state"
    link = tmp_path / "CARD_LINK"
    link.symlink_to(a)
    for sources, words in (
        ([a, a], f"sources {a} and {a} are the same folder"),
        ([a, link], f"sources {a} and {link} are the same folder"),
        # one inside the other: its files would be copied twice (the layout names them apart)
        (
            [a, a / "100CANON"],
            f"source {a / '100CANON'} is inside source {a}: its files would be copied twice",
        ),
        (
            [a / "100CANON" / "IMG_0001.JPG", link],
            f"source {a / '100CANON' / 'IMG_0001.JPG'} is inside source {link}",
        ),
        (
            [a / "100CANON" / "IMG_0001.JPG", b / "100CANON" / "IMG_0001.JPG"],
            "are files of the same name 'IMG_0001.JPG'",
        ),
    ):
        out = tmp_path / "out"
        r = run_castoff("copy", *map(str, sources), "--to", str(out), "--layout", "date", state=state)
        assert r.returncode == 2, r.stderr
        assert words in " ".join(r.stderr.split())
        assert not out.exists()


def test_counter_numbers_stay_with_their_files_when_the_card_gains_one(tmp_path: Path) -> None:
    """A re-run after the card gained a file that sorts first: the files copied before keep their
    numbers (nothing is copied again under a shifted one), the new file takes the next number."""
    card = tmp_path / "card" / "DCIM"
    card.mkdir(parents=True)
    for n in (2, 3, 4):
        (card / f"IMG_000{n}.JPG").write_bytes(f"photo {n}".encode())
    (card / "IMG_0002.XMP").write_text("sidecar of 2")
    state, out = tmp_path / "state", tmp_path / "ssd"
    args = ["copy", str(card.parent), "--to", str(out), "--template", "SHOOT_{counter:4}.{ext}", "--quiet"]
    assert run_castoff(*args, state=state).returncode == 0
    first = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
    assert first == {
        "SHOOT_0001.JPG": b"photo 2",
        "SHOOT_0001.XMP": b"sidecar of 2",
        "SHOOT_0002.JPG": b"photo 3",
        "SHOOT_0003.JPG": b"photo 4",
    }
    (card / "IMG_0001.JPG").write_bytes(b"photo 1")  # sorts before every file copied
    for rehash in ([], ["--rehash"]):
        r = run_castoff(*args, *rehash, state=state)
        assert r.returncode == 0, r.stderr
        now = {p.name: p.read_bytes() for p in out.iterdir() if p.is_file()}
        assert now == {**first, "SHOOT_0004.JPG": b"photo 1"}, rehash
    verified = {d["status"] for f in latest_report(state)["files"] for d in f["destinations"]}
    assert verified <= {"already", "skipped", "verified"}


def test_counter_numbers_go_on_across_readers_and_jobs_at_once(tmp_path: Path) -> None:
    """QA: ``{counter}`` restarted at each card reader (it went on from the numbers given under
    the source's path), so one shoot got 0001.CR3 and 0001 (2).CR3. The numbers of a template
    and shoot go on from job to job whatever the reader, and two jobs at once share them: each
    file gets a number of its own, none kept beside another as '(2)'."""
    state, out = tmp_path / "state", tmp_path / "ssd"

    def card(at: Path, n: int) -> Path:
        for i in range(1, n + 1):
            write(at / "DCIM" / "100CANON" / f"IMG_{i:04}.CR3", os.urandom(2000))
        return at

    args = ["--to", str(out), "--template", "{shoot}/{counter:4}.{ext}", "--shoot", "Harbour", "--quiet"]
    for reader in ("1", "2"):
        r = run_castoff("copy", str(card(tmp_path / reader / "EOS_DIGITAL", 3)), *args, state=state)
        assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "Harbour").iterdir()) == [f"{i:04}.CR3" for i in range(1, 7)]

    at_once = [
        subprocess.Popen(
            [*CASTOFF, "--state-dir", str(state), "copy", str(card(tmp_path / r / "EOS_DIGITAL", 40)), *args],
            stderr=subprocess.PIPE,
            text=True,
        )
        for r in ("3", "4")
    ]
    for proc in at_once:
        assert proc.wait(120) == 0, proc.communicate()
    assert sorted(p.name for p in (out / "Harbour").iterdir()) == [f"{i:04}.CR3" for i in range(1, 87)]

    other = ["--shoot", "Beach"]  # another shoot: folders of its own, numbered from 1
    r = run_castoff("copy", str(card(tmp_path / "5" / "EOS_DIGITAL", 2)), *args, *other, state=state)
    assert r.returncode == 0, r.stderr
    assert sorted(p.name for p in (out / "Beach").iterdir()) == ["0001.CR3", "0002.CR3"]
