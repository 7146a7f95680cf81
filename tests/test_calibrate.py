"""The calibration kit (mcexplore.calibration, `mcexplore calibrate`): bpftrace's printed maps
read exactly (hist, lhist, empty buckets, K/M/G labels, keyed maps, scalars), malformed output
refused with the file and line, a kit output turned into a scenario that loads and runs, and the
recorders (Python and record.sh) run against a fake bpftrace.

Fixtures: tests/data/calibration/ (README.md there: bpftrace 0.17's own printing; kit-6.1-lab/
is the kernel lab's real kit 1 output, with bpftrace 0.17's repeated string keys).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
from click.testing import CliRunner

from mcexplore.calibration import bpfout, kit, record
from mcexplore.calibration import (BpfOutputError, CalibrationError, calibrate, histogram_table,
                                   parse_bpftrace_file, parse_bpftrace_output)
from mcexplore.cli import main
from mcexplore.scenario import HistogramDist, load_scenario

DATA = Path(__file__).resolve().parent / "data" / "calibration"
KIT = DATA / "kit-6.1"
LAB_KIT = DATA / "kit-6.1-lab"
PKG = Path(kit.__file__).resolve().parent
REPO = Path(__file__).resolve().parent.parent


def _buckets(h):
    return [(b.lo, b.hi, b.count) for b in h.buckets]


# ---- the parser ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def formats():
    return parse_bpftrace_file(DATA / "formats.txt")


def test_hist_with_k_m_g_labels_and_empty_buckets(formats):
    h = formats["h"].entries[()]
    assert len(h.buckets) == 20  # the empty buckets between the samples are kept, with count 0
    assert h.buckets[0] == bpfout.Bucket(4096, 8192, 1, "4K", "8K")
    assert (h.buckets[4].lo, h.buckets[4].hi, h.buckets[4].count) == (64 << 10, 128 << 10, 1)
    assert (h.buckets[8].lo, h.buckets[8].count) == (1 << 20, 1)
    assert h.buckets[-1] == bpfout.Bucket(2 << 30, 4 << 30, 1, "2G", "4G")
    assert h.total == 4 and len(h.nonzero()) == 4
    assert sum(1 for b in h.buckets if b.count == 0) == 16


def test_single_value_buckets_and_negative_values(formats):
    assert _buckets(formats["small"].entries[()]) == [(0, 1, 2), (1, 2, 1), (2, 4, 1)]
    neg = formats["neg"].entries[()]
    assert neg.buckets[0] == bpfout.Bucket(None, 0, 1, None, "0")
    assert neg.buckets[0].open and not neg.buckets[1].open
    assert _buckets(neg)[1:3] == [(0, 1, 0), (1, 2, 0)]


def test_lhist_open_ends_and_k_labels(formats):
    lh = formats["l"].entries[()]
    assert lh.buckets[0] == bpfout.Bucket(None, 0, 1, None, "0")
    assert lh.buckets[-1] == bpfout.Bucket(100, None, 2, "100", None)
    assert (lh.buckets[6].lo, lh.buckets[6].hi, lh.buckets[6].count) == (50, 60, 1)
    assert len(lh.buckets) == 12
    assert _buckets(formats["lk"].entries[()]) == [(4096, 5120, 1)]


def test_keyed_maps_and_scalars(formats):
    assert formats["k"].entries == {("file", "-11"): 1, ("anon", "0"): 2}
    hk = formats["hk"]
    assert set(hk.entries) == {("0",), ("2",)} and hk.is_histogram
    assert _buckets(hk.entries[("2",)]) == [(1024, 2048, 2)]
    assert formats["cnt"].scalar() == 1 and formats["s"].scalar() == 5
    assert formats["st"].scalar() == "count 1, average 5, total 5"
    assert formats["t"].scalar() == "ok"
    assert set(formats) == {"cnt", "h", "hk", "k", "l", "lk", "neg", "s", "small", "st", "t"}


def test_attaching_line_and_blank_runs_are_skipped():
    text = "Attaching 12 probes...\n\n\n\n@waits: 3100\n@x: \n[0]   4 |@@@@|\n\n\n"
    maps = parse_bpftrace_output(text)
    assert maps["waits"].scalar() == 3100
    assert _buckets(maps["x"].entries[()]) == [(0, 1, 4)]


def test_a_scalar_right_after_a_histogram_closes_it():
    # bpftrace prints "@waits: N" and the next map's header without a blank line between them.
    maps = parse_bpftrace_file(KIT / "fault.txt")
    assert maps["waits"].scalar() == 3100
    assert maps["wake_latency_ns"].entries[()].total == 2790
    assert maps["migration_wait_ns"].entries[()].total == 2790


@pytest.mark.parametrize("name, line, words", [
    ("bad-bucket.txt", 5, ["cannot read the histogram bucket", "[1K, 2K", "expected"]),
    ("orphan-bucket.txt", 1, ["belongs to no map", "'@name:' header"]),
    ("stderr-mixed-in.txt", 4, ["cannot read 'WARNING: kretprobe", "expected a map header"]),
    ("bad-suffix.txt", 2, ["cannot read the histogram bucket", "1X"]),
    ("out-of-order.txt", 3, ["does not follow the one before it"]),
    ("duplicate-entry.txt", 2, ["@calls[2] is printed twice", "line 1"]),
])
def test_malformed_output_names_the_file_and_line(name, line, words):
    with pytest.raises(BpfOutputError) as ei:
        parse_bpftrace_file(DATA / "malformed" / name)
    e = ei.value
    assert e.line == line and e.source.endswith(name)
    assert str(e).startswith(f"{DATA / 'malformed' / name}:{line}: ")
    for w in words:
        assert w in str(e)


def test_parse_errors_on_mixed_maps_and_bad_bounds():
    with pytest.raises(BpfOutputError, match=r"^t:2: @x mixes histograms with plain values"):
        parse_bpftrace_output("@x[1]: \n@x[2]: 5\n", "t")
    with pytest.raises(BpfOutputError, match=r"^t:2: the bucket '\[8, 4\)  1 \|@\|' is empty or reversed"):
        parse_bpftrace_output("@x: \n[8, 4)  1 |@|\n", "t")
    with pytest.raises(BpfOutputError, match=r"cannot read the map header"):
        parse_bpftrace_output("@x y: 3\n", "t")


def test_repeated_string_keys_are_pooled_as_bpftrace_0_17_prints_them():
    """The kernel lab's move.txt: bpftrace 0.17 printed @refcount_check[file, ok] eight times
    (it keys by the whole buffer of a string); the entries are one key's."""
    m = parse_bpftrace_file(LAB_KIT / "move.txt")["refcount_check"]
    assert m.entries == {("file", "ok"): 8, ("anon", "ok"): 121}
    assert m.repeated == {("file", "ok"): 8, ("anon", "ok"): 8}
    assert parse_bpftrace_file(LAB_KIT / "rmap.txt")["unmap_pte_ns"].repeated == {}
    # a histogram under a repeated string key: bucket by bucket
    maps = parse_bpftrace_output("@h[file]: \n[1K, 2K)  3 |@@@|\n\n@h[anon]: \n[1K, 2K)  7 |@|\n\n"
                                 "@h[file]: \n[512, 1K)  1 |@|\n[1K, 2K)  2 |@@|\n[2K, 4K)  1 |@|\n", "t")
    assert _buckets(maps["h"].entries[("file",)]) == [(512, 1024, 1), (1024, 2048, 5), (2048, 4096, 1)]
    assert _buckets(maps["h"].entries[("anon",)]) == [(1024, 2048, 7)]
    assert maps["h"].repeated == {("file",): 2}
    # sums too
    assert parse_bpftrace_output("@s[x, 2]: 5\n@s[x, 2]: 6\n", "t")["s"].entries == {("x", "2"): 11}


