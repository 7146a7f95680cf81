#!/bin/sh
# kernel-lab guest /init (busybox sh). Parameters from the kernel command line:
#   lab.kernel=NAME   label of this kernel (stock | ref)
#   lab.n=N           workload processes (default 200)
#   lab.reps=R        offline attempts of the DIMM block (default 5)
#   lab.timeout=S     time limit of one offline, seconds (default 20)
#   lab.settle=S      seconds of load before each offline (default 2)
# Results go to /results and, at the end, to the second serial port (ttyS1)
# between "=====FILE name=====" and "=====END name=====" markers; the console
# (ttyS0) gets the progress. Then the guest powers off.
export PATH=/bin:/sbin:/usr/bin:/usr/sbin
export LD_LIBRARY_PATH=/lib/x86_64-linux-gnu:/usr/lib/x86_64-linux-gnu
/bin/busybox mkdir -p /proc /sys /dev /tmp /results
/bin/busybox mount -t proc proc /proc
/bin/busybox mount -t sysfs sysfs /sys
/bin/busybox mount -t devtmpfs devtmpfs /dev 2>/dev/null
/bin/busybox --install -s /bin 2>/dev/null
mount -t debugfs debugfs /sys/kernel/debug
mount -t tracefs tracefs /sys/kernel/tracing
ulimit -l unlimited 2>/dev/null

R=/results
mkdir -p $R/kit
t0=$(cut -d' ' -f1 /proc/uptime)
say() { echo "LAB[$(cut -d' ' -f1 /proc/uptime)] $*"; echo "$(cut -d' ' -f1 /proc/uptime) $*" >> $R/events.txt; }

arg() { # arg NAME DEFAULT
	v=$(tr ' ' '\n' < /proc/cmdline | sed -n "s/^lab\.$1=//p" | tail -n 1)
	echo "${v:-$2}"
}
KERNEL=$(arg kernel unknown)
N=$(arg n 200)
REPS=$(arg reps 5)
TMO=$(arg timeout 20)
SETTLE=$(arg settle 2)
say "kernel-lab guest: kernel=$KERNEL n=$N reps=$REPS timeout=${TMO}s settle=${SETTLE}s"

{
	echo "uname: $(uname -a)"
	echo "cmdline: $(cat /proc/cmdline)"
	echo "cpus: $(grep -c ^processor /proc/cpuinfo)"
	echo "block_size_bytes: $(cat /sys/devices/system/memory/block_size_bytes)"
	grep -E 'MemTotal|MemFree' /proc/meminfo
	for m in /sys/devices/system/memory/memory*; do
		echo "$(basename $m) state=$(cat $m/state) zones=$(cat $m/valid_zones 2>/dev/null | tr ' ' ,) phys_index=$(cat $m/phys_index)"
	done
} > $R/guest.txt
cat $R/guest.txt

# the functions the kit and the lab probe
for f in migrate_pages try_to_migrate try_to_migrate_one remove_migration_ptes remove_migration_pte \
	folio_migrate_mapping __folio_migrate_mapping folio_migrate_copy migrate_folio free_unref_page \
	migration_entry_wait __migration_entry_wait migration_entry_wait_on_locked offline_pages do_migrate_range; do
	if grep -q " $f\$" /proc/kallsyms; then echo "$f yes"; else echo "$f NO"; fi
done > $R/kallsyms.txt
cat $R/kallsyms.txt

