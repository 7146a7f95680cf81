#!/bin/sh
# kernel-lab: build the two guest kernels from Debian's linux-source-6.1.
#
#   sh scripts/kernel-lab/build-kernel.sh [LAB_DIR]         # LAB_DIR default /work/lab
#
# 1. extracts /usr/src/linux-source-6.1.tar.xz into LAB_DIR (apt-get install linux-source-6.1
#    flex bison libelf-dev bc; also qemu-system-x86 busybox-static bpftrace cpio for the rest),
# 2. configures `make tinyconfig` + lab.config (serial console, initramfs, ACPI memory hotplug,
#    hot-remove, migration, kprobes, tracepoints, BPF; no DEBUG_INFO/BTF),
# 3. builds bzImage -> LAB_DIR/bzImage-stock (its fault handler waits with
#    migration_entry_wait_on_locked(): the model's `ptl_pin`),
# 4. applies ref-wait.patch (v4.19's get_page + wait_on_page_locked in __migration_entry_wait:
#    `ref`), rebuilds (only mm/migrate.o and the link) -> LAB_DIR/bzImage-ref,
# 5. reverts the patch (the tree is stock again).
# Every make runs under nice -n 19 with -j2 (a shared 2-core machine). Logs: LAB_DIR/build-*.log.
set -eu
here=$(cd "$(dirname "$0")" && pwd)
lab=${1:-/work/lab}
src=$lab/linux-source-6.1
jobs=${JOBS:-2}
mkdir -p "$lab"
if [ ! -d "$src" ]; then
	tar -C "$lab" -xf /usr/src/linux-source-6.1.tar.xz
fi
cd "$src"
if patch -p1 -R --dry-run -s < "$here/ref-wait.patch" >/dev/null 2>&1; then
	patch -p1 -R -s < "$here/ref-wait.patch" # a previous run stopped half way
fi
nice -n 19 make tinyconfig > "$lab/build-config.log" 2>&1
./scripts/kconfig/merge_config.sh -m .config "$here/lab.config" >> "$lab/build-config.log" 2>&1
nice -n 19 make olddefconfig >> "$lab/build-config.log" 2>&1
# every option lab.config asks for must have stuck
grep -E '^CONFIG_[A-Z0-9_]+=' "$here/lab.config" | while IFS='=' read -r k v; do
	got=$(grep -E "^$k=" .config | cut -d= -f2-)
	[ "$got" = "$v" ] || { echo "build-kernel: $k=$v did not stick (got '$got')" >&2; exit 1; }
done

t0=$(date +%s)
nice -n 19 make -j"$jobs" bzImage > "$lab/build-stock.log" 2>&1
t1=$(date +%s)
cp arch/x86/boot/bzImage "$lab/bzImage-stock"
cp System.map "$lab/System.map-stock"
echo "build-kernel: stock bzImage in $((t1 - t0)) s" >&2

patch -p1 -s < "$here/ref-wait.patch"
nice -n 19 make -j"$jobs" bzImage > "$lab/build-ref.log" 2>&1 || { patch -p1 -R -s < "$here/ref-wait.patch"; exit 1; }
t2=$(date +%s)
cp arch/x86/boot/bzImage "$lab/bzImage-ref"
cp System.map "$lab/System.map-ref"
echo "build-kernel: ref bzImage (incremental) in $((t2 - t1)) s" >&2
patch -p1 -R -s < "$here/ref-wait.patch"
echo "build-kernel: stock $((t1 - t0)) s, ref $((t2 - t1)) s" > "$lab/build-times.txt"