def test_repeats_that_are_no_string_key_collision_are_refused():
    # an unkeyed or integer-keyed entry printed twice: the map was printed twice (print())
    with pytest.raises(BpfOutputError, match=r"^t:2: @x is printed twice \(first at line 1\): the map was printed"):
        parse_bpftrace_output("@x: 1\n@x: 2\n", "t")
    with pytest.raises(BpfOutputError, match=r"^t:3: @h\[1\] is printed twice"):
        parse_bpftrace_output("@h[1]: \n[0]  1 |@|\n@h[1]: \n[0]  1 |@|\n", "t")
    # a text value cannot be added
    with pytest.raises(BpfOutputError, match=r"^t:2: @st\[a\] is printed twice .* cannot be added"):
        parse_bpftrace_output("@st[a]: count 1, average 5, total 5\n@st[a]: count 1, average 5, total 5\n", "t")
    # histograms of one key whose buckets do not line up
    with pytest.raises(BpfOutputError, match=r"^t:4: @l\[a\]: buckets overlap"):
        parse_bpftrace_output("@l[a]: \n[0, 10)  1 |@|\n\n@l[a]: \n[5, 15)  1 |@|\n", "t")


def test_histogram_table_drops_empty_and_open_buckets(formats):
    table, n, dropped = histogram_table(formats["l"].entries[()])
    assert table == {"dist": "histogram", "unit": "ns", "buckets": [[50, 60, 1]]}
    assert (n, dropped) == (1, 3)
    table, n, dropped = histogram_table(formats["h"].entries[()])
    assert table["buckets"] == [["4K", "8K", 1], ["64K", "128K", 1], ["1M", "2M", 1], ["2G", "4G", 1]]
    assert (n, dropped) == (4, 0)
    # the scenario reads it back with the same 1024-based bounds
    d = HistogramDist.model_validate(table)
    assert [(lo, hi) for lo, hi, _ in d.parsed()][0] == (4096.0, 8192.0)
    assert histogram_table(formats["neg"].entries[()])[0]["buckets"] == [[8, 16, 1]]


# ---- the kit contract -------------------------------------------------------------------------

def test_every_script_prints_the_maps_the_table_names():
    """Each map of MEASURES/OBSERVATIONS is assigned in its script and named in its header; the
    scratch maps (per task) are cleared at END, so that only the table's maps are printed."""
    for s in kit.SCRIPTS:
        text = kit.script_text(s)
        assigned = set(re.findall(r"@([A-Za-z_]+)(?:\[[^;\n]*?\])?\s*=(?!=)", text))
        cleared = set(re.findall(r"clear\(@([A-Za-z_]+)\)", text))
        printed = {m.map for m in kit.MEASURES if m.script == s} | \
                  {o.map for o in kit.OBSERVATIONS if o.script == s}
        assert printed <= assigned, (s, printed - assigned)
        assert assigned - cleared == printed, (s, assigned - cleared - printed)
        header = text.split("*/")[0]
        for m in printed:
            assert f"@{m}" in header, (s, m)
        assert "$1" in text and "interval:s:1" in text


