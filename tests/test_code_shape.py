"""The code's own rules, checked: keyword-only dataclasses past three fields, and no branch on a
medium's name outside the media registry (:mod:`pairsynth.media`)."""

from __future__ import annotations

import dataclasses
import importlib
import pkgutil
import re
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
SOURCE_DIRS = ("pairsynth", "modalities", "alignment")
PACKAGES = ("pairsynth", "pairsynth.modalities", "pairsynth.alignment")
REGISTRY = REPO / "pairsynth" / "media.py"

MEDIUM = r"""["'](?:image|audio)["']"""
MEDIUM_BRANCHES = re.compile("|".join([
    rf"[=!]=\s*{MEDIUM}",  # medium == "image"
    rf"{MEDIUM}\s*[=!]=",  # "image" == medium
    rf"{MEDIUM}\s+if\b",  # "image" if images else "audio"
    rf"{MEDIUM}\s+(?:not\s+)?in\b",  # "image" in loaded
    rf"in\s*[(\[{{]\s*{MEDIUM}\s*,\s*{MEDIUM}\s*[)\]}}]",  # for medium in ("image", "audio")
]))


def _modules() -> list[str]:
    """Every module of the installed package (its modalities and alignment subpackages included) that
    imports here; modules needing an optional dependency that is not installed (ray …) are skipped."""
    names = []
    for package in PACKAGES:  # an editable install maps the last two from folders beside pairsynth/
        root = importlib.import_module(package)
        names.append(package)
        for info in pkgutil.walk_packages(root.__path__, f"{package}."):
            if info.name.endswith("__main__") or info.name in names:
                continue
            try:
                importlib.import_module(info.name)
            except ImportError as err:
                if (err.name or "").startswith("pairsynth"):
                    raise
                continue
            names.append(info.name)
    return names


def long_positional_dataclasses(modules: list[str]) -> list[str]:
    """``module.Class (N fields)`` for each dataclass defined in ``modules`` with more than three fields
    that may be built positionally."""
    found = []
    for name in modules:
        for value in vars(importlib.import_module(name)).values():
            if not (isinstance(value, type) and dataclasses.is_dataclass(value) and value.__module__ == name):
                continue
            fields = dataclasses.fields(value)
            if len(fields) > 3 and any(f.init and not f.kw_only for f in fields):
                found.append(f"{name}.{value.__qualname__} ({len(fields)} fields)")
    return found


def medium_branches(root: Path = REPO) -> list[str]:
    """``path:line: text`` for each comparison with a medium's name outside the registry."""
    hits = []
    for folder in SOURCE_DIRS:
        for path in sorted((root / folder).rglob("*.py")):
            if path.resolve() == REGISTRY.resolve():
                continue
            for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
                if MEDIUM_BRANCHES.search(line.split("#", 1)[0]):
                    hits.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    return hits


def test_dataclasses_past_three_fields_are_keyword_only():
    modules = _modules()
    assert {"pairsynth.media", "pairsynth.modalities.text_to_image", "pairsynth.alignment.qa_report"} <= set(modules)
    assert long_positional_dataclasses(modules) == []


def test_the_dataclass_check_finds_a_positional_one():
    @dataclasses.dataclass
    class Four:
        a: int
        b: int
        c: int
        d: int

    Four.__module__ = __name__
    globals()["Four"] = Four
    try:
        assert long_positional_dataclasses([__name__]) == [f"{__name__}.{Four.__qualname__} (4 fields)"]
    finally:
        del globals()["Four"]


def test_no_medium_branches_outside_the_registry():
    assert medium_branches() == []


def test_the_branch_check_finds_one(tmp_path):
    for folder in SOURCE_DIRS:
        (tmp_path / folder).mkdir()
    (tmp_path / "alignment" / "x.py").write_text('ok = modality in MEDIA\nif medium == "audio":\n    pass\n'
                                                 'kind = "image" if images else "audio"\n')
    assert medium_branches(tmp_path) == ['alignment/x.py:2: if medium == "audio":',
                                         'alignment/x.py:4: kind = "image" if images else "audio"']
