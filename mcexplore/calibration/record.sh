#!/bin/sh
# record.sh: run the mcexplore calibration kit on this machine, without mcexplore installed.
#
#   sudo sh record.sh OUT_DIR [SECONDS [SCRIPT...]]
#
# Writes what `mcexplore calibrate record --out OUT_DIR --duration SECONDSs` writes: for each
# script NAME of the kit (rmap, move, fault, offline; or those given), NAME.txt (bpftrace's
# stdout: the maps printed at exit), NAME.err (its stderr) and NAME.bt (the script as run, its
# probes renamed for this kernel), and kit.json (kernel, host, date, duration_s, kit_version,
# probes). SECONDS defaults to 30; 0 records until Ctrl-C. Run the workload (say, offlining a
# memory block while tasks fault on its pages) while it records; then, on any machine with
# mcexplore: `mcexplore calibrate import OUT_DIR --base thread-2018 --out my-machine.toml`.
#
# Needs root, bpftrace (0.17 or later) and /sys/kernel/tracing (mounted here if it is not).
# Without BTF, bpftrace also needs the kernel headers (/lib/modules/$(uname -r)/build); a script
# that it then refuses with "field has incomplete type 'enum migrate_mode'" is run again at
# once, for the time left, with #include <linux/migrate_mode.h> (kit.json: "includes").
# MCX_KALLSYMS and MCX_TRACEFS replace /proc/kallsyms and /sys/kernel/tracing (for tests).
# Kept in step with mcexplore/calibration/kit.py (KIT_VERSION, SCRIPTS, PROBES, HEADER_FIXES):
# a test compares.
set -eu

KIT_VERSION=2
SCRIPTS="rmap move fault offline"
# script name, then the kernel's names for it, newest first (kit.py PROBES)
PROBES='
try_to_migrate try_to_migrate try_to_unmap
try_to_migrate_one try_to_migrate_one try_to_unmap_one
folio_migrate_mapping __folio_migrate_mapping folio_migrate_mapping migrate_page_move_mapping
folio_migrate_copy folio_migrate_copy folio_mc_copy migrate_page_copy
free_unref_page free_unref_page free_frozen_pages
remove_migration_pte remove_migration_pte
migration_entry_wait migration_entry_wait
migrate_pages migrate_pages
offline_pages offline_pages
'
# what bpftrace prints on stderr|the header that fixes it (kit.py HEADER_FIXES)
HEADER_FIX="incomplete type 'enum migrate_mode'|linux/migrate_mode.h"
# the line of NAME.err between a first attempt's stderr and the run again's
RERUN_MARK="record.sh: run again with "

die() { echo "record.sh: $*" >&2; exit 2; }

