"""Running the calibration kit on this machine: ``record(out_dir, seconds)`` runs each kit script
under bpftrace at once, for the same time, and writes the kit output directory that
mcexplore.calibration.importer reads (layout: mcexplore.calibration.kit).

Where it sits: under the CLI's ``mcexplore calibrate record``; record.sh beside it does the same
without Python. bpftrace needs root; ``missing_requirements()`` says what is missing first, so
that the CLI can refuse in one line before anything runs.

A script that bpftrace refuses with an error of ``kit.HEADER_FIXES`` (without BTF: "field has
incomplete type 'enum migrate_mode'") is run again at once, for the time left, with the header
that declares the type included (kit.with_include); kit.json's "includes" says which.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import signal
import socket
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path

from . import kit

KALLSYMS = "/proc/kallsyms"
TRACEFS = "/sys/kernel/tracing"
# After the scripts' own stop (their interval probe), how long they may take to print their maps.
GRACE_S = 60


@dataclass
class Recording:
    out: Path
    meta: dict
    failed: dict[str, str] = field(default_factory=dict)   # script -> first line of its stderr


def _is_root() -> bool:
    return hasattr(os, "geteuid") and os.geteuid() == 0


def missing_requirements(bpftrace: str = "bpftrace") -> str | None:
    """None when the kit can run here; else one line saying what is missing."""
    problems = []
    if not _is_root():
        problems.append("root (bpftrace attaches kprobes: run it with sudo)")
    if shutil.which(bpftrace) is None:
        problems.append(f"bpftrace ({bpftrace!r} is not on PATH; Debian/Ubuntu: apt-get install bpftrace)")
    if not problems:
        return None
    return "calibrate record needs " + " and ".join(problems)


def _kernel_names() -> set[str] | None:
    try:
        return kit.kallsyms_names(Path(KALLSYMS).read_text(encoding="utf-8", errors="replace"))
    except OSError:
        return None


def _ensure_tracefs() -> None:
    # bpftrace finds tracepoints and kprobe events there; a minimal guest may not mount it.
    if not Path(TRACEFS, "events").exists():
        subprocess.run(["mount", "-t", "tracefs", "nodev", TRACEFS], check=False,
                       stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


# The line that separates, in <name>.err, a first attempt's stderr from the run again's.
RERUN_MARK = "mcexplore calibrate record: run again with "


def _first_error(text: str) -> str:
    if RERUN_MARK in text:  # the last attempt's error, not the one that was fixed
        text = text[text.rindex(RERUN_MARK):].split("\n", 1)[-1]
    lines = [ln.strip() for ln in text.splitlines() if ln.strip()]
    errors = [ln for ln in lines if "ERROR" in ln and "RLIMIT_MEMLOCK" not in ln]
    return (errors or lines or ["exited without a message"])[0]


def record(out_dir, seconds: int, scripts=kit.SCRIPTS, bpftrace: str = "bpftrace",
           echo=None) -> Recording:
    """Run ``scripts`` for ``seconds`` (0: until Ctrl-C) and write the kit output to ``out_dir``."""
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    _ensure_tracefs()
    probes = kit.resolve_probes(_kernel_names())
    renamed = {k: v for k, v in probes.items() if k != v}
    if echo and renamed:
        echo("probes renamed for this kernel: " + ", ".join(f"{k} -> {v}" for k, v in renamed.items()))
    date = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    start = time.monotonic()

    def launch(s: str, secs: int, append: bool = False) -> subprocess.Popen:
        with open(out / f"{s}.txt", "wb") as so, open(out / f"{s}.err", "ab" if append else "wb") as se:
            return subprocess.Popen([bpftrace, "-q", str(out / f"{s}.bt"), str(int(secs))],
                                    stdout=so, stderr=se)

    procs = {}
    for s in scripts:
        (out / f"{s}.bt").write_text(kit.script_for_kernel(s, probes), encoding="utf-8")
        procs[s] = launch(s, seconds)
    if echo:
        echo(f"recording {', '.join(scripts)} for "
             + (f"{seconds} s" if seconds else "as long as you like (Ctrl-C stops)") + f" into {out}")
    includes: dict[str, str] = {}
    interrupted = False
    try:
        deadline = None if not seconds else start + seconds + GRACE_S
        while True:
            running = False
            for s, p in procs.items():
                rc = p.poll()
                if rc is None:
                    running = True
                elif rc != 0 and s not in includes:
                    header = kit.header_fix(
                        (out / f"{s}.err").read_text(encoding="utf-8", errors="replace"),
                        (out / f"{s}.bt").read_text(encoding="utf-8"))
                    if header is None:
                        continue
                    # bpftrace stops before attaching: run it again at once, for the time left
                    includes[s] = header
                    bt = out / f"{s}.bt"
                    bt.write_text(kit.with_include(bt.read_text(encoding="utf-8"), header), encoding="utf-8")
                    with open(out / f"{s}.err", "a", encoding="utf-8") as se:
                        se.write(f"{RERUN_MARK}#include <{header}> (bpftrace could not type a "
                                 "tracepoint field without it)\n")
                    left = 0 if not seconds else max(1, seconds - int(time.monotonic() - start))
                    procs[s] = launch(s, left, append=True)
                    if echo:
                        echo(f"{s}.bt: run again with #include <{header}> (bpftrace without BTF "
                             "needs it; see docs/calibration.md)")
                    running = True
            if not running or (deadline is not None and time.monotonic() > deadline):
                break
            time.sleep(0.2)
    except KeyboardInterrupt:
        interrupted = True
    finally:
        # bpftrace prints its maps on SIGINT. A Ctrl-C at the terminal reached the scripts too:
        # let them print before asking again; then insist.
        if interrupted:
            end = time.monotonic() + 5
            for p in procs.values():
                try:
                    p.wait(timeout=max(0.0, end - time.monotonic()))
                except subprocess.TimeoutExpired:
                    pass
        for p in procs.values():
            if p.poll() is None:
                p.send_signal(signal.SIGINT)
        for p in procs.values():
            try:
                p.wait(timeout=GRACE_S)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait()
    elapsed = time.monotonic() - start
    meta = {"kernel": platform.release(), "host": socket.gethostname(), "date": date,
            "duration_s": round(elapsed, 3), "kit_version": kit.KIT_VERSION,
            "scripts": list(scripts), "probes": probes, "recorder": "mcexplore calibrate record"}
    if includes:
        meta["includes"] = includes
    (out / kit.META_FILE).write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    failed = {}
    for s, p in procs.items():
        if p.returncode != 0:
            failed[s] = _first_error((out / f"{s}.err").read_text(encoding="utf-8", errors="replace"))
    return Recording(out, meta, failed)
