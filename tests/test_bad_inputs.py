"""A table of bad inputs, to the command line and to compiled functions: every row gives one
clear line naming what is wrong (and what would be accepted), none a Python traceback."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pytest

import chunkc
from chunkc import ops as O
from chunkc.cli import main
from chunkc.errors import InputError

from graphs import attention_block

torch = pytest.importorskip("torch")


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    folder = tmp_path_factory.mktemp("bad_inputs")
    model = folder / "attn.cir"
    chunkc.save(attention_block(), model)  # attn.cir and attn.cir.npz
    shape_only = folder / "shape_only.cir"
    shape_only.write_text(model.read_text())
    (folder / "garbage.cir").write_text("garbage\n")
    (folder / "corrupt.onnx").write_bytes(b"\x08\x07\x12\xff\xff not a model")
    return folder


# (arguments, text the error line must hold); {m} is the model, {d} its folder
CLI_ROWS = [
    ("compile {m} --budget 200%", "a percentage must be more than 0% and at most 100%"),
    ("compile {m} --budget 1.5", "a plain number is a fraction of the unchunked peak and must be in (0, 1]"),
    ("compile {m} --budget 1e30", "must be in (0, 1]"),
    ("compile {m} --budget abc", "budget 'abc' is not a budget: give a percentage (30%)"),
    ("compile {m} --budget=-5%", "a percentage must be more than 0%"),
    ("compile {m} --budget 0", "must be in (0, 1]"),
    ("compile {m} --budget 0B", "must be at least 1 byte"),
    ("compile {m} --budget 5parsecs", "unknown unit 'parsecs'"),
    ("compile {m} --budget 30% --sizes X=64", "graph attention_block has no size named X; its sizes: L"),
    ("compile {m} --budget 30% --sizes L=0", "--sizes L=0: a size must be a positive integer"),
    ("compile {m} --budget 30% --sizes L=-3", "--sizes L=-3: a size must be a positive integer"),
    ("compile {m} --budget 30% --sizes L=abc", "--sizes L=abc: a size must be a positive integer"),
    ("compile {m} --budget 30% --sizes L", "--sizes takes NAME=VALUE pairs such as L=2048"),
    ("compile {m} --budget 30%", "--sizes: give a value for L (e.g. --sizes L=2048)"),
    ("compile {m} --budget 0.1% --sizes L=64", "no chunk plan reaches the budget"),
    ("compile {d}/missing.cir", "missing.cir: no such file"),
    ("compile {d}/shape_only.cir", "its weights"),
    ("compile {d}/corrupt.onnx", "is not a valid ONNX protobuf"),
    ("compile {d}", "a folder; give a model file"),
    ("compile {m} -o {d}/no/such/folder/x.py", "No such file or directory"),
    ("dot {d}/garbage.cir", "garbage.cir: line 1, column 1: expected 'graph'"),
    ("dot {m} --budget 200% --sizes L=64", "at most 100%"),
    ("opt {m} -p autochunk{{budget=200%}} --sizes L=64", "pass autochunk: budget 200%"),
    ("opt {m} -p autochunk{{budget=64parsecs}} --sizes L=64", "unknown unit"),
    ("opt {m} -p autochunk{{budget=0.3}}", "--sizes: give a value for L"),
    ("opt {m} -p nosuchpass", "unknown pass 'nosuchpass'"),
    ("opt {m} -p autochunk{{beam=many}} --sizes L=64", "option beam='many' is not a valid"),
    ("diff {m}", "give a second model to compare with, or a pipeline with -p"),
    ("diff {m} -p dce --pass 7", "--pass '7' is not a pass of the pipeline"),
]


@pytest.mark.parametrize("args, expected", CLI_ROWS, ids=[r[0] for r in CLI_ROWS])
def test_cli_bad_input_gives_one_clear_line(files, args, expected, capsys):
    argv = args.format(m=files / "attn.cir", d=files).split()
    assert main(argv) == 1
    err = capsys.readouterr().err
    lines = err.splitlines()
    assert "Traceback" not in err
    assert lines and lines[0].startswith("chunkc: error: "), err
    assert expected in lines[0], err
    context = lines[1:]  # only a parse error adds the offending line and a caret under it
    assert not context or (len(context) == 2 and context[1].strip() == "^"), err


@pytest.mark.parametrize("args", ["compile {m} --budget -5%", "dot {m} --depth -1", "dot {m} --depth deep", "compile {m} --backend nosuch"])
def test_cli_bad_option_values_are_argparse_errors(files, args, capsys):
    with pytest.raises(SystemExit) as info:
        main(args.format(m=files / "attn.cir").split())
    err = capsys.readouterr().err
    assert info.value.code == 2 and "Traceback" not in err
    assert err.splitlines()[-1].startswith("usage: chunkc") or "error: argument" in err.splitlines()[-1]


def test_a_real_process_prints_no_traceback(files):
    out = subprocess.run([sys.executable, "-m", "chunkc.cli", "compile", str(files / "attn.cir"), "--budget", "abc"],
                         capture_output=True, text=True, timeout=300)
    assert out.returncode == 1 and "Traceback" not in out.stderr
    assert out.stderr.strip().splitlines() == ["chunkc: error: budget 'abc' is not a budget: give a percentage (30%), "
                                               "a fraction in (0, 1] (0.3) or bytes with a unit (64MiB, 1.5GB)"]


@pytest.mark.parametrize("text, value", [("30%", 0.3), ("0.3", 0.3), ("64MiB", 64 * 2**20), ("1.5GB", 1_500_000_000),
                                         ("5MB", 5_000_000), ("100%", 1.0), ("1", 1.0), ("512 KiB", 512 * 1024)])
def test_budget_forms_that_are_accepted(text, value):
    from chunkc.passes.budget_text import parse_budget
    assert parse_budget(text) == value


def test_cli_accepts_the_documented_budget_forms(files, tmp_path, capsys):
    for budget in ("50%", "0.5", "100KB", "1.5GB"):  # the unchunked peak at L=64 is 144 KiB
        assert main(["compile", str(files / "attn.cir"), "--budget", budget, "--sizes", "L=64",
                     "-o", str(tmp_path / "m.py")]) == 0, capsys.readouterr().err
    assert "budget 0.07 MiB" in capsys.readouterr().err  # 50% of 144 KiB: the report on stderr


# -- compiled functions ------------------------------------------------------------------------------


def paired_graph() -> chunkc.Graph:
    """x: f32[1, L, 8] and m: i64[1, 2*L + 1]: a static size, a shared symbol, a relation."""
    g = chunkc.Graph("paired")
    x = g.add_input("x", "f32", (1, "L", 8))
    m = g.add_input("m", "i64", (1, 2 * chunkc.sym("L") + 1))
    w = g.add_constant("w", np.ones((8, 8), np.float32))
    g.set_outputs(O.exp(O.matmul(x, w)), O.cast(m, dtype="f32"))
    return g


def _torch_args(L=4, dtype=torch.float32, m_len=None):
    return (torch.zeros(1, L, 8, dtype=dtype), torch.zeros(1, 2 * L + 1 if m_len is None else m_len, dtype=torch.int64))


# (backend, arguments, text the message must hold)
FN_ROWS = [
    ("torch", lambda: _torch_args()[:1], "graph paired takes 2 inputs (x: f32[1, L, 8], m: i64[1, 2*L + 1]), got 1"),
    ("torch", lambda: _torch_args() + (torch.zeros(1),), "takes 2 inputs"),
    ("torch", lambda: (np.zeros((1, 4, 8), np.float32), _torch_args()[1]),
     "input x: expected a torch.Tensor of f32[1, L, 8], got numpy.ndarray of shape (1, 4, 8); pass torch.from_numpy(x)"),
    ("torch", lambda: _torch_args(dtype=torch.float64),
     "input x: expected dtype f32 (torch.float32), got torch.float64; convert it with .to(torch.float32)"),
    ("torch", lambda: (torch.zeros(1, 4), _torch_args()[1]), "input x: expected rank 3 (f32[1, L, 8]), got shape (1, 4)"),
    ("torch", lambda: (torch.zeros(2, 4, 8), _torch_args()[1]), "input x: axis 0 must be 1 (f32[1, L, 8]), got 2"),
    ("torch", lambda: (torch.zeros(1, 4, 7), _torch_args()[1]), "input x: axis 2 must be 8 (f32[1, L, 8]), got 7"),
    ("torch", lambda: _torch_args(m_len=8), "input m: axis 1 must be 2*L + 1 = 9 (L = 4 from input x, axis 1), got 8"),
    ("torch", lambda: _torch_args(L=0), "input x: axis 1 is the size L, which must be at least 1, got 0"),
    ("torch", lambda: ("x", _torch_args()[1]), "input x: expected a torch.Tensor of f32[1, L, 8], got builtins.str"),
    ("numpy", lambda: tuple(torch.zeros(1, 4, 8) for _ in range(2)),
     "input x: expected a numpy.ndarray of f32[1, L, 8], got torch.Tensor of shape (1, 4, 8); pass x.numpy()"),
    ("numpy", lambda: (np.zeros((1, 4, 8)), np.zeros((1, 9), np.int64)),
     "input x: expected dtype f32, got float64; convert it with .astype(numpy.float32)"),
    ("numpy", lambda: (np.zeros((1, 3, 8), np.float32), np.zeros((1, 9), np.int64)),
     "input m: axis 1 must be 2*L + 1 = 7 (L = 3 from input x, axis 1), got 9"),
    ("numpy", lambda: (np.zeros((1, 4, 8), np.float32),), "graph paired takes 2 inputs"),
]


@pytest.fixture(scope="module")
def programs():
    g = paired_graph()
    return {"torch": chunkc.compile(g, backend="torch"), "numpy": chunkc.compile(g, backend="numpy")}


@pytest.mark.parametrize("backend, make_args, expected", FN_ROWS, ids=[f"{r[0]}-{r[2][:40]}" for r in FN_ROWS])
def test_compiled_function_bad_input_gives_one_clear_line(programs, backend, make_args, expected):
    with pytest.raises(InputError) as info:
        programs[backend](*make_args())
    message = str(info.value)
    assert "\n" not in message and expected in message, message


def test_good_inputs_pass_the_checks(programs):
    x, m = _torch_args(L=5)
    y, mf = programs["torch"](x, m)
    assert y.shape == (1, 5, 8) and mf.shape == (1, 11)
    y, mf = programs["numpy"](x.numpy(), m.numpy())
    assert y.shape == (1, 5, 8)


def test_an_input_on_another_device_is_named():
    """The device check, without a second device: the module's weights are said to live elsewhere."""
    from chunkc.backends import guards
    g = paired_graph()
    module = chunkc.compile(g, backend="torch")
    signature = type(module).forward.__wrapped__.__globals__["SIGNATURE"]
    error = guards.explain(signature, _torch_args(), torch.device("meta"))
    assert str(error) == ("graph paired, input x: is on cpu, the module's weights on meta; move the input with "
                          ".to('meta') or the module with .to('cpu')")
