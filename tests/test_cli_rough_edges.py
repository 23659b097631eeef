"""CLI and packaging rough edges of issue 12: --version, defaults in every help, --json -, the [torch] hint, LICENSE."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from optinv.cli import build_parser, main
from optinv.version import __version__

ROOT = Path(__file__).resolve().parents[1]


def test_version(capsys):
    with pytest.raises(SystemExit) as info:
        main(["--version"])
    assert info.value.code == 0 and capsys.readouterr().out.strip() == f"optinv {__version__}"


def all_parsers():
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return [("optinv", parser), *sub.choices.items()]


@pytest.mark.parametrize("name,parser", all_parsers(), ids=[n for n, _ in all_parsers()])
def test_every_option_has_help_with_its_default(name, parser):
    for action in parser._actions:
        if isinstance(action, (argparse._HelpAction, argparse._VersionAction, argparse._SubParsersAction)):
            continue
        assert action.help, f"{name} {action.dest}: no help text"
        if action.option_strings:
            assert "default" in action.help, f"{name} {action.option_strings[0]}: help does not give the default"


@pytest.mark.parametrize("argv", [
    ["basis", "--l-max", "1", "--n-max", "2"],
    ["check", "FILE", "--l-max", "1"],
    ["verify", "hop_l1_n2", "--max-examples", "2", "--backends", "c-f64", "--properties", "reference"],
])
def test_json_dash_writes_only_json_to_stdout(argv, capsys, tmp_path):
    (tmp_path / "f.txt").write_text("i,i->,v,v\n")
    argv = [str(tmp_path / "f.txt") if a == "FILE" else a for a in argv]
    rc = main(argv + ["--json", "-"])
    out = capsys.readouterr()
    assert rc in (0, 1)
    json.loads(out.out)  # stdout is the JSON document and nothing else
    assert not (Path.cwd() / "-").exists()
    assert out.err  # the human-readable report went to stderr


def test_missing_torch_names_the_extra():
    code = ("import sys; sys.modules['torch'] = None\n"
            "from optinv.generated import hop_l1_n2 as m\n"
            "try:\n    m.torch_invariants\nexcept ModuleNotFoundError as exc:\n    print(exc)\n")
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "pip install 'optinv[torch]'" in res.stdout, res.stdout + res.stderr


def test_license_is_bsd_3_clause_as_pyproject_says():
    meta = tomllib.loads((ROOT / "pyproject.toml").read_text())
    assert meta["project"]["license"]["text"] == "BSD-3-Clause"
    text = (ROOT / "LICENSE").read_text()
    assert text.startswith("BSD 3-Clause License") and "Neither the name of the copyright holder" in text
