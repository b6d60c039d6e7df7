"""pyproject.toml's dependency ranges and requirements.txt's tested pins must agree."""

from __future__ import annotations

import tomllib
from pathlib import Path

from packaging.requirements import Requirement

TRAINER_DIR = Path(__file__).resolve().parent.parent


def pinned_requirements() -> dict[str, str]:
    pins = {}
    for line in (TRAINER_DIR / "requirements.txt").read_text(encoding="utf-8").splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            requirement = Requirement(line)
            (specifier,) = requirement.specifier
            assert specifier.operator == "==", f"requirements.txt pins exact versions: {line}"
            pins[requirement.name] = specifier.version
    return pins


def test_pins_satisfy_the_package_ranges() -> None:
    project = tomllib.loads((TRAINER_DIR / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    declared = [Requirement(text) for text in project["dependencies"] + project["optional-dependencies"]["test"]]
    pins = pinned_requirements()
    assert sorted(requirement.name for requirement in declared) == sorted(pins)
    for requirement in declared:
        assert requirement.specifier.contains(pins[requirement.name]), f"{requirement} excludes {pins[requirement.name]}"
