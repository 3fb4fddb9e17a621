"""The README stays true to the tree: its layout block names every module and package of
prmkit/ and nothing that is not there, and its links lead somewhere."""

import re
from pathlib import Path

import prmkit

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(prmkit.__file__).parent
README = ROOT / "README.md"
TOP_ENTRY = re.compile(r"^  (\S+)")               # "  name.py  description" / "  name/  ..."
PY_NAME = re.compile(r"(?<![\w./-])(\w+\.py)\b")   # a module named inside a package's line


def code_blocks(text: str) -> list[list[str]]:
    """The lines of every fenced code block."""
    blocks, current = [], None
    for line in text.splitlines():
        if line.lstrip().startswith("```"):
            if current is None:
                current = []
            else:
                blocks.append(current)
                current = None
        elif current is not None:
            current.append(line)
    return blocks


def layout_block() -> list[str]:
    """The README's layout block: the one code block whose first line is ``prmkit/``."""
    blocks = [b for b in code_blocks(README.read_text()) if b and b[0].strip() == "prmkit/"]
    assert len(blocks) == 1, "README.md needs exactly one code block starting with 'prmkit/'"
    return blocks[0]


def layout_entries() -> dict[str, str]:
    """Each entry of the layout block directly under ``prmkit/`` (indented two spaces) -> its
    description, continuation lines (indented deeper) included. The rule line between clients
    and library is not an entry."""
    entries: dict[str, str] = {}
    last = None
    for line in layout_block()[1:]:
        if not line.strip():
            continue
        if not line.startswith("  "):          # tests/, benchmarks/, docs/: outside prmkit/
            last = None
            continue
        if line.startswith("   ") and last is not None:
            entries[last] += " " + line.strip()
            continue
        name = TOP_ENTRY.match(line).group(1)
        if set(name) <= set("-─"):             # the clients / library rule
            last = None
            continue
        entries[name] = line.strip()[len(name):]
        last = name
    return entries


def tree() -> set[str]:
    """Every module and every folder directly under prmkit/ (``name.py`` and ``name/``)."""
    found = set()
    for path in PACKAGE.iterdir():
        if path.is_dir() and not path.name.startswith(("_", ".")):
            found.add(path.name + "/")
        elif path.suffix == ".py" and path.name != "__init__.py":
            found.add(path.name)
    return found


def test_the_layout_block_lists_every_module_and_package():
    missing = sorted(tree() - set(layout_entries()))
    assert not missing, f"add a line to the README's layout block for: {missing}"


def test_everything_the_layout_block_names_exists():
    gone = []
    for name, description in layout_entries().items():
        if not (PACKAGE / name).exists():
            gone.append(name)
        if name.endswith("/"):
            gone += [f"{name}{module}" for module in PY_NAME.findall(description)
                     if not (PACKAGE / name / module).exists()]
    assert not gone, f"the README's layout block names what prmkit/ does not have: {gone}"
    # the folders beside prmkit/ (tests/, benchmarks/, docs/)
    beside = [line.split()[0] for line in layout_block()[1:]
              if line.strip() and not line[0].isspace() and line.split()[0].endswith("/")]
    assert [f for f in beside if not (ROOT / f).is_dir()] == []


LINK = re.compile(r"\[[^\]]*\]\(([^)\s]+)\)")


def relative_links(path: Path) -> list[str]:
    """Targets of the markdown links in a file that point into the repository (no scheme, no
    bare anchor), outside code blocks and inline code."""
    text = re.sub(r"```.*?```", "", path.read_text(), flags=re.S)
    text = re.sub(r"`[^`\n]*`", "", text)
    return [t for t in LINK.findall(text)
            if not re.match(r"^[a-z][a-z0-9+.-]*:", t) and not t.startswith("#")]


def test_every_relative_link_of_the_readme_and_docs_leads_to_a_file():
    broken = []
    for page in [README, *sorted((ROOT / "docs").glob("*.md"))]:
        for target in relative_links(page):
            if not (page.parent / target.split("#")[0]).exists():
                broken.append(f"{page.name}: {target}")
    assert not broken, broken


def anchor(heading: str) -> str:
    """GitHub's anchor of a heading: lower case, punctuation dropped, spaces as hyphens."""
    text = heading.strip().lower().replace("`", "")
    return re.sub(r"[^\w\- ]", "", text).replace(" ", "-")


def test_the_table_of_contents_points_at_headings():
    text = README.read_text()
    headings = {anchor(h) for h in re.findall(r"^#{1,6} (.+)$",
                                              re.sub(r"```.*?```", "", text, flags=re.S),
                                              flags=re.M)}
    targets = [t[1:] for t in LINK.findall(text) if t.startswith("#")]
    assert targets and [t for t in targets if t not in headings] == []
    # and links into the README from docs/ name its headings too
    for page in sorted((ROOT / "docs").glob("*.md")):
        for target in relative_links(page):
            path, _, fragment = target.partition("#")
            if fragment and (page.parent / path).resolve() == README:
                assert fragment in headings, f"{page.name}: {target}"