def test_scripts_avoid_what_the_lab_found():
    """Kit 2: no probe on remove_migration_ptes() (inlined on 6.1), no string map keys (bpftrace
    0.17 repeats them), the per-PTE maps keyed by kit.MULTI_MAPPED, no #include shipped."""
    c = kit.MULTI_MAPPED
    for s in kit.SCRIPTS:
        assert f"(kit_version {kit.KIT_VERSION})" in kit.script_text(s).splitlines()[1]
        text = re.sub(r"/\*.*?\*/", "", kit.script_text(s), flags=re.S)  # the code, not the comments
        assert not re.search(r"\bk(ret)?probe:remove_migration_ptes\b", text), s
        assert not re.search(r'@\w+\[[^\]\n]*"', text), s  # a string inside a map key
        assert "#include" not in text, s
        probed = set(re.findall(r"\bk(?:ret)?probe:([A-Za-z_][A-Za-z0-9_]*)", text))
        assert probed <= set(kit.PROBES), (s, probed - set(kit.PROBES))
    rmap = kit.script_text("rmap")
    for m in ("unmap_pte_ns", "remap_pte_ns"):
        uses = re.findall(rf"@{m}\[([^\]]*)\] = hist", rmap)
        assert uses and all(u == f"$n >= {c} ? {c} : 1" for u in uses), (m, uses)
        assert kit.measure(f"timing.{m[:-3]}").key == (str(c),)
    assert "@refcount_check[@check_file[tid], $rc] = count();" in kit.script_text("move")
    # every measure's probes are kernel functions the kit resolves, and its script probes them
    for m in kit.MEASURES:
        assert m.probes and set(m.probes) <= set(kit.PROBES), m.field
        text = kit.script_text(m.script)
        for p in m.probes:
            assert re.search(rf"\bk(ret)?probe:{p}\b", text), (m.field, p)
    for field, probes in kit.KIT1_PROBES.items():
        assert kit.measure(field) is not None and probes


def test_with_include_and_header_fix():
    text = kit.script_text("offline")
    inc = "#include <linux/migrate_mode.h>"
    fixed = kit.with_include(text, "linux/migrate_mode.h")
    head, _, rest = fixed.partition("\n" + inc + "\n")
    assert head.endswith(" */\n") and head.count("*/") == 1 and head.startswith("/*\n * offline.bt")
    assert rest.startswith("\nkprobe:migrate_pages")
    assert fixed.replace("\n" + inc + "\n", "", 1) == text  # nothing else changed
    assert fixed.splitlines().count(inc) == 1 and kit.with_include(fixed, "linux/migrate_mode.h") == fixed
    assert kit.with_include("BEGIN { exit(); }\n", "a.h") == "#include <a.h>\n\nBEGIN { exit(); }\n"
    err = ("definitions.h:12:28: error: field has incomplete type 'enum migrate_mode'\n"
           "ERROR: Input (445): ...\n")
    assert kit.header_fix(err, text) == "linux/migrate_mode.h"
    assert kit.header_fix(err, fixed) is None  # already there: the error is something else
    assert kit.header_fix("ERROR: Error attaching probe: kprobe:nope\n", text) is None


def test_fields_are_model_fields_and_disjoint():
    from mcexplore.scenario import TIMING_NAMES

    measured = [m.field for m in kit.MEASURES]
    assert len(set(measured)) == len(measured)
    assert not set(measured) & set(kit.UNMEASURED)
    timing = {f"timing.{n}" for n in TIMING_NAMES}
    assert {f for f in measured + list(kit.UNMEASURED) if f.startswith("timing.")} == timing


def test_probes_are_resolved_from_kallsyms():
    syms = kit.kallsyms_names("ffffffff8161bd30 t try_to_unmap_one\nffffffff8161ea90 T try_to_unmap\n"
                              "ffffffff81687b00 T migrate_page_move_mapping\n0 D some_data\n"
                              "ffffffffc0000000 t remove_migration_pte\t[mod]\n")
    assert syms == {"try_to_unmap_one", "try_to_unmap", "migrate_page_move_mapping", "remove_migration_pte"}
    probes = kit.resolve_probes(syms)
    assert probes["try_to_migrate"] == "try_to_unmap" and probes["try_to_migrate_one"] == "try_to_unmap_one"
    assert probes["folio_migrate_mapping"] == "migrate_page_move_mapping"
    assert probes["migrate_pages"] == "migrate_pages"  # absent: the script's own name stays
    text = kit.script_for_kernel("rmap", probes)
    assert "kprobe:try_to_unmap /" in text and "kprobe:try_to_unmap_one /" in text
    assert "kretprobe:try_to_unmap /" in text and "try_to_migrate /" not in text
    assert kit.resolve_probes(None) == {k: k for k in kit.PROBES}
    six18 = kit.resolve_probes({"__folio_migrate_mapping", "folio_migrate_mapping", "folio_mc_copy",
                                "try_to_migrate", "try_to_unmap", "free_frozen_pages"})
    assert six18["folio_migrate_mapping"] == "__folio_migrate_mapping"
    assert six18["folio_migrate_copy"] == "folio_mc_copy" and six18["free_unref_page"] == "free_frozen_pages"


def test_record_sh_agrees_with_kit_py():
    sh = (PKG / "record.sh").read_text()
    assert re.search(r"^KIT_VERSION=(\S+)$", sh, re.M).group(1) == kit.KIT_VERSION
    assert re.search(r'^SCRIPTS="([^"]+)"$', sh, re.M).group(1).split() == list(kit.SCRIPTS)
    table = re.search(r"^PROBES='\n(.*?)^'$", sh, re.M | re.S).group(1)
    rows = {ln.split()[0]: tuple(ln.split()[1:]) for ln in table.splitlines() if ln.strip()}
    assert rows == kit.PROBES
    fix = re.search(r'^HEADER_FIX="([^|"]+)\|([^"]+)"$', sh, re.M)
    assert (fix.group(1), fix.group(2)) in kit.HEADER_FIXES and len(kit.HEADER_FIXES) == 1


@pytest.mark.skipif(shutil.which("bpftrace") is None, reason="bpftrace is not installed")
@pytest.mark.parametrize("name", kit.SCRIPTS)
def test_scripts_pass_bpftrace_checks(name):
    """bpftrace's dry run (-d: parse and semantic checks) where bpftrace and tracefs are there."""
    if not Path("/sys/kernel/tracing/events/sched").exists():
        pytest.skip("tracefs is not mounted (tracepoint formats unknown)")
    r = subprocess.run(["bpftrace", "-d", str(PKG / f"{name}.bt"), "1"], capture_output=True,
                       text=True, timeout=120)
    errors = [ln for ln in (r.stdout + r.stderr).splitlines()
              if "ERROR" in ln and "RLIMIT_MEMLOCK" not in ln]
    assert r.returncode == 0 and not errors, errors


