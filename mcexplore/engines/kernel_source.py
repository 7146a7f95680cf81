"""The kernel sources as one translation unit, and the cache key of a compiled build.

Where it sits: under the compiled engines (mcexplore.engines.native compiles the unit with g++,
mcexplore.engines.cupy_engine with NVRTC through cupy.RawModule). The sources are package data:
the repository's kernels/ folder is the package ``mcexplore.kernels`` (pyproject), read through
``importlib.resources`` so an installed wheel works as well as an editable checkout.

``assemble()`` inlines every ``#include "x.h"`` of the main file (recursively, each header once;
``#pragma once`` lines become comments) and puts ``#line N "file"`` directives around every
inlined piece, so a compiler error names the real header and line, not a line of the assembled
text. ``cache_key()`` is a sha256 over the name and text of every source file, the compiler
options and a compiler identity string: any change to any header gives a new key, so a stale
binary is never loaded.
"""

from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from pathlib import Path

MAIN = "mcexplore.cu"
HEADERS = ("portability.h", "constants.h", "philox.h", "params.h", "sample.h", "transient.h", "drawcache.h",
           "picktree.h", "lanes.h", "page.h", "strategies.h", "block.h", "engine.h")
_INCLUDE = re.compile(r'^\s*#\s*include\s+"([^"]+)"\s*$')
_PRAGMA_ONCE = re.compile(r"^\s*#\s*pragma\s+once\s*$")


def _kernel_dir():
    """A Traversable for the kernel sources: the package mcexplore.kernels, or the checkout."""
    try:
        import importlib.resources as resources

        d = resources.files("mcexplore.kernels")
        if d.joinpath(MAIN).is_file():
            return d
    except (ModuleNotFoundError, TypeError):
        pass
    # Not installed (e.g. PYTHONPATH=. on a bare machine): the repository's kernels/ folder.
    d = Path(__file__).resolve().parents[2] / "kernels"
    if (d / MAIN).is_file():
        return d
    raise FileNotFoundError("mcexplore kernel sources not found (package mcexplore.kernels)")


def source_files(overrides: dict | None = None) -> dict[str, str]:
    """name -> text of every kernel source (main file and headers); ``overrides`` replace texts."""
    d = _kernel_dir()
    names = [MAIN] + list(HEADERS)
    # Any other header shipped beside them is part of the build too (so it is in the cache key).
    for entry in d.iterdir():
        n = entry.name
        if (n.endswith(".h") or n.endswith(".cuh")) and n not in names:
            names.append(n)
    out = {n: d.joinpath(n).read_text(encoding="utf-8") for n in names}
    if overrides:
        out.update(overrides)
    return out


def display_name(name: str) -> str:
    """The file name a compiler error shows: the real path where the sources are real files."""
    d = _kernel_dir()
    p = d.joinpath(name)
    try:
        s = str(Path(str(p)))
        if Path(s).is_file():
            return s
    except Exception:
        pass
    return f"mcexplore/kernels/{name}"


def _cstr(s: str) -> str:
    return s.replace("\\", "\\\\").replace('"', '\\"')


def assemble(overrides: dict | None = None, files: dict | None = None) -> str:
    """The single translation unit: the main file with its headers inlined under #line directives."""
    files = files if files is not None else source_files(overrides)
    done: set[str] = set()
    out: list[str] = []

    def emit(name: str):
        done.add(name)
        disp = _cstr(display_name(name))
        out.append(f'#line 1 "{disp}"')
        for lineno, line in enumerate(files[name].splitlines(), start=1):
            m = _INCLUDE.match(line)
            if m and m.group(1) in files:
                inc = m.group(1)
                if inc not in done:
                    emit(inc)
                    out.append(f'#line {lineno + 1} "{disp}"')
                else:
                    out.append(f"// (already inlined above) {inc}")
                continue
            if _PRAGMA_ONCE.match(line):
                out.append("// #pragma once (inlined)")
                continue
            out.append(line)

    emit(MAIN)
    return "\n".join(out) + "\n"


def cache_key(options=(), compiler_id: str = "", overrides: dict | None = None,
              files: dict | None = None) -> str:
    """sha256 over every source file (name and text), the options and the compiler identity."""
    files = files if files is not None else source_files(overrides)
    h = hashlib.sha256()
    h.update(b"mcexplore-kernels\0")
    for name in sorted(files):
        h.update(name.encode() + b"\0")
        h.update(files[name].encode("utf-8") + b"\0")
    for o in options:
        h.update(str(o).encode() + b"\0")
    h.update(b"\0compiler\0" + compiler_id.encode())
    return h.hexdigest()


@dataclass
class KernelSource:
    code: str
    key: str


def load(options=(), compiler_id: str = "", overrides: dict | None = None) -> KernelSource:
    files = source_files(overrides)
    return KernelSource(assemble(files=files), cache_key(options, compiler_id, files=files))
