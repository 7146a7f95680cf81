"""The ``mcexplore calibrate`` commands: ``record`` runs the bpftrace kit on this machine,
``import`` turns its output into a scenario whose measured timings are histograms.

Where it sits: beside mcexplore.cli (which registers ``calibrate`` with ``main.add_command``), over
mcexplore.calibration (record, importer), which each command imports in its body. Input errors
exit with status 2 and one line naming the file or option, the value and what is valid.
"""

from __future__ import annotations

import math

import click

from .cli_options import check_out_path, write_out


def _fail(msg: str):
    raise click.UsageError(msg)


@click.group("calibrate", epilog="""\b
Examples:
  mcexplore calibrate record --out kit-out --duration 60s     # as root
  mcexplore calibrate import kit-out --base thread-2018 --out my-machine.toml
  mcexplore run my-machine.toml -n 2000
""")
def calibrate():
    """Measure the model's timings on a live kernel (bpftrace) and import them into a scenario.

    The kit's scripts ship in the package (mcexplore/calibration/*.bt, with record.sh for
    machines without mcexplore); docs/calibration.md says what each measures, the kernel
    functions it probes on v4.19, 5.x and 6.x, and what cannot be measured.
    """


def _seconds(ctx, param, value) -> int:
    from .units import UnitError, parse_duration

    try:
        ns = parse_duration(value)
    except UnitError as e:
        raise click.BadParameter(f"{value!r} is not valid: {e.reason}; 0 records until Ctrl-C") from None
    return int(math.ceil(ns / 1e9))


@calibrate.command("record", epilog="""\b
Examples (as root):
  mcexplore calibrate record --out kit-out --duration 60s
  mcexplore calibrate record --out kit-out --duration 0 -S fault -S offline
""")
@click.option("--out", "out", required=True, type=click.Path(file_okay=False),
              help="The kit output directory to write (created if missing).")
@click.option("--duration", default="30s", show_default=True, callback=_seconds,
              help="How long to record (whole seconds, rounded up); 0: until Ctrl-C.")
@click.option("-S", "--script", "scripts", multiple=True,
              type=click.Choice(["rmap", "move", "fault", "offline"]),
              help="Run only these kit scripts (repeatable; default: all four).")
@click.option("--bpftrace", default="bpftrace", show_default=True, help="The bpftrace executable.")
def record_cmd(out, duration, scripts, bpftrace):
    """Run the bpftrace kit on this machine while a workload runs, and write KIT_OUTPUT.

    Needs root and bpftrace (0.17 or later; kprobes and tracepoints only: no BTF needed, but
    without BTF the tracepoint scripts need the kernel's headers). Start the
    workload (offline a memory block while tasks fault on its pages) during the recording.
    The directory gets, per script NAME, NAME.txt (the maps bpftrace printed), NAME.err and
    NAME.bt (the script as run, probes renamed for this kernel), and kit.json (kernel, host,
    date, duration_s, kit_version, probes).
    """
    from .calibration import kit
    from .calibration.record import missing_requirements, record

    problem = missing_requirements(bpftrace)
    if problem:
        _fail(problem)
    check_out_path("--out", out, is_dir=True)
    rec = record(out, duration, scripts=tuple(scripts) or kit.SCRIPTS, bpftrace=bpftrace,
                 echo=lambda m: click.echo(m, err=True))
    for s, why in rec.failed.items():
        click.echo(f"warning: {s}.bt failed: {why} (see {rec.out / (s + '.err')})", err=True)
    ran = [s for s in rec.meta["scripts"] if s not in rec.failed]
    if not ran:
        raise click.ClickException("no kit script ran: " + "; ".join(f"{s}.bt: {w}" for s, w in rec.failed.items()))
    click.echo(f"wrote {rec.out} ({', '.join(ran)}; kernel {rec.meta['kernel']}, "
               f"{rec.meta['duration_s']:g} s); next: mcexplore calibrate import {rec.out} "
               "--base thread-2018 --out my-machine.toml")


@calibrate.command("import", epilog="""\b
Examples:
  mcexplore calibrate import kit-out --base thread-2018 --out my-machine.toml
  mcexplore calibrate import kit-out --base configs/thread-2018-block.toml --out block.toml --min-samples 100
""")
@click.argument("kit_output", type=click.Path())
@click.option("--base", default="thread-2018", show_default=True,
              help="The scenario to calibrate: a shipped name or a TOML path.")
@click.option("--out", "out", required=True, type=click.Path(dir_okay=False),
              help="The scenario TOML to write.")
@click.option("--name", default=None, help="The new scenario's name (default: BASE-HOST).")
@click.option("--min-samples", default=None, type=click.IntRange(min=1),
              help="Fewer samples than this keep a field at its estimate (default: 20).")
def import_cmd(kit_output, base, out, name, min_samples):
    """Turn a kit output (KIT_OUTPUT: the directory `calibrate record` or record.sh wrote) into a
    scenario: the measured timings become `histogram` distributions with their provenance (host,
    kernel, date, sample count, script and map) in the field's `why`; the other fields keep their
    estimates and notes. migrate_pages outcome counts and the other observations are printed and
    written as comments at the top of the TOML.
    """
    from .calibration import kit
    from .calibration.importer import CalibrationError, calibrate as do_calibrate
    from .scenario import ScenarioError

    check_out_path("--out", out)
    try:
        cal = do_calibrate(kit_output, base=base, name=name,
                           min_samples=min_samples or kit.MIN_SAMPLES)
    except (CalibrationError, ScenarioError) as e:
        _fail(str(e).replace("\n", "; "))
    for w in cal.warnings:
        click.echo(f"warning: {w}", err=True)
    for line in cal.summary_lines():
        click.echo(line)
    problem = write_out("--out", out, cal.to_toml())
    if problem:
        _fail(problem)
    click.echo(f"wrote {out} ({len(cal.measured)} fields measured); run it: mcexplore run {out}")


COMMANDS = [calibrate]