# ---- the import -----------------------------------------------------------------------------

@pytest.fixture(scope="module")
def cal():
    return calibrate(KIT, base="thread-2018")


def test_measured_fields_become_histograms_with_provenance(cal):
    sc = cal.scenario
    assert sorted(cal.measured) == sorted(["timing.unmap_pte", "timing.remap_pte", "timing.retry_gap",
                                           "timing.pre_freeze", "timing.fault_entry",
                                           "timing.wake_latency", "timing.outer_gap"])
    d = sc.timing.unmap_pte
    assert isinstance(d, HistogramDist)
    assert d.buckets == [[512, "1K", 115], ["1K", "2K", 385], ["2K", "4K", 70]]
    # empty buckets are dropped: [4K, 8K) of fault_entry, [64K, 2M) of wake_latency
    assert sc.timing.fault_entry.buckets == [[512, "1K", 725], ["1K", "2K", 1724], ["2K", "4K", 619],
                                             ["8K", "16K", 32]]
    assert sc.timing.wake_latency.buckets[-1] == ["2M", "4M", 13]
    assert sum(b[2] for b in sc.timing.wake_latency.buckets) == 2790
    note = sc.notes["timing.unmap_pte"]
    assert note.estimate is False
    for w in ("570 samples", "@unmap_pte_ns", "rmap.bt", "lab-guest", "6.1.0-lab", "2025-01-15T10:20:30Z"):
        assert w in note.why
    assert "timing.unmap_pte" not in sc.estimates()


def test_unmeasured_fields_keep_their_estimate_notes(cal):
    base = load_scenario("thread-2018")
    sc = cal.scenario
    for path in ("timing.ptl_hold", "timing.drop_hold", "timing.noref_gap", "timing.lock_hold",
                 "transient.rate", "transient.hold", "page.access_rate", "timing.copy"):
        assert sc.notes[path] == base.notes[path], path
        assert path in sc.estimates()
    assert sc.timing.ptl_hold == base.timing.ptl_hold and sc.transient == base.transient
    assert sc.timing.copy == base.timing.copy
    assert sc.page == base.page and sc.budget == base.budget and sc.labels() == base.labels()


def test_too_few_samples_keep_the_estimate_with_a_warning(cal):
    few = {f.field: f.samples for f in cal.fields if f.status == "too_few"}
    assert few == {"timing.freeze_hold": 12, "timing.copy": 12, "timing.free_delay": 12}
    for field in few:
        assert any(w.startswith(f"{field}: only 12 samples") for w in cal.warnings), cal.warnings
    more = calibrate(KIT, min_samples=10)
    assert isinstance(more.scenario.timing.copy, HistogramDist)
    assert more.scenario.timing.copy.buckets == [[512, "1K", 4], ["1K", "2K", 8]]


def test_observations_report_migrate_pages_outcomes(cal):
    obs = "\n".join(cal.observations)
    assert "migrate_pages (memory_hotplug): 57 calls, 12 pages migrated, 45 not migrated" in obs
    assert "0.789 failed per call" in obs
    assert "migrate_pages (compaction): 3 calls, 40 pages migrated, 2 not migrated" in obs
    assert "file busy 558, file ok 12" in obs
    assert "mean about 0.7895 (@failed_per_call)" in obs  # width-1 buckets count their own value
    toml = cal.to_toml()
    assert "#   migrate_pages (memory_hotplug): 57 calls" in toml
    assert toml.startswith("# Calibrated by `mcexplore calibrate import`")


def test_the_toml_loads_back_to_the_same_scenario(cal, tmp_path):
    p = tmp_path / "my-machine.toml"
    p.write_text(cal.to_toml())
    back = load_scenario(p)
    assert back.config_hash() == cal.scenario.config_hash()
    assert back.notes == cal.scenario.notes
    assert back.timing.outer_gap.mean_ns() == pytest.approx(cal.scenario.timing.outer_gap.mean_ns())


def test_a_keyed_histogram_is_pooled(tmp_path):
    d = tmp_path / "kit"
    d.mkdir()
    shutil.copy(KIT / "kit.json", d)
    (d / "fault.txt").write_text(
        "@wake_latency_ns[0]: \n[2K, 4K)  30 |@@@@|\n[4K, 8K)  0 |  |\n[8K, 16K)  5 |@|\n\n"
        "@wake_latency_ns[1]: \n[4K, 8K)  20 |@@@|\n")
    c = calibrate(d)
    assert c.scenario.timing.wake_latency.buckets == [["2K", "4K", 30], ["4K", "8K", 20], ["8K", "16K", 5]]
    assert "rmap.txt: missing; the fields it measures keep their estimate" in c.warnings
    assert c.measured == ["timing.wake_latency"]


def test_the_multi_mapped_class_feeds_the_per_pte_fields(cal):
    """Kit 2 keys the per-PTE maps by mapping class: the fields take class 8 (the contended
    page's walks), not the single-mapped pages' class 1 (slower per PTE)."""
    sc = cal.scenario
    rmap = parse_bpftrace_file(KIT / "rmap.txt")
    assert set(rmap["unmap_pte_ns"].entries) == {("1",), ("8",)}
    assert sc.timing.unmap_pte.buckets == [[512, "1K", 115], ["1K", "2K", 385], ["2K", "4K", 70]]
    assert sc.timing.remap_pte.buckets == [[512, "1K", 181], ["1K", "2K", 377], ["4K", "8K", 12]]
    for f in ("unmap_pte", "remap_pte"):
        why = sc.notes[f"timing.{f}"].why
        assert f"570 samples of @{f}_ns[8] (rmap.bt, kit 2)" in why and "at least 8 entries" in why
    summary = "\n".join(cal.summary_lines())
    assert "(rmap.bt @unmap_pte_ns[8])" in summary and "(rmap.bt @remap_pte_ns[8])" in summary
    assert not [w for w in cal.warnings if "mapping class" in w]
    # the observation pools the classes: 57 single-mapped walks and 570 of 201 entries
    assert any("627 samples" in o and "@unmap_entries" in o for o in cal.observations)


