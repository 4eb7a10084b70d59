"""A card's own ASC MHL history copied to a bucket: a write-only key cannot read the chain there, so
the catalog's record of the chain castoff put at that key is compared with the card's, by the rules
of a local folder (``engine/histories.py``): a history that grew replaces the chain it continues
(never a second ``ascmhl_chain (2).xml`` beside a stale one), one that holds no new generation counts
as there, and another history is refused."""

from __future__ import annotations

import os
import shutil
import sqlite3
from pathlib import Path
from typing import Any

import pytest
import xxhash
from lxml import etree

from castoff.catalog.db import Catalog
from castoff.engine.histories import Histories, compare_sent, in_history
from castoff.reports import mhl
from reports.kit import Cli, write
from reports.test_mhl import NS, _both_verify
from reports.test_mhl_histories import CHAIN, _card_with_history, _generations, _outcomes

PREFIX = "shoots/"


def _bucket(moto: Any, how: str) -> tuple[str, dict[str, str]]:
    """The destination URL and the environment: a write-only key without conditional writes (the
    catalog stands for If-None-Match), or conditional writes (the server refuses a taken key)."""
    if how == "write-only":
        key, secret = moto.enable_write_only()
        conditional = "off"
    else:
        key, secret, conditional = "a", "b", "on"
    env = {**os.environ, "AWS_ACCESS_KEY_ID": key, "AWS_SECRET_ACCESS_KEY": secret}
    url = (
        f"s3://{moto.bucket}/{PREFIX}?endpoint={moto.url}&region=us-east-1&addressing=path"
        f"&conditional={conditional}"
    )
    return url, env


def _objects(moto: Any, under: str = "") -> dict[str, bytes]:
    """What the bucket holds under ``PREFIX + under``, read with the admin key."""
    client = moto.client
    listed = client.list_objects_v2(Bucket=moto.bucket, Prefix=PREFIX + under).get("Contents", [])
    return {
        o["Key"][len(PREFIX) :]: client.get_object(Bucket=moto.bucket, Key=o["Key"])["Body"].read()
        for o in listed
    }


def _history_there(moto: Any, folder: str = "") -> dict[str, bytes]:
    """The history's objects under ``PREFIX + folder``, by their key below it."""
    found = _objects(moto, f"{folder}ascmhl/").items()
    return {k[len(folder) :]: v for k, v in found if not k.endswith(".castoff.json")}


def _grow(tmp_path: Path, card: Path, cli: Cli, name: str = "IMG_0002.CR3") -> None:
    """The card gains a file, and another in-place generation."""
    before = len(_generations(card))
    write(card / "DCIM" / "100CANON" / name, name.encode() * 1000)
    r = cli("copy", str(card), "--to", str(tmp_path / "first"), "--mhl-source")
    assert r.returncode == 0, r.stderr
    assert len(_generations(card)) == before + 1


def _download(moto: Any, into: Path) -> Path:
    for key, body in _objects(moto).items():
        if key.endswith(".castoff.json") or key.startswith("castoff-reports/"):
            continue
        write(into / key, body)
    return into


def _copy(cli: Cli, card: Path, env: dict[str, str], *to: str, extra: tuple[str, ...] = ()) -> Any:
    """The card's files at the same keys every run: its ``ascmhl/`` at the bucket's prefix."""
    args = [a for dest in to for a in ("--to", dest)]
    return cli("copy", str(card), *args, "--template", "{path}", *extra, env=env)


@pytest.mark.parametrize("how", ["write-only", "conditional"])
def test_a_card_history_that_grew_replaces_the_chain_castoff_put_in_the_bucket(
    tmp_path: Path, card: Path, cli: Cli, state: Path, moto: Any, ascmhl_bin: Path, how: str
) -> None:
    """One job to a folder and a bucket, the default layout (the card's folder, the same every run):
    castoff continues the folder's history at its root, and the card's is copied to both."""
    _card_with_history(tmp_path, card, cli)
    url, env = _bucket(moto, how)
    ssd = tmp_path / "ssd"
    folder = f"{card.name}/"
    r = cli("copy", str(card), "--to", str(ssd), "--to", url, env=env)
    assert r.returncode == 0, r.stderr
    first = _history_there(moto, folder)
    assert first[CHAIN] == (card / CHAIN).read_bytes()

    _grow(tmp_path, card, cli)
    r = cli("copy", str(card), "--to", str(ssd), "--to", url, env=env)
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stderr.split())
    assert "chain (2)" not in said, said
    assert (ssd / folder / CHAIN).read_bytes() == (card / CHAIN).read_bytes()
    # exactly the card's history at the bucket: one chain, holding every generation, every manifest
    there = _history_there(moto, folder)
    assert sorted(there) == sorted(f"ascmhl/{p.name}" for p in (card / "ascmhl").iterdir())
    assert there[CHAIN] == (card / CHAIN).read_bytes()
    assert len(_generations(card)) == 2
    # the report says it replaced the chain, and why; so does the job's log
    by_dest = {d["destination"]: d for d in _outcomes(state, CHAIN)}
    assert len(by_dest) == 2, by_dest
    for out in by_dest.values():
        assert out["status"] == "verified", out
        assert "replaced" in str(out["detail"]) and "continues it" in str(out["detail"]), out
    bucket_out = next(d for name, d in by_dest.items() if name.startswith("s3://"))
    why = (
        "replaced the ascmhl_chain.xml castoff put there before, which names 1 generation, with the source's"
    )
    assert why in str(bucket_out["detail"])
    assert f"{PREFIX}{folder}{CHAIN}: {why}" in said
    # the copy in the bucket is a valid history: the reference tool reads and verifies it
    got = _download(moto, tmp_path / "download") / card.name
    assert _generations(got) == _generations(card)
    _both_verify(cli, ascmhl_bin, got, ssd)


