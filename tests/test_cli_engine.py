"""Command line of the engine: ``optinv basis``, ``optinv check``, ``optinv table``; docstring examples."""

import json
import os
import re
import shutil
import subprocess
import sys

import pytest

import optinv.testing as ot
from optinv.algebra.select import select_basis
from optinv.algebra.signature import Signature
from optinv.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_basis_default_request_and_json(capsys, tmp_path):
    path = tmp_path / "basis.json"
    code, out, _ = run(capsys, "basis", "--l-max", "3", "--n-max", "4", "--json", str(path), "--quiet")
    assert code == 0
    assert re.search(r"13 invariants, rank 13 / bound 13 \(complete\)", out)
    assert "ij,ik,jk->,q,q,q" in out and "certificate" in out
    data = json.loads(path.read_text())
    assert data["rank"] == data["bound"] == 13
    assert data["signature"]["tensors"][3] == {"name": "t", "rank": 3, "parity": -1}
    assert len(data["invariants"]) == 13
    assert all(isinstance(inv["einsum"], str) and isinstance(inv["degree"], int) for inv in data["invariants"])
    assert [inv["einsum"] for inv in data["invariants"]] == select_basis(Signature.from_l_max(3), 4).einsums


def test_basis_with_tensors_group_and_progress(capsys):
    code, out, err = run(capsys, "basis", "--tensors", "a:1,b:1,q:2", "--group", "so3", "--n-max", "3")
    assert code == 0
    assert "[SO3, D=11]" in out and "rank 8 / bound 8" in out
    assert "degree 1:" in err  # progress lines go to stderr


def test_basis_incomplete_says_maximal(capsys):
    code, out, _ = run(capsys, "basis", "--l-max", "3", "--n-max", "2", "--quiet")
    assert code == 0
    assert "rank 4 / bound 13 (maximal for n_max)" in out
    assert "all 4 candidates with at most 2 factors were checked" in out


def test_check_hippynn_13(capsys, tmp_path):
    path = tmp_path / "hippynn.txt"
    path.write_text("# HIP-HOP-NN, l_max=3, n_max=4\n" + "\n".join(ot.HIPPYNN_INVARIANTS) + "\n")
    out_json = tmp_path / "report.json"
    code, out, _ = run(capsys, "check", str(path), "--json", str(out_json))
    assert code == 0
    assert "13 given, 13 independent; rank 13 / bound 13 (complete)" in out
    data = json.loads(out_json.read_text())
    assert data["complete"] and all(e["independent"] for e in data["entries"])


def test_table_matches_select_basis(capsys):
    code, out, _ = run(capsys, "table", "--l-max", "5", "--n-max", "6", "--quiet")
    assert code == 0
    rows = [line for line in out.splitlines() if re.match(r"\| \d", line)]
    assert len(rows) == 6
    for l_max, line in enumerate(rows):
        cells = [c.strip() for c in line.strip("|").split("|")][1:]
        assert len(cells) == 6
        sig = Signature.from_l_max(l_max)
        for n_max, cell in enumerate(cells, start=1):
            b = select_basis(sig, n_max)
            assert cell == f"{b.rank} / {b.bound.bound}"
    # the last row: l_max=5 reaches its bound 33 from n_max=4 on
    assert rows[5].endswith("| 33 / 33 | 33 / 33 | 33 / 33 |")


def _write(tmp_path, text):
    path = tmp_path / "list.txt"
    path.write_text(text + "\n")
    return str(path)


@pytest.mark.parametrize(
    "argv, needle",
    [
        (["check", "{f}", "--tensors", "a:1"], "unknown tensor name 'b'"),  # file: i,i->,a,b
        (["check", "{f}"], "unknown tensor name 'x'"),
        (["basis", "--tensors", "a:-1"], "rank"),
        (["basis", "--l-max", "-1"], "l_max"),
        (["basis", "--n-max", "0"], "n_max"),
        (["basis", "--l-max", "2", "--tensors", "a:1"], "either --l-max or --tensors"),
        (["basis", "--group", "O2"], "group"),
        (["check", "/nonexistent/list.txt"], "no such file"),
    ],
)
def test_bad_input_exits_2_with_one_line(capsys, tmp_path, argv, needle):
    text = "i,i->,a,b" if "--tensors" in argv and argv[0] == "check" else "i,i->,v,x"
    f = _write(tmp_path, text)
    code, out, err = run(capsys, *[a.replace("{f}", f) for a in argv])
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("optinv: error:")
    assert needle in lines[0]