def _kit_dir(tmp_path, version="2", **texts) -> Path:
    d = tmp_path / "kit"
    d.mkdir(parents=True)
    meta = json.loads((KIT / "kit.json").read_text())
    meta["kit_version"] = version
    (d / "kit.json").write_text(json.dumps(meta))
    for name, text in texts.items():
        (d / f"{name}.txt").write_text(text)
    return d


def test_too_few_multi_mapped_samples_fall_back_to_all_classes(tmp_path):
    """As on the lab's stock kernel: 8 walks of the hot page (11 us per PTE) among 121 walks of
    single-mapped pages (50 us): all classes are pooled, and the warning gives both means."""
    rmap = ("@unmap_pte_ns[1]: \n[32K, 64K)  121 |@@@@|\n\n"
            "@unmap_pte_ns[8]: \n[8K, 16K)  8 |@|\n\n"
            "@remap_pte_ns[1]: \n[16K, 32K)  30 |@|\n")
    c = calibrate(_kit_dir(tmp_path, rmap=rmap))
    assert c.scenario.timing.unmap_pte.buckets == [["8K", "16K", 8], ["32K", "64K", 121]]
    w = next(w for w in c.warnings if w.startswith("timing.unmap_pte:"))
    assert "only 8 samples of @unmap_pte_ns[8] (walks of 8 or more rmap entries" in w
    assert "mean 12.3us" in w and "all mapping classes pooled instead (129 samples, mean 46.9us)" in w
    why = c.scenario.notes["timing.unmap_pte"].why
    assert "129 samples of @unmap_pte_ns (rmap.bt" in why and "(all mapping classes)" in why
    assert "at least 8 entries" not in why
    # no multi-mapped walk at all: the single-mapped class, with the warning
    w = next(w for w in c.warnings if w.startswith("timing.remap_pte:"))
    assert "only 0 samples of @remap_pte_ns[8]" in w and "(30 samples, mean" in w
    assert c.scenario.timing.remap_pte.buckets == [["16K", "32K", 30]]
    # enough multi-mapped samples: those only, whatever the other class holds
    c = calibrate(_kit_dir(tmp_path / "b", rmap=rmap.replace("8 |@|", "20 |@|")), min_samples=20)
    assert c.scenario.timing.unmap_pte.buckets == [["8K", "16K", 20]]


def test_a_kit_1_output_with_mixed_walks_is_used_with_a_warning(tmp_path):
    rmap = ("@unmap_entries: \n[1]  121 |@|\n[2, 4)  0 | |\n[128, 256)  8 |@|\n\n"
            "@unmap_pte_ns: \n[8K, 16K)  8 |@|\n[32K, 64K)  121 |@@@@|\n\n"
            "@remap_entries: \n[128, 256)  30 |@|\n\n@remap_pte_ns: \n[8K, 16K)  30 |@|\n")
    c = calibrate(_kit_dir(tmp_path, version="1", rmap=rmap))
    assert c.scenario.timing.unmap_pte.buckets == [["8K", "16K", 8], ["32K", "64K", 121]]
    w = next(w for w in c.warnings if w.startswith("timing.unmap_pte:"))
    assert "not keyed by mapping class (kit 1 output)" in w
    assert "121 walks visited fewer than 8 rmap entries and 8 at least 8" in w
    # every walk multi-mapped: nothing mixed, nothing to warn about
    assert not [w for w in c.warnings if w.startswith("timing.remap_pte:")]
    assert "kit.json: kit_version '1' (this kit is '2')" in c.warnings[0]
    # kit 1's provenance says what kit 1 measured
    assert "remove_migration_ptes() duration" in c.scenario.notes["timing.remap_pte"].why


def test_an_empty_map_names_the_probe_that_never_fired(tmp_path):
    """Attached but silent while the script's other maps fill: the sign of an inlined function
    (6.1's remove_migration_ptes()); the warning names the function, as kit.json's probes do."""
    d = _kit_dir(tmp_path, rmap="@unmap_pte_ns[8]: \n[1K, 2K)  30 |@|\n",
                 move="@pre_freeze_ns: \n[1K, 2K)  30 |@|\n")
    meta = json.loads((d / "kit.json").read_text())
    meta["probes"]["folio_migrate_copy"] = "folio_mc_copy"
    (d / "kit.json").write_text(json.dumps(meta))
    c = calibrate(d)
    w = {x.split(":", 1)[0]: x for x in c.warnings}
    assert ("@unmap_pte_ns filled, so a probe on remove_migration_pte() may have attached without "
            "firing: inlined in this kernel build?") in w["timing.remap_pte"]
    assert "it needs an attempt that failed and was retried" in w["timing.retry_gap"]
    assert "a probe on remove_migration_pte() may have" in w["timing.retry_gap"]
    assert "a probe on folio_mc_copy() may have" in w["timing.copy"]  # the kernel's name
    assert "a probe on remove_migration_pte() or free_unref_page() may" in w["timing.free_delay"]
    # the probes proven by filled maps: an empty retry gap is no retry, not an inlined function
    d2 = _kit_dir(tmp_path / "b", rmap="@unmap_pte_ns[8]: \n[1K, 2K)  30 |@|\n\n"
                  "@remap_pte_ns[8]: \n[1K, 2K)  30 |@|\n")
    w2 = next(x for x in calibrate(d2).warnings if x.startswith("timing.retry_gap:"))
    assert "needs an attempt that failed" in w2 and "inlined" not in w2