def test_a_chain_that_holds_the_cards_generations_counts_as_there_whatever_the_policy(
    tmp_path: Path, card: Path, cli: Cli, state: Path, moto: Any
) -> None:
    """The same history (other bytes), or a bucket chain that holds more generations than a card
    copied earlier: already there, the key untouched, with --on-conflict rename and overwrite."""
    _card_with_history(tmp_path, card, cli)
    older_copy = tmp_path / "backup" / card.name
    shutil.copytree(card, older_copy)  # the card as it was, at another path
    _grow(tmp_path, card, cli)
    url, env = _bucket(moto, "write-only")
    assert _copy(cli, card, env, url).returncode == 0
    there = _history_there(moto)
    assert there[CHAIN] == (card / CHAIN).read_bytes()

    # the same generations in other bytes (a tool that rewrote the chain's layout)
    same = tmp_path / "rewritten" / card.name
    shutil.copytree(card, same)
    tree = etree.parse(str(same / CHAIN))
    etree.indent(tree, space="\t")
    tree.write(str(same / CHAIN), xml_declaration=True, encoding="UTF-8")
    assert (same / CHAIN).read_bytes() != (card / CHAIN).read_bytes()
    assert _generations(same) == _generations(card)

    for source in (same, older_copy):
        # a re-run of one source skips what it verified: --rehash decides again
        for extra in (("--on-conflict", "overwrite"), ("--rehash",)):
            r = _copy(cli, source, env, url, extra=extra)
            assert r.returncode == 0, r.stderr
            assert _history_there(moto) == there, (source, extra)
            (out,) = _outcomes(state, CHAIN)
            assert out["status"] == "already", (out, extra)
            assert "castoff put at this key holds every generation of the source's" in str(
                out["verify_method"]
            )
    # the catalog still knows the bucket's chain: the card grows again, and its chain replaces it
    _grow(tmp_path, card, cli, "IMG_0003.CR3")
    r = _copy(cli, card, env, url)
    assert r.returncode == 0, r.stderr
    grown = _history_there(moto)
    assert grown[CHAIN] == (card / CHAIN).read_bytes() and len(_generations(card)) == 3
    assert sorted(grown) == sorted(f"ascmhl/{p.name}" for p in (card / "ascmhl").iterdir())


def test_a_local_chain_that_holds_the_cards_generations_is_not_overwritten_by_policy(
    tmp_path: Path, card: Path, cli: Cli, state: Path, ascmhl_bin: Path
) -> None:
    """--on-conflict overwrite never replaces a chain with one that lacks some of its generations."""
    _card_with_history(tmp_path, card, cli)
    older_copy = tmp_path / "backup" / card.name
    shutil.copytree(card, older_copy)
    _grow(tmp_path, card, cli)
    ssd = tmp_path / "ssd"
    assert cli("copy", str(card), "--to", str(ssd), "--template", "{path}").returncode == 0
    gens = _generations(ssd)
    assert len(gens) == 3  # the card's two, and castoff's at the folder
    r = cli("copy", str(older_copy), "--to", str(ssd), "--template", "{path}", "--on-conflict", "overwrite")
    assert r.returncode == 0, r.stderr
    assert _generations(ssd)[:3] == gens, r.stderr  # kept; castoff's generation for this job follows
    (out,) = _outcomes(state, CHAIN)
    assert out["status"] == "already", out
    _both_verify(cli, ascmhl_bin, ssd)