@pytest.mark.parametrize(
    "line, needle",
    [
        ("ij,i->,v,q", "rank 1 but subscripts 'ij'"),  # rank mismatch
        ("i,j->,v,v", "not a full contraction"),
        ("ij,ij->i,q,q", "not a full contraction"),
        ("ii->,q", "trace"),
        ("i,j,k,ijk->,v,v,v,eps", "pseudoscalar"),  # eps under O(3)
        ("i,i,j,j->,v,v,v,v", "disconnected"),
    ],
)
def test_check_refuses_bad_einsum_strings(capsys, tmp_path, line, needle):
    f = _write(tmp_path, "i,i->,v,v\n" + line)
    code, _, err = run(capsys, "check", f, "--l-max", "2")
    assert code == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "line 2" in lines[0] and needle in lines[0]


@pytest.mark.skipif(shutil.which("optinv") is None and not os.path.exists(os.path.join(os.path.dirname(sys.executable), "optinv")),
                    reason="console script not installed")
def test_console_script(tmp_path):
    exe = shutil.which("optinv") or os.path.join(os.path.dirname(sys.executable), "optinv")
    path = tmp_path / "b.json"
    done = subprocess.run([exe, "basis", "--l-max", "2", "--n-max", "4", "--json", str(path), "--quiet"],
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads(path.read_text())
    assert data["rank"] == data["bound"] == 6
    bad = subprocess.run([exe, "basis", "--n-max", "0"], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "n_max" in bad.stderr


def test_testing_module_imports_without_hypothesis_and_says_what_to_install(monkeypatch):
    code = "import sys, optinv.testing; print('hypothesis' in sys.modules)"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "False"  # hypothesis is imported only when a strategy is built
    monkeypatch.setitem(sys.modules, "hypothesis", None)
    with pytest.raises(ImportError, match="pip install hypothesis"):
        ot.rotations()


@pytest.mark.parametrize("argv, message", [
    (["basis", "--json", "/nonexistent/dir/b.json", "--quiet"], "No such file"),
    (["basis", "--tensors", ""], "tensors"),
    (["table", "--l-min", "3", "--l-max", "1"], "l_min"),
    (["table", "--l-max", "20"], "at most 12"),
])
def test_more_bad_input_is_one_line_exit_2(argv, message, capsys):
    from optinv.cli import main

    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


def test_negative_seed_and_non_utf8_file_are_refused(tmp_path, capsys):
    from optinv.cli import main

    with pytest.raises(SystemExit) as exc:
        main(["basis", "--seed", "-1"])
    assert exc.value.code == 2
    f = tmp_path / "bin.txt"
    f.write_bytes(b"\xff\xfe\n")
    assert main(["check", str(f)]) == 2
    assert "not a UTF-8 text file" in capsys.readouterr().err


def test_check_reports_identically_vanishing_entries(tmp_path, capsys):
    from optinv.cli import main

    f = tmp_path / "v.txt"
    f.write_text("i,i->,a,a\nijk,i,j,k->,eps,a,a,b\n")
    assert main(["check", str(f), "--tensors", "a:1,b:1", "--group", "so3"]) == 0
    assert "vanishes identically" in capsys.readouterr().out


def test_non_ascii_subscripts_are_refused():
    from optinv.algebra.errors import OptinvError
    from optinv.algebra.graphs import ContractionGraph
    from optinv.algebra.signature import Signature

    with pytest.raises(OptinvError, match="ASCII letters"):
        ContractionGraph.from_einsum("é,é->,v,v", Signature.from_l_max(1))