# the DIMM's block: the first offline block (memhp_default_state=offline)
B=""
for m in /sys/devices/system/memory/memory*; do
	if [ "$(cat $m/state)" = offline ]; then B=${m##*memory}; break; fi
done
if [ -z "$B" ]; then
	say "ERROR no offline memory block: is the pc-dimm there (ACPI memory hotplug)?"
	B=none
fi
BS=$((0x$(cat /sys/devices/system/memory/block_size_bytes)))
PPB=$((BS / 4096))
STATE=/sys/devices/system/memory/memory$B/state
if [ "$B" != none ]; then
	LO=$((B * PPB)); HI=$((LO + PPB))
	say "DIMM block memory$B pfn [$LO, $HI) ($((BS >> 20)) MiB)"

	# the children fork while the DIMM is offline: their own pages stay out of it
	workload $N $LO $HI 64 > $R/workload.txt 2>&1 &
	WL=$!
	i=0
	while ! grep -q forked= $R/workload.txt 2>/dev/null && [ $i -lt 600 ]; do sleep 0.1; i=$((i + 1)); done
	say "$(head -n 1 $R/workload.txt)"

	# the tracers: the kit (record.sh) and the lab's per-attempt script, at high priority
	# so that 200 spinning tasks do not starve them (lost events)
	export BPFTRACE_PERF_RB_PAGES=1024
	# (busybox-static has no nice: renice this shell, its children inherit it, then back)
	renice -20 -p $$ > /dev/null
	sh /kit/record.sh $R/kit 0 > $R/record.log 2>&1 &
	REC=$!
	bpftrace /lab/lab-migrate.bt > $R/lab-migrate.txt 2> $R/lab-migrate.err &
	LABBT=$!
	renice 0 -p $$ > /dev/null
	i=0
	while ! grep -q "LAB attached" $R/lab-migrate.txt 2>/dev/null && [ $i -lt 900 ]; do
		sleep 1; i=$((i + 1))
		[ $((i % 15)) = 0 ] && say "waiting for the tracers: $(pidof bpftrace | wc -w) bpftrace running, $(wc -l < /sys/kernel/debug/kprobes/list) kprobes, lab: $(head -c 200 $R/lab-migrate.err | tr '\n' ' ')"
	done
	# the kit prints nothing before exit: wait until the kprobe list stops growing
	prev=-1; same=0; i=0
	while [ $same -lt 5 ] && [ $i -lt 300 ]; do
		c=$(wc -l < /sys/kernel/debug/kprobes/list 2>/dev/null || echo 0)
		if [ "$c" = "$prev" ]; then same=$((same + 1)); else same=0; fi
		prev=$c; sleep 1; i=$((i + 1))
	done
	say "tracers attached: $(wc -l < /sys/kernel/debug/kprobes/list) kprobes; $(grep -c . $R/lab-migrate.err) lines on lab stderr"
	T_REC0=$(cut -d' ' -f1 /proc/uptime)

	rep=1
	while [ $rep -le $REPS ]; do
		if [ "$(cat $STATE)" = offline ]; then
			echo online_movable > $STATE || say "ERROR online_movable failed"
		fi
		say "rep $rep: memory$B $(cat $STATE) zones=$(cat /sys/devices/system/memory/memory$B/valid_zones)"
		before=$(grep -c placed $R/workload.txt)
		kill -USR2 $WL
		i=0
		while [ "$(grep -c -E 'placed|error' $R/workload.txt)" -le "$before" ] && [ $i -lt 300 ]; do sleep 0.1; i=$((i + 1)); done
		placed=$(grep -E 'placed|error' $R/workload.txt | tail -n 1)
		say "rep $rep: $placed"
		pfn=$(echo "$placed" | sed -n 's/.*pfn=\(0x[0-9a-f]*\).*/\1/p')
		sleep $SETTLE
		# the page's mapcount from /proc/kpagecount (8 bytes per pfn)
		if [ -n "$pfn" ]; then
			mc=$(dd if=/proc/kpagecount bs=8 skip=$((pfn)) count=1 2>/dev/null | od -An -t u8 | tr -d ' ')
			say "rep $rep: hot pfn $pfn mapcount $mc"
		fi
		# the offliner at nice -20: 200 spinners on 2 vCPUs would otherwise leave the
		# migrator about 1% of the CPU between the cond_resched()s of its rmap walks
		renice -20 -p $$ > /dev/null
		res=$(offline $B $TMO)
		renice 0 -p $$ > /dev/null
		say "rep $rep: $res"
		echo "rep=$rep pfn=$pfn mapcount=$mc $res" >> $R/offline.txt
		kill -USR1 $WL; sleep 0.5
		say "rep $rep: $(grep pfn-now $R/workload.txt | tail -n 1)"
		rep=$((rep + 1))
	done

	# the seed: stopping the workload lets the block offline at once
	kill -TERM $WL; wait $WL
	say "workload stopped: $(tail -n 1 $R/workload.txt)"
	if [ "$(cat $STATE)" != offline ]; then
		res=$(offline $B $TMO)
		say "after stop: $res"
		echo "rep=after-stop pfn= mapcount=0 $res" >> $R/offline.txt
	fi
	T_REC1=$(cut -d' ' -f1 /proc/uptime)

	kill -TERM $REC; kill -INT $LABBT
	wait $REC; wait $LABBT
	for p in $(pidof bpftrace); do kill -INT $p; done
	sleep 1
	say "tracers stopped (recorded $T_REC0 .. $T_REC1 s of uptime)"
	# the kit's meta: the lab's kernel label with uname -r
	if [ -f $R/kit/kit.json ]; then
		sed -i "s/\"kernel\": \"\([^\"]*\)\"/\"kernel\": \"\1 ($KERNEL)\"/; s/\"host\": \"[^\"]*\"/\"host\": \"qemu-kvm guest, 2 vCPUs (kernel-lab)\"/" $R/kit/kit.json
	fi
fi
dmesg > $R/dmesg.txt

# the results, on ttyS1
stty -F /dev/ttyS1 raw -echo 2>/dev/null
{
	for f in $(cd $R && find . -type f | sort); do
		echo "=====FILE ${f#./}====="
		cat $R/$f
		echo "=====END ${f#./}====="
	done
	echo "=====LAB DONE====="
} > /dev/ttyS1
say "done"
sync
poweroff -f