def test_the_lab_kit_output_imports_as_it_is(tmp_path):
    """The kernel lab's real kit 1 output (bpftrace 0.17 on 6.1, no BTF), unedited: the
    repeated keys are summed with a warning, and the inlined restore is named."""
    c = calibrate(LAB_KIT)
    assert any(w.startswith("move.txt: @refcount_check prints the same key more than once "
                            "([file, ok] 8 times, [anon, ok] 8 times)") for w in c.warnings)
    assert any("anon ok 121, file ok 8 (@refcount_check)" in o for o in c.observations)
    assert sorted(c.measured) == ["timing.fault_entry", "timing.pre_freeze", "timing.unmap_pte",
                                  "timing.wake_latency"]
    assert c.scenario.timing.unmap_pte.mean_ns() == pytest.approx(51.6e3, rel=0.01)
    w = next(w for w in c.warnings if w.startswith("timing.remap_pte:"))
    assert "remove_migration_ptes() or remove_migration_pte()" in w and "inlined" in w
    w = next(w for w in c.warnings if w.startswith("timing.unmap_pte:"))
    assert "121 walks visited fewer than 8 rmap entries and 8 at least 8" in w
    # one call per offline on the stock kernel: no gap, and nothing to blame on inlining
    w = next(w for w in c.warnings if w.startswith("timing.outer_gap:"))
    assert "it needs an offline that took more than one migrate_pages() call" in w and "inlined" not in w
    r = CliRunner().invoke(main, ["calibrate", "import", str(LAB_KIT), "--out", str(tmp_path / "lab.toml")])
    assert r.exit_code == 0, r.output


def test_the_lab_calibration_is_unchanged():
    """scripts/kernel-lab/calibrate.py summed the repeated keys before importing; the importer
    now reads the raw output to the same scenario as the committed lab-calibrated.toml."""
    lab = REPO / "scripts" / "kernel-lab" / "data"
    if not (lab / "lab-calibrated.toml").exists():
        pytest.skip("no kernel lab data in this checkout")
    c = calibrate(lab / "stock" / "kit", base="thread-2018", name="kernel-lab-stock")
    committed = load_scenario(lab / "lab-calibrated.toml")
    assert c.scenario.config_hash() == committed.config_hash()
    assert c.scenario.notes == committed.notes


def test_kit_errors_are_one_clear_line(tmp_path):
    with pytest.raises(CalibrationError, match=r"kit-malformed/move.txt:13: cannot read the histogram bucket"):
        calibrate(DATA / "kit-malformed")
    (tmp_path / "rmap.txt").write_text("@x: 1\n")
    with pytest.raises(CalibrationError, match=r"kit.json: missing"):
        calibrate(tmp_path)
    (tmp_path / "kit.json").write_text(json.dumps({"kernel": "6.1", "host": "", "date": "d"}))
    with pytest.raises(CalibrationError, match=r"kit.json: host: '' is not valid: must be a non-empty string"):
        calibrate(tmp_path)
    (tmp_path / "kit.json").write_text(json.dumps({"kernel": "6.1", "host": "h", "date": "d"}))
    (tmp_path / "rmap.txt").write_text("@unmap_pte_ns: 17\n")
    with pytest.raises(CalibrationError, match=r"rmap.txt: @unmap_pte_ns is a plain value \(17\), expected a histogram"):
        calibrate(tmp_path)
    empty = tmp_path / "empty"
    empty.mkdir()
    (empty / "kit.json").write_text(json.dumps({"kernel": "6.1", "host": "h", "date": "d"}))
    with pytest.raises(CalibrationError, match=r"no kit output: expected one of rmap.txt"):
        calibrate(empty)


# ---- the CLI ---------------------------------------------------------------------------------

def test_cli_import_then_run(tmp_path):
    out = tmp_path / "my-machine.toml"
    r = CliRunner().invoke(main, ["calibrate", "import", str(KIT), "--base", "thread-2018",
                                  "--out", str(out)])
    assert r.exit_code == 0, r.output
    assert "timing.unmap_pte" in r.output and "570 samples" in r.output
    assert "warning: timing.copy: only 12 samples of @copy_ns (< 20); keeps its estimate" in r.output
    assert "migrate_pages (memory_hotplug): 57 calls" in r.output
    sc = load_scenario(out)
    assert sc.name == "thread-2018-lab-guest" and isinstance(sc.timing.remap_pte, HistogramDist)
    r = CliRunner().invoke(main, ["run", str(out), "-n", "20", "--backend", "numpy", "-s", "ptl_pin",
                                  "--json"])
    assert r.exit_code == 0, r.output
    res = json.loads(r.output)
    assert res["results"]["ptl_pin"]["trials"] == 20
    assert res["meta"]["config_hash"] == sc.with_strategies("ptl_pin").config_hash()


def test_cli_import_errors_exit_2_with_one_line(tmp_path):
    r = CliRunner().invoke(main, ["calibrate", "import", str(DATA / "kit-malformed"), "--out",
                                  str(tmp_path / "x.toml")])
    assert r.exit_code == 2
    err = [ln for ln in r.output.splitlines() if ln.startswith("Error:")]
    assert len(err) == 1 and "move.txt:13:" in err[0] and "expected" in err[0]
    assert not (tmp_path / "x.toml").exists()
    r = CliRunner().invoke(main, ["calibrate", "import", str(KIT), "--base", "no-such-base",
                                  "--out", str(tmp_path / "x.toml")])
    assert r.exit_code == 2 and "'no-such-base' is neither a config file nor a shipped config" in r.output


def test_cli_record_says_what_is_missing(monkeypatch, tmp_path):
    monkeypatch.setattr(record, "_is_root", lambda: False)
    monkeypatch.setenv("PATH", str(tmp_path))  # no bpftrace there
    r = CliRunner().invoke(main, ["calibrate", "record", "--out", str(tmp_path / "out")])
    assert r.exit_code == 2
    assert "calibrate record needs root (bpftrace attaches kprobes: run it with sudo) and bpftrace" in r.output
    assert not (tmp_path / "out").exists()
    r = CliRunner().invoke(main, ["calibrate", "record", "--out", str(tmp_path / "out"), "--duration", "3"])
    assert r.exit_code == 2 and "'3' is not valid" in r.output


