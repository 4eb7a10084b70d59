"""Layout templates: ``{YYYY}/{MM}-{shoot}/{device}/{name}`` parsed once, then filled in per file.

Parsing is where every mistake is caught (unknown token, empty or ``..`` component, absolute
path, a last component that names no file), before anything is read or written.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from castoff import errors
from castoff.layout.names import check_layout_path

#: every token a template may use, and what it stands for (the README's table says the same)
TOKENS: dict[str, str] = {
    "YYYY": "capture year (2024)",
    "YY": "capture year, two digits (24)",
    "MM": "capture month (05)",
    "DD": "capture day (17)",
    "hh": "capture hour (14)",
    "mm": "capture minute (30)",
    "ss": "capture second (05)",
    "shoot": "the shoot name given with --shoot",
    "device": "camera make and model (Canon EOS R5), or 'Unknown device'",
    "make": "camera make (Canon), or 'Unknown'",
    "model": "camera model (Canon EOS R5), or 'Unknown'",
    "type": "Photos, RAW, Video, Audio, Sidecars or Other",
    "card": "the source's own folder name (a card's volume label: EOS_DIGITAL)",
    "path": "the file's path under the source, folders included (DCIM/100CANON/IMG_0001.JPG)",
    "folder": "the folders of {path} (DCIM/100CANON); nothing for a file at the top",
    "name": "the file name, exactly (IMG_0001.JPG)",
    "stem": "the file name without its extension (IMG_0001)",
    "ext": "the extension without the dot, exactly (JPG)",
    "counter": "1, 2, 3… in the job's order; a sidecar shares its original's; {counter:4} pads to 0001",
}
#: tokens whose value may span several folders
MULTI_COMPONENT = frozenset({"path", "folder"})
#: a template's last component must tell files apart with one of these
NAMING = frozenset({"name", "stem", "path", "counter"})
#: tokens that are the same for every file of a source folder, whatever the file: a template
#: whose folders are made of these alone (and literal text) places a folder as well as a file
FOLDER_TOKENS = frozenset({"card", "shoot"})

LAYOUTS: dict[str, str] = {
    "none": "{card}/{path}",
    "date": "{YYYY}-{MM}-{DD}/{name}",
    "month": "{YYYY}-{MM}/{name}",
    "device": "{device}/{name}",
    "type": "{type}/{name}",
}


@dataclass(frozen=True)
class Token:
    name: str
    width: int = 0


Piece = str | Token


@dataclass(frozen=True)
class Template:
    text: str
    components: tuple[tuple[Piece, ...], ...]

    @property
    def starts_with_card(self) -> bool:
        """Whether a source folder's files land in a folder of its own name, right under the
        destination (``{card}`` first, as the default layout)."""
        return self.components[:1] == ((Token("card"),),)

    @property
    def tokens(self) -> frozenset[str]:
        return frozenset(p.name for comp in self.components for p in comp if isinstance(p, Token))

    @property
    def keeps_folders(self) -> bool:
        """Whether the layout keeps the source's folders, so that it can place a folder that holds
        no file (``scan.EmptyFolder``): it ends with ``{path}`` or ``{folder}/{name}``, and what
        comes before is literal text, ``{card}`` and ``{shoot}``. Any other token (a date, the
        camera, the type, the extension, a counter) is the file's: an empty folder has none."""
        return self._folder_head() is not None

    def _folder_head(self) -> tuple[tuple[Piece, ...], ...] | None:
        """The components before the source's own folders, when ``keeps_folders``."""
        comps = self.components
        if comps[-1:] == ((Token("path"),),):
            head = comps[:-1]
        elif comps[-2:] == ((Token("folder"),), (Token("name"),)):
            head = comps[:-2]
        else:
            return None
        if all(isinstance(p, str) or p.name in FOLDER_TOKENS for comp in head for p in comp):
            return head
        return None

    def render_folder(self, values: Mapping[str, str]) -> str:
        """The layout path of a source folder whose path under the source is ``values["path"]``
        (``card`` and ``shoot`` as for its files): where its files would land; empty when that is
        the destination's root (the source's own folder under ``{path}`` alone). Only when
        ``keeps_folders``; the result is checked as a file's is."""
        head = self._folder_head()
        if head is None:
            raise ValueError(f"the template {self.text!r} does not keep the source's folders")
        rel = _join((*head, (Token("path"),)), values)
        if rel:
            check_layout_path(rel)
        return rel

    def render(self, values: Mapping[str, str]) -> str:
        """The layout path for these token values. Components that come out empty are dropped
        (``{folder}`` of a file at the top); the result is checked to stay inside."""
        rel = _join(self.components, values)
        check_layout_path(rel)
        return rel


