#!/bin/sh
# kernel-lab: build the guest's initramfs (an uncompressed newc cpio).
#
#   sh scripts/kernel-lab/build-initramfs.sh [LAB_DIR]      # LAB_DIR default /work/lab
#
# Contents: busybox-static, bpftrace with every shared library ldd lists
# (bookworm's links LLVM/clang: about 200 MB, fine in RAM), the calibration
# kit (mcexplore/calibration/*.bt and record.sh), the lab's own bpftrace
# script (bt/lab-migrate.bt), the workload and the offliner (gcc -static),
# the kernel's headers (bpftrace without BTF needs them: see below), and init.sh as /init.
# Output: LAB_DIR/initramfs.cpio. KSRC: the built kernel tree (LAB_DIR/linux-source-6.1).
# Needs: busybox-static, bpftrace, gcc, cpio (apt-get install busybox-static bpftrace cpio).
set -eu
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/../.." && pwd)
lab=${1:-/work/lab}
root=$lab/initramfs-root
rm -rf "$root"
mkdir -p "$root/bin" "$root/usr/bin" "$root/lib64" "$root/kit" "$root/lab" "$root/etc" \
	"$root/proc" "$root/sys" "$root/dev" "$root/tmp" "$root/results"

cp /bin/busybox "$root/bin/busybox"
ln -s busybox "$root/bin/sh"

# bpftrace and its libraries, at the paths ldd gives
cp /usr/bin/bpftrace "$root/usr/bin/bpftrace"
ldd /usr/bin/bpftrace | awk '/=>/ { print $3 } /^[[:space:]]*\/lib64\// { print $1 }' | while read -r lib; do
	[ -f "$lib" ] || continue
	mkdir -p "$root$(dirname "$lib")"
	cp -L "$lib" "$root$lib"
done
[ -e "$root/lib64/ld-linux-x86-64.so.2" ] || cp -L /lib64/ld-linux-x86-64.so.2 "$root/lib64/"

# kernel headers: without BTF, bpftrace 0.17 builds tracepoint structs with clang and needs
# them (else "clang_workarounds.h: 'linux/types.h' file not found"); it looks in
# /lib/modules/$(uname -r)/build, as a distribution's linux-headers package installs them
ksrc=${KSRC:-$lab/linux-source-6.1}
krel=$(cat "$ksrc/include/config/kernel.release")
kb=$root/lib/modules/$krel/build
mkdir -p "$kb/arch/x86"
cp -a "$ksrc/include" "$kb/include"
cp -a "$ksrc/arch/x86/include" "$kb/arch/x86/include"

# the kit and the lab's script
cp "$repo"/mcexplore/calibration/*.bt "$repo/mcexplore/calibration/record.sh" "$root/kit/"
# Without BTF, bpftrace 0.17 cannot type the mm_migrate_pages tracepoint's `enum migrate_mode
# mode` field ("field has incomplete type 'enum migrate_mode'") unless the script includes the
# header that defines it: add the include to the guest's copy of each script that uses the
# tracepoint (the repository's scripts are left as they are; record.sh keeps the script as run).
cp "$here"/bt/*.bt "$root/lab/"
for f in "$root"/kit/*.bt "$root"/lab/*.bt; do
	if grep -q 'tracepoint:migrate:' "$f" && ! grep -q 'linux/migrate_mode.h' "$f"; then
		{ echo '#include <linux/migrate_mode.h>'; cat "$f"; } > "$f.tmp" && mv "$f.tmp" "$f"
	fi
done

# the workload and the offliner
nice -n 19 gcc -O2 -static -Wall -o "$root/usr/bin/workload" "$here/workload.c"
nice -n 19 gcc -O2 -static -Wall -o "$root/usr/bin/offline" "$here/offline.c"

cp "$here/init.sh" "$root/init"
chmod 755 "$root/init"
echo "root:x:0:0:root:/:/bin/sh" > "$root/etc/passwd"

(cd "$root" && find . | cpio -o -H newc --quiet) > "$lab/initramfs.cpio"
ls -la "$lab/initramfs.cpio"
