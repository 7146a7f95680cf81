"""One definition of the shared constants: the kernels' generated header is what the Python
module says, and no hand-written copy of a layout value is left in the kernels or the engines."""

from __future__ import annotations

import re
import subprocess
import sys

import pytest

from mcexplore import constants as K
from mcexplore import strategies
from mcexplore.engines import kernel_source


def test_checked_in_header_is_the_generated_text():
    shipped = kernel_source.source_files()["constants.h"]
    assert shipped == K.header_text(), "kernels/constants.h is stale: python -m mcexplore.constants --write"


def test_check_command_fails_on_a_stale_header(tmp_path, monkeypatch):
    stale = tmp_path / "constants.h"
    stale.write_text(K.header_text().replace("#define MCX_R_LIVELOCK 5", "#define MCX_R_LIVELOCK 6"))
    monkeypatch.setattr(K, "HEADER_PATH", stale)
    assert K.main(["--check"]) == 1
    stale.write_text(K.header_text())
    assert K.main(["--check"]) == 0


def test_module_entry_point_prints_the_header():
    out = subprocess.run([sys.executable, "-m", "mcexplore.constants"], capture_output=True, text=True,
                         check=True).stdout
    assert out == K.header_text()


def _defines(text: str) -> dict[str, str]:
    return dict(re.findall(r"^#define (MCX_[A-Z0-9_]+)(?:\(\w+\))? (.+?)(?:  //.*)?$", text, flags=re.M))


def test_header_values_are_the_module_values():
    d = _defines(K.header_text())
    for enum, prefix, _ in K._TABLES:
        for m in enum:
            assert int(d[f"MCX_{prefix}_{m.name}"]) == int(m), (prefix, m.name)
    assert int(d["MCX_PARAMS_MAGIC"].rstrip("L"), 16) == K.PARAMS_MAGIC
    assert int(d["MCX_NFIELDS"]) == K.NFIELDS == len(K.FIELD_NAMES)
    for s in strategies.registry().rows:
        assert int(d[f"MCX_S_{s.name.upper()}"]) == s.code
    fields = {f.name.lower(): f"MCX_R_{f.name}" for f in K.Field}
    assert d["MCX_OUTCOME_FIELDS"] == "{" + ", ".join(fields[o] for o in K.OUTCOMES) + "}"
    assert d["MCX_SUM_FIELDS"] == "{" + ", ".join(fields[o] for o in K.SUMS) + "}"
    assert d["MCX_EXAMPLE_FIELDS"] == "{" + ", ".join(fields[o] for o in K.EXAMPLE_OUTCOMES) + "}"


def test_a_new_strategy_changes_the_header():
    row = strategies.Strategy("toy", len(strategies.names()), "t", "none", "-", "x:Y")
    with strategies.use(strategies.registry().add(row)):
        text = K.header_text()
    assert f"#define MCX_S_TOY {row.code}" in text and "X(MCX_S_TOY)" in text
    assert text != K.header_text()


# Every macro the generated header defines may be defined nowhere else in the kernels, and no
# Python module may assign a shared table by hand.
def test_no_hand_written_copy_in_the_kernels():
    generated = set(_defines(K.header_text()))
    for name, text in kernel_source.source_files().items():
        if name == "constants.h":
            continue
        again = generated & set(re.findall(r"^\s*#\s*define (MCX_[A-Z0-9_]+)", text, flags=re.M))
        assert not again, f"{name} defines {sorted(again)} again (they come from constants.h)"


@pytest.mark.parametrize("pattern", [
    r"^\s*(UNMAP|REMAP|ACCESS|WAKE|MIG_WAKE)\s*=\s*\d",
    r"^\s*(EV_[A-Z_]+|H_[A-Z_]+|TASK_WORDS|SIM_WORDS|HDR_WORDS|NEX|EXAMPLES|REDUCE_BLOCK)\s*=\s*\d",
    r"^\s*(STRATEGIES|DIST_NAMES|OUTCOMES|SUMS|EXAMPLE_OUTCOMES)\s*=\s*\(\s*\"",
    r"^\s*(SUB_SHIFT|BLOCK_PAGE|MAGIC|VERSION)\s*=\s*\d",
])
def test_no_hand_written_copy_in_python(pattern):
    from pathlib import Path

    root = Path(K.__file__).parent
    hits = []
    for f in root.rglob("*.py"):
        if f.name == "constants.py":
            continue
        for i, line in enumerate(f.read_text(encoding="utf-8").splitlines(), 1):
            if re.match(pattern, line):
                hits.append(f"{f.relative_to(root)}:{i}: {line.strip()}")
    assert not hits, "\n".join(hits)