FAKE_BPFTRACE = """#!/bin/sh
# A stand-in for bpftrace: prints the kit-6.1 fixture of the script it is given (bpftrace -q FILE N).
script=$2
echo "$@" >> "$(dirname "$0")/calls.log"
cat "{kit}/$(basename "$script" .bt).txt"
"""


def _fake_bpftrace(tmp_path) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    fake = bindir / "bpftrace"
    fake.write_text(FAKE_BPFTRACE.replace("{kit}", str(KIT)))
    fake.chmod(0o755)
    return bindir


def test_cli_record_with_a_fake_bpftrace(monkeypatch, tmp_path):
    bindir = _fake_bpftrace(tmp_path)
    syms = tmp_path / "kallsyms"
    syms.write_text("ffffffff8161ea90 T try_to_unmap\nffffffff8161bd30 t try_to_unmap_one\n"
                    "ffffffff8168a6c0 T migrate_pages\n")
    (tmp_path / "tracefs" / "events").mkdir(parents=True)
    monkeypatch.setattr(record, "_is_root", lambda: True)
    monkeypatch.setattr(record, "KALLSYMS", str(syms))
    monkeypatch.setattr(record, "TRACEFS", str(tmp_path / "tracefs"))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "kit-out"
    r = CliRunner().invoke(main, ["calibrate", "record", "--out", str(out), "--duration", "2s"])
    assert r.exit_code == 0, r.output
    for s in kit.SCRIPTS:
        assert (out / f"{s}.txt").read_text() == (KIT / f"{s}.txt").read_text()
        assert (out / f"{s}.bt").is_file() and (out / f"{s}.err").is_file()
    meta = json.loads((out / "kit.json").read_text())
    assert set(kit.META_KEYS) <= set(meta)
    assert meta["kit_version"] == kit.KIT_VERSION and meta["scripts"] == list(kit.SCRIPTS)
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", meta["date"])
    assert meta["probes"]["try_to_migrate"] == "try_to_unmap"
    assert "kprobe:try_to_unmap_one" in (out / "rmap.bt").read_text()
    calls = (bindir / "calls.log").read_text().splitlines()
    assert sorted(c.split()[1].rsplit("/", 1)[1] for c in calls) == sorted(f"{s}.bt" for s in kit.SCRIPTS)
    assert all(c.split()[0] == "-q" and c.split()[2] == "2" for c in calls)
    r = CliRunner().invoke(main, ["calibrate", "import", str(out), "--out", str(tmp_path / "m.toml")])
    assert r.exit_code == 0, r.output
    assert isinstance(load_scenario(tmp_path / "m.toml").timing.unmap_pte, HistogramDist)


def test_cli_record_reports_a_failing_script(monkeypatch, tmp_path):
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "bpftrace").write_text("#!/bin/sh\necho 'ERROR: Error attaching probe: kprobe:nope' >&2\nexit 1\n")
    (bindir / "bpftrace").chmod(0o755)
    (tmp_path / "tracefs" / "events").mkdir(parents=True)
    monkeypatch.setattr(record, "_is_root", lambda: True)
    monkeypatch.setattr(record, "TRACEFS", str(tmp_path / "tracefs"))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    r = CliRunner().invoke(main, ["calibrate", "record", "--out", str(tmp_path / "o"), "-S", "rmap"])
    assert r.exit_code == 1
    assert "warning: rmap.bt failed: ERROR: Error attaching probe: kprobe:nope" in r.output
    assert "no kit script ran" in r.output


def test_record_sh_refuses_without_root_or_writes_the_layout(tmp_path):
    bindir = _fake_bpftrace(tmp_path)
    (tmp_path / "kallsyms").write_text("ffffffff8161ea90 T try_to_unmap\nffffffff8161bd30 t try_to_unmap_one\n")
    (tmp_path / "tracefs" / "events").mkdir(parents=True)
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "MCX_KALLSYMS": str(tmp_path / "kallsyms"), "MCX_TRACEFS": str(tmp_path / "tracefs")}
    out = tmp_path / "sh-out"
    r = subprocess.run(["sh", str(PKG / "record.sh"), str(out), "1", "rmap", "offline"],
                       capture_output=True, text=True, env=env, timeout=60)
    if os.geteuid() != 0:
        assert r.returncode == 2 and "record.sh: needs root" in r.stderr
        return
    assert r.returncode == 0, r.stderr
    assert (out / "rmap.txt").read_text() == (KIT / "rmap.txt").read_text()
    assert (out / "offline.txt").is_file() and not (out / "move.txt").exists()
    meta = json.loads((out / "kit.json").read_text())
    assert meta["kit_version"] == kit.KIT_VERSION and meta["scripts"] == ["rmap", "offline"]
    assert set(meta["probes"]) == set(kit.PROBES) and meta["kernel"] == os.uname().release
    assert meta["probes"]["try_to_migrate"] == "try_to_unmap"
    assert "kretprobe:try_to_unmap /" in (out / "rmap.bt").read_text()
    c = calibrate(out)
    assert "timing.unmap_pte" in c.measured and "timing.outer_gap" in c.measured


FAKE_BPFTRACE_NO_BTF = """#!/bin/sh
# bpftrace without BTF, kernel headers there: stops on the enum of mm_migrate_pages unless the
# script includes its header (as 0.17 did in the kernel lab); FAKE_AFTER=fail: fails again after.
script=$2
echo "$@" >> "$(dirname "$0")/calls.log"
if grep -q 'tracepoint:migrate:' "$script"; then
	if ! grep -qx '#include <linux/migrate_mode.h>' "$script"; then
		echo "definitions.h:12:28: error: field has incomplete type 'enum migrate_mode'" >&2
		echo "ERROR: Input (445): #include <linux/types.h>" >&2
		exit 1
	fi
	if [ "${FAKE_AFTER:-}" = fail ]; then
		echo "ERROR: Error attaching probe: 'kretprobe:offline_pages'" >&2
		exit 1
	fi
fi
cat "{kit}/$(basename "$script" .bt).txt"
"""


