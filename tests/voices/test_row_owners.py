"""One owner per row: only ``voices/lifecycle.py`` (the voice registry) writes Voice rows and reads or writes
``Voice.meta``; only ``voices/consent.py`` (the consent service) writes Consent rows.

A source scan (``ast``), not a runtime check: any other module of ``src/`` or ``bench/`` that constructs one
of those rows, runs ``update``/``insert``/``delete`` on its table, or assigns one of its columns on a row it
loaded fails here, naming the file and the line. Tests are not scanned (their fixtures write rows directly).
"""

from __future__ import annotations

import ast
from pathlib import Path

from voxvault.store.models import Consent, Voice

ROOT = Path(__file__).resolve().parents[2]
OWNERS = {"Voice": "src/voxvault/voices/lifecycle.py", "Consent": "src/voxvault/voices/consent.py"}
COLUMNS = {"Voice": set(Voice.__table__.columns.keys()), "Consent": set(Consent.__table__.columns.keys())}
STATEMENTS = {"update", "insert", "delete"}


def _imported_models(tree: ast.AST) -> set[str]:
    """The row classes a module imports from the store (the only way it can load one to change it)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").startswith("voxvault.store"):
            found |= {alias.name for alias in node.names if alias.name in OWNERS}
    return found


def _name(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    return None


def _targets(node: ast.AST) -> list[ast.expr]:
    if isinstance(node, ast.Assign):
        targets = list(node.targets)
    elif isinstance(node, (ast.AugAssign, ast.AnnAssign, ast.For, ast.comprehension)):
        targets = [node.target]
    else:
        return []
    flat: list[ast.expr] = []
    while targets:
        target = targets.pop()
        if isinstance(target, (ast.Tuple, ast.List)):
            targets.extend(target.elts)
        else:
            flat.append(target)
    return flat


def _mentions(node: ast.AST | None, names: set[str]) -> bool:
    return node is not None and any(isinstance(n, ast.Name) and n.id in names for n in ast.walk(node))


def _bound_rows(tree: ast.AST, model: str) -> set[str]:
    """Names that hold a ``model`` row somewhere in the module: loaded with it (``s.get(Consent, ..)``,
    ``select(Consent)``), taken from such a name (``for c in linked``), or annotated with it."""
    bound: set[str] = set()
    for _ in range(3):  # names taken from names: a few rounds reach a fixed point
        for node in ast.walk(tree):
            source: ast.AST | None = None
            if isinstance(node, ast.Assign):
                source = node.value
            elif isinstance(node, ast.AnnAssign):
                source = node.annotation if _mentions(node.annotation, {model}) else node.value
            elif isinstance(node, (ast.For, ast.comprehension)):
                source = node.iter
            elif isinstance(node, ast.arg) and _mentions(node.annotation, {model}):
                bound.add(node.arg)
            taken = isinstance(source, ast.Name) and source.id in bound
            if source is not None and (taken or _mentions(source, {model})):
                bound |= {t.id for t in _targets(node) if isinstance(t, ast.Name)}
    return bound


def violations(source: str, path: str) -> list[str]:
    """Every place in one module that writes a row it does not own (``path`` as the repository names it)."""
    tree = ast.parse(source)
    foreign = {model for model, owner in OWNERS.items() if owner != path}
    loaded = _imported_models(tree) & foreign
    rows = {model: _bound_rows(tree, model) | {model.lower()} for model in loaded}
    out: list[str] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            called = _name(node.func)
            if called in foreign:
                out.append(f"{path}:{node.lineno} constructs a {called} row")
            elif called in STATEMENTS and node.args and _name(node.args[0]) in foreign:
                out.append(f"{path}:{node.lineno} runs {called}({_name(node.args[0])})")
        if isinstance(node, ast.Attribute) and node.attr == "meta" and "Voice" in loaded:
            out.append(f"{path}:{node.lineno} touches Voice.meta (ask the registry)")
        if not isinstance(node, ast.stmt):
            continue
        for target in _targets(node):
            if not isinstance(target, ast.Attribute):
                continue
            for model, names in rows.items():
                if target.attr in COLUMNS[model] and _name(target.value) in names:
                    out.append(f"{path}:{node.lineno} assigns {model}.{target.attr}")
    return out


def _modules() -> list[Path]:
    return sorted([*(ROOT / "src" / "voxvault").rglob("*.py"), *(ROOT / "bench").rglob("*.py")])


def test_only_the_owners_write_voice_and_consent_rows() -> None:
    modules = _modules()
    assert len(modules) > 50  # the scan sees the whole package
    found = [v for p in modules for v in violations(p.read_text(), p.relative_to(ROOT).as_posix())]
    assert found == [], "\n".join(found)


def test_the_scan_catches_each_kind_of_write() -> None:
    """The scan flags what it is meant to (so an empty result above means something)."""
    bad = """
from sqlalchemy import update
from voxvault.store.models import Consent, Voice

def f(s, voice_id):
    s.add(Voice(id=voice_id))
    s.execute(update(Consent).values(status="verified"))
    row = s.get(Voice, voice_id)
    row.status = "active"
    row.style_blob, row.previous_style_blob = "a", "b"
    meta = dict(row.meta)
    consent = s.get(Consent, row.consent_id)
    consent.revoked_at = None
"""
    found = violations(bad, "src/voxvault/jobs/elsewhere.py")
    assert len(found) == 7, found
    assert any("constructs a Voice row" in v for v in found)
    assert any("runs update(Consent)" in v for v in found)
    assert any("touches Voice.meta" in v for v in found)
    assert sum("assigns" in v for v in found) == 4, found
    # The owners themselves may: the registry writes voices, the consent service consents.
    assert (
        violations("from voxvault.store.models import Voice\nVoice(id='x').meta = {}\n", OWNERS["Voice"])
        == []
    )
    # Other rows and records keep their own ``status`` (jobs, batch items, a checks record).
    other = "from voxvault.store.models import Consent, Job\njob = s.get(Job, 1)\njob.status = 'failed'\n"
    assert violations(other, "src/voxvault/jobs/batch.py") == []
