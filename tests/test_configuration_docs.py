"""docs/configuration.md documents every setting hookhub reads, and no setting it does not."""

from __future__ import annotations

import re
from importlib.metadata import entry_points
from pathlib import Path

import pytest

from hookhub import create_app
from hookhub.config import DEFAULTS

DOC = Path(__file__).resolve().parent.parent / "docs" / "configuration.md"

# Read from the environment only, before the other layers; not in DEFAULTS.
LOCATION_VARIABLES = {"HOOKHUB_INSTANCE_PATH", "HOOKHUB_CONFIG_FILE"}
# Placeholder forms the doc uses when speaking of variables in general.
PLACEHOLDERS = {"HOOKHUB_*", "HOOKHUB_<PROVIDER>_<SETTING>"}
BUILT_IN_PROVIDERS = {"moncash", "monri", "monext"}

NAME = re.compile(r"HOOKHUB_(?:[A-Z0-9_]|<[A-Z]+>|\*)*")
CODE = re.compile(r"`([^`]+)`")


def _text() -> str:
    return DOC.read_text(encoding="utf-8")


def _rows() -> list[list[str]]:
    """Every table row of the doc (header and separator rows left out), as a list of cells."""
    rows = []
    for line in _text().splitlines():
        line = line.strip()
        if not line.startswith("|") or set(line) <= set("|-: "):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        if cells[0] == "variable":
            continue
        rows.append(cells)
    return rows


def _documented() -> dict[str, list[str]]:
    """Each variable named in backticks in a row's first cell, with that row."""
    documented: dict[str, list[str]] = {}
    for cells in _rows():
        for name in CODE.findall(cells[0]):
            assert name not in documented, f"{name} has two rows in {DOC.name}"
            documented[name] = cells
    return documented


@pytest.fixture(scope="module")
def providers(tmp_path_factory):
    """The providers that hookhub's own distribution registers, as the running app sees them."""
    ours = {ep.value.split(":")[0].split(".")[0] for ep in entry_points(group="hookhub")
            if ep.dist is not None and ep.dist.name == "hookhub"}
    app = create_app({"HOOKHUB_SCHEDULER": False}, instance_path=str(tmp_path_factory.mktemp("instance")),
                     environ={})
    try:
        statuses = app.extensions["hookhub"].registry.statuses.values()
        found = {s.name: s.cls for s in statuses if s.cls.__module__.split(".")[0] in ours}
    finally:
        app.extensions["hookhub"].close()
    assert BUILT_IN_PROVIDERS <= set(found), f"expected the built-in providers, found {sorted(found)}"
    return found


def _expected_default(value: object) -> str | None:
    """How a default is written in the doc's default cell, or None when the doc describes it in words."""
    if value is None:
        return None
    if value == "":
        return "empty"
    if isinstance(value, bool):
        return "`true`" if value else "`false`"
    if isinstance(value, float):
        return f"`{value:g}`"
    return f"`{value}`"


@pytest.mark.parametrize("name", sorted(DEFAULTS))
def test_every_core_setting_is_documented(name):
    assert f"`{name}`" in _text(), f"{name} is not in {DOC.name}"
    documented = _documented()
    assert name in documented, f"{name} has no row in a table of {DOC.name}"
    cells = documented[name]
    assert len(cells) == 4 and all(cells), f"{name}'s row needs a type, a default and a meaning: {cells}"
    expected = _expected_default(DEFAULTS[name])
    if expected is not None:
        assert expected in cells[2], f"{name}'s default is {DEFAULTS[name]!r}, the doc says {cells[2]!r}"


def test_location_variables_are_documented():
    documented = _documented()
    for name in LOCATION_VARIABLES:
        assert name in documented, f"{name} has no row in a table of {DOC.name}"


def test_every_provider_setting_is_documented(providers):
    documented = _documented()
    for provider, cls in providers.items():
        assert cls.settings, f"{provider} has no settings"
        for setting in cls.settings:
            variable = setting.variable(provider)
            assert f"`{variable}`" in _text(), f"{variable} is not in {DOC.name}"
            assert variable in documented, f"{variable} has no row in a table of {DOC.name}"
            _, secret, default, meaning = documented[variable]
            assert secret == ("yes" if setting.secret else "no"), f"{variable}: secret is {setting.secret}"
            if setting.required:
                assert default == "required", f"{variable} is required, the doc says {default!r}"
            else:
                assert default == f"`{setting.default}`", f"{variable}'s default is {setting.default!r}"
            assert meaning, f"{variable} has no meaning"


def test_no_unknown_setting_is_documented(providers):
    known = set(DEFAULTS) | LOCATION_VARIABLES | PLACEHOLDERS
    known |= {s.variable(provider) for provider, cls in providers.items() for s in cls.settings}
    mentioned = set(NAME.findall(_text()))
    assert mentioned, f"{DOC.name} names no HOOKHUB_ variable"
    unknown = sorted(mentioned - known)
    assert not unknown, f"{DOC.name} names settings hookhub does not have: {unknown}"
