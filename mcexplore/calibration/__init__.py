"""Calibration on a real kernel: a bpftrace kit that measures the model's timings (MODEL.md 1.2)
on a live machine, and the import of its output into a scenario.

Where it sits: beside mcexplore.scenario, which it feeds; the CLI's ``mcexplore calibrate record``
and ``mcexplore calibrate import`` (mcexplore.cli_calibrate) are its shell. docs/calibration.md
tells the whole story.

The modules, in dependency order:

    kit        the contract: scripts, maps, the model field each feeds, kernel names (PROBES)
    *.bt       the bpftrace scripts (package data), and record.sh, which runs them without Python
    bpfout     bpftrace's printed maps (hist, lhist, scalars, keyed maps) read into BpfMap objects
    record     runs the scripts and writes a kit output directory
    importer   a kit output directory -> a calibrated Scenario and its TOML
"""

from .bpfout import BpfMap, BpfOutputError, Bucket, Histogram, parse_bpftrace_file, parse_bpftrace_output
from .importer import Calibration, CalibrationError, KitMeta, calibrate, histogram_table, read_kit
from .kit import KIT_VERSION, MEASURES, MIN_SAMPLES, OBSERVATIONS, PROBES, SCRIPTS, UNMEASURED

__all__ = [
    "BpfMap", "BpfOutputError", "Bucket", "Histogram", "parse_bpftrace_file", "parse_bpftrace_output",
    "Calibration", "CalibrationError", "KitMeta", "calibrate", "histogram_table", "read_kit",
    "KIT_VERSION", "MEASURES", "MIN_SAMPLES", "OBSERVATIONS", "PROBES", "SCRIPTS", "UNMEASURED",
]
