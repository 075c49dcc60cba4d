"""Finding binaries: the venv's own first, then PATH; skip locally, fail in CI."""

from __future__ import annotations

import sysconfig
from pathlib import Path

import pytest

from tests.support.binaries import REQUIRE_ENV, find_binary, require_binary

# requirements-dev.txt installs it with pip, into this interpreter's scripts directory.
PIP_INSTALLED = "shellcheck"


def _fake_executable(directory: Path, name: str) -> Path:
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / name
    path.write_text("#!/bin/sh\nexit 0\n")
    path.chmod(0o755)
    return path


def test_a_pip_installed_binary_is_found_without_the_venv_on_path(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PATH", "/nonexistent")
    assert find_binary(PIP_INSTALLED) == str(Path(sysconfig.get_path("scripts")) / PIP_INSTALLED)


def test_the_interpreters_scripts_directory_wins_over_path(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A hand-installed copy on PATH must not hide the version requirements-dev.txt pins.
    _fake_executable(tmp_path, PIP_INSTALLED)
    monkeypatch.setenv("PATH", str(tmp_path))
    assert find_binary(PIP_INSTALLED) == str(Path(sysconfig.get_path("scripts")) / PIP_INSTALLED)


def test_a_binary_on_path_is_found(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tool = _fake_executable(tmp_path / "bin", "microstack-test-tool")
    monkeypatch.setenv("PATH", f"/nonexistent:{tool.parent}")
    assert find_binary(tool.name) == str(tool)


def test_an_empty_path_entry_does_not_search_the_working_directory(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _fake_executable(tmp_path, "microstack-test-tool")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("PATH", ":/nonexistent")
    assert find_binary("microstack-test-tool") is None


def test_a_missing_binary_skips_locally(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(REQUIRE_ENV, raising=False)
    with pytest.raises(pytest.skip.Exception, match="no-such-binary is not installed"):
        require_binary("no-such-binary")


def test_a_missing_binary_fails_when_binaries_are_required(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(REQUIRE_ENV, "1")
    with pytest.raises(pytest.fail.Exception, match=f"{REQUIRE_ENV} is set"):
        require_binary("no-such-binary")