[ $# -ge 1 ] || die "usage: record.sh OUT_DIR [SECONDS [SCRIPT...]]"
out=$1
secs=${2:-30}
[ $# -ge 2 ] && shift 2 || shift 1
[ $# -gt 0 ] && SCRIPTS="$*"
case $secs in ''|*[!0-9]*) die "SECONDS: '$secs' is not valid: a whole number of seconds >= 0" ;; esac
kit=$(cd "$(dirname "$0")" && pwd)
for s in $SCRIPTS; do
	[ -f "$kit/$s.bt" ] || die "'$s' is not a kit script (scripts: rmap move fault offline)"
done
[ "$(id -u)" = 0 ] || die "needs root: bpftrace attaches kprobes (run it with sudo)"
command -v bpftrace >/dev/null 2>&1 || die "bpftrace is not installed (Debian/Ubuntu: apt-get install bpftrace)"
tracefs=${MCX_TRACEFS:-/sys/kernel/tracing}
if [ ! -e "$tracefs/events" ]; then
	mount -t tracefs nodev "$tracefs" 2>/dev/null || true
fi
mkdir -p "$out"

syms=$(mktemp)
trap 'rm -f "$syms"' EXIT
awk '$2 ~ /^[TtWw]$/ { print $3 }' "${MCX_KALLSYMS:-/proc/kallsyms}" > "$syms" 2>/dev/null || true

# probes: "script_name kernel_name" lines; sedexpr renames them in the scripts
probes=$(echo "$PROBES" | while read -r key names; do
	[ -n "$key" ] || continue
	pick=$key
	if [ -s "$syms" ]; then
		for n in $names; do
			if grep -qx "$n" "$syms"; then pick=$n; break; fi
		done
	fi
	echo "$key $pick"
done)
sedexpr=$(echo "$probes" | while read -r key pick; do
	printf 's/(kprobe|kretprobe):%s([^A-Za-z0-9_]|$)/\\1:%s\\2/g;\n' "$key" "$pick"
done)

kernel=$(uname -r)
host=$(hostname 2>/dev/null || uname -n)
date=$(date -u +%Y-%m-%dT%H:%M:%SZ)
start=$(date +%s)

# run_kit NAME: bpftrace on $out/NAME.bt; if it stops on the error of HEADER_FIX, the header is
# added after the script's comment and the script run again for the time left. The pid of the
# bpftrace running is in $out/.NAME.pid, for the INT trap below.
run_kit() {
	s=$1
	bpftrace -q "$out/$s.bt" "$secs" > "$out/$s.txt" 2> "$out/$s.err" &
	echo $! > "$out/.$s.pid"
	rc=0; wait $! || rc=$?
	[ "$rc" != 0 ] || return 0
	err=${HEADER_FIX%%|*}
	hdr=${HEADER_FIX#*|}
	grep -qF "$err" "$out/$s.err" || return "$rc"
	! grep -qxF "#include <$hdr>" "$out/$s.bt" || return "$rc"
	# after the first line that ends the leading comment (kit.py with_include does the same)
	awk -v inc="#include <$hdr>" 'NR == 1 && !/^\/\*/ { print inc; print ""; done = 1 }
		{ print }
		!done && /\*\/[ \t]*$/ { print ""; print inc; done = 1 }
		END { if (!done) { print ""; print inc } }' "$out/$s.bt" > "$out/$s.bt.tmp"
	mv "$out/$s.bt.tmp" "$out/$s.bt"
	echo "$RERUN_MARK#include <$hdr> (bpftrace could not type a tracepoint field without it)" >> "$out/$s.err"
	echo "record.sh: $s.bt: run again with #include <$hdr> (bpftrace without BTF needs it)" >&2
	left=0
	if [ "$secs" -gt 0 ]; then
		left=$((secs - ($(date +%s) - start)))
		[ "$left" -ge 1 ] || left=1
	fi
	bpftrace -q "$out/$s.bt" "$left" > "$out/$s.txt" 2>> "$out/$s.err" &
	echo $! > "$out/.$s.pid"
	rc=0; wait $! || rc=$?
	return "$rc"
}

pids=""
for s in $SCRIPTS; do
	sed -E "$sedexpr" "$kit/$s.bt" > "$out/$s.bt"
	run_kit "$s" &
	pids="$pids $!"
done
# bpftrace prints its maps when it gets SIGINT: pass Ctrl-C on (to the bpftrace processes, whose
# pids run_kit keeps), then wait for the printing.
trap 'kill -INT $(cat "$out"/.*.pid 2>/dev/null) 2>/dev/null || true' INT TERM
status=0
for p in $pids; do wait "$p" || status=1; done
for p in $pids; do wait "$p" 2>/dev/null || true; done
end=$(date +%s)
for s in $SCRIPTS; do rm -f "$out/.$s.pid"; done

probes_json=$(echo "$probes" | awk 'NF == 2 { printf "%s\"%s\": \"%s\"", sep, $1, $2; sep = ", " }')
scripts_json=$(echo $SCRIPTS | awk '{ for (i = 1; i <= NF; i++) printf "%s\"%s\"", (i > 1 ? ", " : ""), $i }')
includes_json=$(for s in $SCRIPTS; do
	if grep -q "^$RERUN_MARK" "$out/$s.err" 2>/dev/null; then echo "$s ${HEADER_FIX#*|}"; fi
done | awk 'NF == 2 { printf "%s\"%s\": \"%s\"", sep, $1, $2; sep = ", " }')
[ -z "$includes_json" ] || includes_json=", \"includes\": {$includes_json}"
cat > "$out/kit.json" <<EOF
{"kernel": "$kernel", "host": "$host", "date": "$date", "duration_s": $((end - start)), "kit_version": "$KIT_VERSION", "scripts": [$scripts_json], "probes": {$probes_json}, "recorder": "record.sh"$includes_json}
EOF

for s in $SCRIPTS; do
	if [ ! -s "$out/$s.txt" ]; then
		# the last attempt's error (after a run again, not the error that was fixed)
		if grep -q "^$RERUN_MARK" "$out/$s.err"; then
			last=$(sed -n "/^$RERUN_MARK/,\$p" "$out/$s.err" | tail -n +2)
		else
			last=$(cat "$out/$s.err")
		fi
		msg=$(echo "$last" | grep ERROR | grep -v RLIMIT | head -n 1 || true)
		[ -n "$msg" ] || msg=$(echo "$last" | grep -v RLIMIT | head -n 1 || true)
		echo "record.sh: $s.bt printed nothing: $msg (see $out/$s.err)" >&2
	fi
done
echo "record.sh: wrote $out (kernel $kernel, $((end - start)) s)" >&2
exit $status