@pytest.mark.parametrize("how", ["write-only", "conditional"])
def test_another_history_bound_for_the_buckets_history_is_refused(
    tmp_path: Path, card: Path, cli: Cli, state: Path, moto: Any, how: str
) -> None:
    _card_with_history(tmp_path, card, cli)
    url, env = _bucket(moto, how)
    assert _copy(cli, card, env, url).returncode == 0
    there = _history_there(moto)
    # another card, with a history of its own, laid out onto the same keys
    other = tmp_path / "B002_CARD"
    write(other / "notes.txt", b"notes of another card")
    r = cli("copy", str(other), "--to", str(tmp_path / "first-b"), "--mhl-source")
    assert r.returncode == 0, r.stderr
    r = _copy(cli, other, env, url)
    assert r.returncode == 1, r.stderr
    said = " ".join(r.stderr.split())
    assert "are two different histories" in said and "did NOT copy" in said, said
    assert "--exclude 'ascmhl/**'" in said
    assert _history_there(moto) == there  # neither its chain nor its manifest landed, nor a (2)
    (chain,) = _outcomes(state, CHAIN)
    assert (chain["status"], chain["error_code"]) == ("failed", "history-conflict")
    (notes,) = _outcomes(state, "notes.txt")
    assert notes["status"] == "verified"
    assert _objects(moto)["notes.txt"] == b"notes of another card"


def test_a_chain_the_catalog_has_no_record_of_follows_the_conflict_policy_and_says_so(
    tmp_path: Path, card: Path, cli: Cli, state: Path, moto: Any
) -> None:
    """A catalog from before castoff kept chains (or another tool's chain): nothing to compare."""
    _card_with_history(tmp_path, card, cli)
    url, env = _bucket(moto, "write-only")
    assert _copy(cli, card, env, url).returncode == 0
    with sqlite3.connect(state / "catalog.sqlite") as db:
        assert db.execute("DELETE FROM chains").rowcount == 1
    _grow(tmp_path, card, cli)
    r = _copy(cli, card, env, url)
    assert r.returncode == 0, r.stderr
    said = " ".join(r.stderr.split())
    assert "no record of the ASC MHL chain at this key" in said, said
    assert "--on-conflict rename applies" in said
    assert "ascmhl/ascmhl_chain (2).xml" in _history_there(moto)


def test_the_catalog_keeps_the_generations_of_the_chains_it_put_in_a_bucket(
    tmp_path: Path, card: Path, cli: Cli, state: Path, moto: Any
) -> None:
    _card_with_history(tmp_path, card, cli)
    url, env = _bucket(moto, "write-only")
    assert _copy(cli, card, env, url).returncode == 0
    cat = Catalog(state / "catalog.sqlite")
    try:
        with sqlite3.connect(state / "catalog.sqlite") as db:
            (ident,) = {row[0] for row in db.execute("SELECT dest_ident FROM objects")}
        chain = etree.parse(str(card / CHAIN))
        want = [
            (int(e.get("sequencenr")), e.findtext("d:path", namespaces=NS), e.findtext("d:c4", namespaces=NS))
            for e in chain.findall("d:hashlist", namespaces=NS)
        ]
        assert cat.chain_sent(ident, PREFIX + CHAIN) == want
        assert cat.chain_sent(ident, PREFIX + "notes.txt") is None
    finally:
        cat.close()


def test_a_bucket_chain_is_compared_by_the_catalogs_record_with_the_rules_of_a_folder(tmp_path: Path) -> None:
    write(tmp_path / "A" / "x.txt", b"x")
    entry = mhl.Entry("x.txt", 1, 0, xxhash.xxh3_128(b"x").hexdigest(), None, 0.0)
    mhl.write_generation(
        tmp_path / "A", iter([entry]), started=0.0, process="in-place", comment="A", ignore=()
    )
    source = str(tmp_path / "A" / "ascmhl")
    ours = mhl.read_chain(tmp_path / "A")
    assert in_history("ascmhl/ascmhl_chain.xml") and in_history("shoots/ascmhl/0001_A.mhl")
    assert not in_history("myascmhl/ascmhl_chain.xml") and not in_history("ascmhl_chain.xml")
    assert compare_sent(source, "ascmhl", None).relation == "unknown"
    assert compare_sent(source, "ascmhl", ours).relation == "same"
    assert compare_sent(source, "ascmhl", []).relation == "older"
    more = [*ours, mhl.Generation(2, "0002_B.mhl", "c4" + "1" * 88)]
    assert compare_sent(source, "ascmhl", more).chain_is_there()
    other = [mhl.Generation(1, "0001_B.mhl", "c4" + "2" * 88)]
    apart = compare_sent(source, "ascmhl", other)
    assert apart.relation == "apart"
    refused = apart.refusal("ascmhl_chain.xml")
    assert refused is not None and "the one castoff put at ascmhl" in str(refused)
    # at planning, each bucket folder's history is compared once, from the catalog's record
    asked: list[str] = []
    histories = Histories()

    def sent(key: str) -> list[mhl.Generation] | None:
        asked.append(key)
        return ours

    for name in ("ascmhl_chain.xml", ours[0].name):
        found = histories.at("s3:b", f"{source}/{name}", f"shoots/ascmhl/{name}", sent)
        assert found.relation == "same" and found.refusal(name) is None
    assert asked == ["shoots/ascmhl/ascmhl_chain.xml"]
