#!/bin/sh
# kernel-lab: boot one kernel in qemu with a hot-pluggable DIMM, run the guest's
# experiment (init.sh) and extract its results.
#
#   sh scripts/kernel-lab/run-lab.sh LABEL BZIMAGE [N [REPS [TIMEOUT_S]]]
#
#   LABEL     stock | ref (the name of scripts/kernel-lab/data/LABEL/)
#   BZIMAGE   the kernel (build-kernel.sh writes LAB_DIR/bzImage-stock, bzImage-ref)
#   N         workload processes (200, as the thread's stress -m 200)
#   REPS      offlines of the DIMM block, each with a fresh hot page in it (5)
#   TIMEOUT_S time limit of one offline (20)
#
# Environment: LAB_DIR (/work/lab: initramfs.cpio, raw logs), QEMU_MEM (2G base
# memory), DIMM (128M: one memory block), QEMU_SMP (2), LAB_ACCEL (kvm|tcg, see below),
# LAB_LIMIT (seconds for the whole qemu run).
# The guest: -m $QEMU_MEM,slots=2,maxmem=4G plus a cold-plugged pc-dimm (ACPI
# memory hotplug), kept offline at boot (memhp_default_state=offline) and
# onlined movable by init.sh once the workload has forked. KVM when /dev/kvm
# works, else TCG (multi-threaded): slower, but the kit measures the guest's own
# timings, and the model is calibrated from those.
# Output: LAB_DIR/run-LABEL/{console.log,results.txt} (raw) and the files the
# guest wrote, under scripts/kernel-lab/data/LABEL/raw/ (extract.py), plus
# data/LABEL/summary.json.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
[ $# -ge 2 ] || { echo "usage: run-lab.sh LABEL BZIMAGE [N [REPS [TIMEOUT_S]]]" >&2; exit 2; }
label=$1; bz=$2; n=${3:-200}; reps=${4:-5}; tmo=${5:-20}
lab=${LAB_DIR:-/work/lab}
mem=${QEMU_MEM:-2G}; dimm=${DIMM:-128M}; smp=${QEMU_SMP:-2}
run=$lab/run-$label
rm -rf "$run"; mkdir -p "$run"
# LAB_ACCEL=kvm|tcg; default kvm where /dev/kvm works. This machine's /dev/kvm is PVM
# (kvm_pvm: software virtualization for specially built guests): a stock guest there sat
# 150 s in the BIOS and the decompressor without printing a line, so kvm_pvm means tcg.
accel_kind=${LAB_ACCEL:-}
if [ -z "$accel_kind" ]; then
	if [ -w /dev/kvm ] && [ ! -d /sys/module/kvm_pvm ]; then accel_kind=kvm; else accel_kind=tcg; fi
fi
case $accel_kind in
	kvm) accel="-enable-kvm -cpu host" ;;
	tcg) accel="-accel tcg,thread=multi -cpu max" ;;
	*) echo "run-lab: LAB_ACCEL=$accel_kind: kvm or tcg" >&2; exit 2 ;;
esac
# the whole run: boot, tracer start-up (LLVM: minutes under TCG), REPS offlines, the report
limit=${LAB_LIMIT:-$((900 + reps * (tmo + 30)))}
append="console=ttyS0 rootfstype=ramfs nokaslr memhp_default_state=offline panic=-1 \
lab.kernel=$label lab.n=$n lab.reps=$reps lab.timeout=$tmo"
echo "run-lab: $label $bz n=$n reps=$reps timeout=${tmo}s limit=${limit}s accel: $accel" >&2
start=$(date +%s)
set +e
# shellcheck disable=SC2086
nice -n 19 timeout "$limit" qemu-system-x86_64 $accel -smp "$smp" \
	-m "$mem,slots=2,maxmem=4G" \
	-object "memory-backend-ram,id=mem1,size=$dimm" -device pc-dimm,id=dimm1,memdev=mem1 \
	-kernel "$bz" -initrd "$lab/initramfs.cpio" -append "$append" \
	-display none -monitor "unix:$run/monitor.sock,server,nowait" -no-reboot \
	-serial "file:$run/console.log" -serial "file:$run/results.txt"
rc=$?
set -e
end=$(date +%s)
echo "run-lab: qemu rc=$rc after $((end - start)) s" >&2
echo "qemu_rc=$rc wall_s=$((end - start)) limit_s=$limit accel=$accel" > "$run/qemu.txt"
python3 "$here/extract.py" "$run" "$here/data/$label"
