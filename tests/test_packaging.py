"""A non-editable install holds every module chunkc runs: the packages pyproject.toml finds
cover every folder of chunkc/ and frontends/, and nothing there needs package data."""

from __future__ import annotations

import tomllib
from pathlib import Path

import setuptools

ROOT = Path(__file__).resolve().parent.parent


def _config() -> dict:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())


def test_every_file_of_chunkc_and_frontends_is_installed():
    include = _config()["tool"]["setuptools"]["packages"]["find"]["include"]
    packages = set(setuptools.find_packages(str(ROOT), include=include))
    assert {"chunkc", "chunkc.zoo", "chunkc.ir.ops", "frontends.onnx.converters"} <= packages
    for top in ("chunkc", "frontends"):
        for path in (ROOT / top).rglob("*"):
            if "__pycache__" in path.parts or not path.is_file():
                continue
            package = ".".join(path.parent.relative_to(ROOT).parts)
            assert package in packages, f"{path.relative_to(ROOT)} is in no installed package (add an __init__.py)"
            assert path.suffix == ".py", (f"{path.relative_to(ROOT)} is not Python: declare it as package data in "
                                          "pyproject.toml")


def test_console_script_and_version_come_from_the_package():
    config = _config()
    module, _, function = config["project"]["scripts"]["chunkc"].partition(":")
    assert callable(getattr(__import__(module, fromlist=[function]), function))
    assert config["project"]["dynamic"] == ["version"]
    assert config["tool"]["setuptools"]["dynamic"]["version"] == {"attr": "chunkc.version.__version__"}
    import chunkc
    from chunkc.version import __version__
    assert chunkc.__version__ == __version__