def _fake_no_btf(tmp_path) -> Path:
    bindir = tmp_path / "bin"
    bindir.mkdir()
    (bindir / "bpftrace").write_text(FAKE_BPFTRACE_NO_BTF.replace("{kit}", str(KIT)))
    (bindir / "bpftrace").chmod(0o755)
    (tmp_path / "tracefs" / "events").mkdir(parents=True)
    return bindir


INC = "#include <linux/migrate_mode.h>"


def test_record_runs_a_script_again_with_the_header_bpftrace_asks_for(monkeypatch, tmp_path):
    bindir = _fake_no_btf(tmp_path)
    monkeypatch.setattr(record, "_is_root", lambda: True)
    monkeypatch.setattr(record, "KALLSYMS", str(tmp_path / "none"))
    monkeypatch.setattr(record, "TRACEFS", str(tmp_path / "tracefs"))
    monkeypatch.setenv("PATH", f"{bindir}{os.pathsep}{os.environ['PATH']}")
    out = tmp_path / "kit-out"
    r = CliRunner().invoke(main, ["calibrate", "record", "--out", str(out), "--duration", "3s",
                                  "-S", "rmap", "-S", "offline"])
    assert r.exit_code == 0, r.output
    assert "offline.bt: run again with #include <linux/migrate_mode.h>" in r.output
    assert (out / "offline.txt").read_text() == (KIT / "offline.txt").read_text()
    assert (out / "offline.bt").read_text() == kit.with_include(kit.script_text("offline"),
                                                                "linux/migrate_mode.h")
    assert INC not in (out / "rmap.bt").read_text().splitlines()
    err = (out / "offline.err").read_text()
    assert "incomplete type 'enum migrate_mode'" in err and record.RERUN_MARK + INC in err
    meta = json.loads((out / "kit.json").read_text())
    assert meta["includes"] == {"offline": "linux/migrate_mode.h"}
    calls = [c.split() for c in (bindir / "calls.log").read_text().splitlines()]
    offline = [c for c in calls if c[1].endswith("offline.bt")]
    assert len(offline) == 2 and offline[0][2] == "3" and 1 <= int(offline[1][2]) <= 3
    assert len([c for c in calls if c[1].endswith("rmap.bt")]) == 1
    # still failing after the include: the error reported is the last one
    monkeypatch.setenv("FAKE_AFTER", "fail")
    rec = record.record(tmp_path / "again", 1, scripts=("offline",))
    assert rec.failed == {"offline": "ERROR: Error attaching probe: 'kretprobe:offline_pages'"}
    assert rec.meta["includes"] == {"offline": "linux/migrate_mode.h"}


@pytest.mark.skipif(os.geteuid() != 0, reason="record.sh needs root")
def test_record_sh_runs_a_script_again_with_the_header(tmp_path):
    bindir = _fake_no_btf(tmp_path)
    (tmp_path / "kallsyms").write_text("ffffffff8161ea90 T try_to_migrate\n")
    env = {**os.environ, "PATH": f"{bindir}{os.pathsep}{os.environ['PATH']}",
           "MCX_KALLSYMS": str(tmp_path / "kallsyms"), "MCX_TRACEFS": str(tmp_path / "tracefs")}
    out = tmp_path / "sh-out"
    r = subprocess.run(["sh", str(PKG / "record.sh"), str(out), "2", "rmap", "offline"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 0, r.stderr
    assert "record.sh: offline.bt: run again with #include <linux/migrate_mode.h>" in r.stderr
    # the same script as the Python recorder runs
    assert (out / "offline.bt").read_text() == kit.with_include(kit.script_text("offline"),
                                                                "linux/migrate_mode.h")
    assert (out / "offline.txt").read_text() == (KIT / "offline.txt").read_text()
    assert INC not in (out / "rmap.bt").read_text().splitlines()
    meta = json.loads((out / "kit.json").read_text())
    assert meta["includes"] == {"offline": "linux/migrate_mode.h"}
    assert not list(out.glob(".*.pid"))
    calls = [c.split() for c in (bindir / "calls.log").read_text().splitlines()]
    assert [c[2] for c in calls if c[1].endswith("offline.bt")][0] == "2"
    assert len([c for c in calls if c[1].endswith("offline.bt")]) == 2
    # still failing after the include: the last error is the one reported
    env["FAKE_AFTER"] = "fail"
    r = subprocess.run(["sh", str(PKG / "record.sh"), str(tmp_path / "again"), "1", "offline"],
                       capture_output=True, text=True, env=env, timeout=60)
    assert r.returncode == 1
    assert "offline.bt printed nothing: ERROR: Error attaching probe: 'kretprobe:offline_pages'" in r.stderr


def test_record_sh_checks_its_arguments(tmp_path):
    r = subprocess.run(["sh", str(PKG / "record.sh"), str(tmp_path / "o"), "ten"], capture_output=True,
                       text=True, timeout=30)
    assert r.returncode == 2 and "SECONDS: 'ten' is not valid" in r.stderr
    r = subprocess.run(["sh", str(PKG / "record.sh"), str(tmp_path / "o"), "1", "nosuch"],
                       capture_output=True, text=True, timeout=30)
    assert r.returncode == 2 and "'nosuch' is not a kit script" in r.stderr


def test_the_kit_ships_in_the_package():
    import tomllib

    py = tomllib.loads((Path(__file__).resolve().parent.parent / "pyproject.toml").read_text())
    st = py["tool"]["setuptools"]
    assert "mcexplore.calibration" in st["packages"]
    assert {"*.bt", "*.sh"} <= set(st["package-data"]["mcexplore.calibration"])
    for s in kit.SCRIPTS:
        assert kit.script_text(s).lstrip().startswith(f"/*\n * {s}.bt: mcexplore calibration kit")