def _join(components: tuple[tuple[Piece, ...], ...], values: Mapping[str, str]) -> str:
    parts: list[str] = []
    for comp in components:
        if len(comp) == 1:  # most components: one token, or one literal
            piece = comp[0]
            text = piece if isinstance(piece, str) else _fill(piece, values)
        else:
            text = "".join(p if isinstance(p, str) else _fill(p, values) for p in comp)
        if "/" in text:
            if text[0] != "/" and text[-1] != "/" and "//" not in text:
                parts.append(text)  # no empty piece to drop: joined as split
            else:
                parts.extend(x for x in text.split("/") if x)
        elif text:
            parts.append(text)
    return "/".join(parts)


def _fill(token: Token, values: Mapping[str, str]) -> str:
    value = values[token.name]
    if token.name not in MULTI_COMPONENT:
        value = value.replace("/", "-")
    return value.zfill(token.width) if token.width else value


def _bad(text: str, why: str, hint: str | None = None) -> errors.UsageError:
    return errors.UsageError(
        f"--template {text!r}: {why}",
        hint=hint or "tokens: " + " ".join("{" + t + "}" for t in TOKENS),
    )


def _token(text: str, body: str) -> Token:
    name, _, spec = body.partition(":")
    if name not in TOKENS:
        raise _bad(text, f"unknown token {{{body}}}")
    if not spec:
        return Token(name)
    if name != "counter" or not spec.isdigit() or not 1 <= int(spec) <= 12:
        raise _bad(text, f"{{{body}}}: only {{counter:N}} takes a width (N from 1 to 12)")
    return Token(name, int(spec))


def _pieces(text: str) -> list[Piece | None]:
    """Literal text and tokens; None marks a '/' between components."""
    out: list[Piece | None] = []
    i = 0
    while i < len(text):
        c = text[i]
        if c in "{}" and text[i : i + 2] in ("{{", "}}"):
            out.append(c)
            i += 2
        elif c == "{":
            end = text.find("}", i)
            if end < 0:
                raise _bad(text, "a '{' is not closed", "write {{ for a literal brace")
            out.append(_token(text, text[i + 1 : end]))
            i = end + 1
        elif c == "}":
            raise _bad(text, "a '}' has no '{'", "write }} for a literal brace")
        else:
            out.append(None if c == "/" else c)
            i += 1
    return out


def parse_template(text: str) -> Template:
    if not text.strip():
        raise _bad(text, "empty template")
    if text.startswith("/"):
        raise _bad(text, "a layout is relative: the destination (and its prefix) comes first")
    components: list[list[Piece]] = [[]]
    for piece in _pieces(text):
        if piece is None:
            components.append([])
        elif isinstance(piece, str) and components[-1] and isinstance(components[-1][-1], str):
            components[-1][-1] += piece
        else:
            components[-1].append(piece)
    for comp in components:
        if not comp:
            raise _bad(text, "empty folder name (two '/' in a row, or a '/' at the end)")
        if len(comp) == 1 and isinstance(comp[0], str) and not comp[0].strip():
            raise _bad(text, f"the folder name {comp[0]!r} is blank", "give the folder a name, or drop it")
        if comp in (["."], [".."]):
            raise _bad(text, f"the component {comp[0]!r} would leave the folder it is in")
    last = {p.name for p in components[-1] if isinstance(p, Token)}
    if not last & NAMING:
        raise _bad(
            text,
            "the last component names no file: every file would get the same name",
            "end it with {name}, or use {stem}, {path} or {counter} in it",
        )
    return Template(text, tuple(tuple(c) for c in components))


def layout_template(layout: str | None, template: str | None) -> Template:
    """The template for ``--layout`` or ``--template`` (not both)."""
    if layout and template:
        raise errors.UsageError("give --layout or --template, not both")
    if template:
        return parse_template(template)
    name = layout or "none"
    if name not in LAYOUTS:
        raise errors.UsageError(f"--layout {name!r}: choose one of {', '.join(LAYOUTS)}")
    return parse_template(LAYOUTS[name])
