/*
 * kernel-lab workload: N processes map ONE shared shmem page and touch it
 * continuously (the seed thread's `stress -m 200`: one shmem/text page mapped
 * by 201 tasks, 200 of them running).
 *
 *   workload N PFN_LO PFN_HI [K]
 *
 * The parent maps a K-page memfd (shmem, K = 64 by default) MAP_SHARED and a
 * one-page shared control page, and forks N children BEFORE the hot page
 * exists, so the children's own pages (stacks, page tables) land wherever
 * memory was when they forked (the init script keeps the DIMM offline until
 * then). The children wait for the go, then read and write the hot page in a
 * tight loop, re-reading which page of the memfd is the hot one (ctl->idx) on
 * every iteration.
 *
 * SIGUSR2: place the hot page in [PFN_LO, PFN_HI) (the hot-plugged DIMM's
 *   memory block, onlined movable by then): if the current hot page is not in
 *   the range, fault in the next unused page of the memfd and read its PFN
 *   from /proc/self/pagemap (root only) until one is in the range, make it
 *   the hot page, punch the old one out (its PTEs go, the children follow
 *   ctl->idx). Prints
 *     WORKLOAD placed idx=<i> pfn=0x<pfn> tries=<faulted> n=<N>
 *   or WORKLOAD error ...; the first placement also gives the go.
 * SIGUSR1: prints WORKLOAD pfn-now=0x<pfn> (the hot page's PFN now: it
 *   changes when a migration succeeded; 0 while its PTE is a migration entry).
 * SIGTERM: kills the children, reaps them, prints WORKLOAD done, exits.
 *
 * The parent keeps the hot page mapped (it faults it in), so its mapcount is
 * N + 1, as in the thread.
 *
 * Build: gcc -O2 -static -o workload workload.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <unistd.h>

#define PAGE 4096
#define WORDS (PAGE / sizeof(unsigned long))

struct ctl {
	volatile int go;
	volatile int idx;
};

static struct ctl *ctl;
static volatile unsigned long *pages; /* K pages of the memfd */
static int memfd, npages, next_unused;
static volatile sig_atomic_t got_usr1, got_usr2, got_term;
static int gofd[2]; /* the go: the children block reading it until the parent closes it */

static uint64_t pfn_of(volatile void *addr)
{
	uint64_t ent = 0;
	int fd = open("/proc/self/pagemap", O_RDONLY);
	if (fd < 0)
		return 0;
	off_t off = ((uintptr_t)addr / PAGE) * sizeof(ent);
	if (pread(fd, &ent, sizeof(ent), off) != sizeof(ent))
		ent = 0;
	close(fd);
	if (!(ent & (1ULL << 63)))
		return 0; /* not present (or a migration entry right now) */
	return ent & ((1ULL << 55) - 1);
}

static volatile unsigned long *page_at(int i) { return pages + (size_t)i * WORDS; }

static void on_usr1(int s) { (void)s; got_usr1 = 1; }
static void on_usr2(int s) { (void)s; got_usr2 = 1; }
static void on_term(int s) { (void)s; got_term = 1; }

static void child(int i)
{
	char b;
	close(gofd[1]);
	while (read(gofd[0], &b, 1) < 0 && errno == EINTR)
		; /* EOF: the go */
	close(gofd[0]);
	unsigned long x = 0;
	for (;;) {
		volatile unsigned long *p = page_at(ctl->idx);
		x += p[0];
		p[1 + i % (WORDS - 1)] = x;
	}
}

static void place(uint64_t lo, uint64_t hi, int n)
{
	int tries = 0;
	if (ctl->go) {
		uint64_t pfn = pfn_of(page_at(ctl->idx));
		if (pfn >= lo && pfn < hi) {
			printf("WORKLOAD placed idx=%d pfn=0x%llx tries=0 n=%d\n", ctl->idx,
			       (unsigned long long)pfn, n);
			fflush(stdout);
			return;
		}
	}
	while (next_unused < npages) {
		int j = next_unused++;
		page_at(j)[0] = j; /* fault it in: a new shmem page */
		tries++;
		uint64_t pfn = pfn_of(page_at(j));
		if (pfn >= lo && pfn < hi && pfn) {
			int old = ctl->idx;
			ctl->idx = j;
			__sync_synchronize();
			if (ctl->go) /* free the old hot page: its PTEs go, the children refault on j */
				fallocate(memfd, FALLOC_FL_PUNCH_HOLE | FALLOC_FL_KEEP_SIZE,
					  (off_t)old * PAGE, PAGE);
			if (!ctl->go) {
				ctl->go = 1;
				close(gofd[1]); /* wake the children */
			}
			printf("WORKLOAD placed idx=%d pfn=0x%llx tries=%d n=%d\n", j,
			       (unsigned long long)pfn, tries, n);
			fflush(stdout);
			return;
		}
	}
	printf("WORKLOAD error no page in [0x%llx,0x%llx) after %d tries\n",
	       (unsigned long long)lo, (unsigned long long)hi, tries);
	fflush(stdout);
}

int main(int argc, char **argv)
{
	if (argc != 4 && argc != 5) {
		fprintf(stderr, "usage: %s N PFN_LO PFN_HI [K]\n", argv[0]);
		return 2;
	}
	int n = atoi(argv[1]);
	uint64_t lo = strtoull(argv[2], NULL, 0);
	uint64_t hi = strtoull(argv[3], NULL, 0);
	npages = argc == 5 ? atoi(argv[4]) : 64;

	ctl = mmap(NULL, PAGE, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	memfd = syscall(SYS_memfd_create, "kernel-lab", 0);
	if (ctl == MAP_FAILED || memfd < 0 || ftruncate(memfd, (off_t)npages * PAGE) < 0) {
		perror("setup");
		return 1;
	}
	pages = mmap(NULL, (size_t)npages * PAGE, PROT_READ | PROT_WRITE, MAP_SHARED, memfd, 0);
	if (pages == MAP_FAILED) {
		perror("mmap");
		return 1;
	}
	ctl->go = 0;
	ctl->idx = 0;

	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_usr1;
	sigaction(SIGUSR1, &sa, NULL);
	sa.sa_handler = on_usr2;
	sigaction(SIGUSR2, &sa, NULL);
	sa.sa_handler = on_term;
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGINT, &sa, NULL);

	if (pipe(gofd) < 0) {
		perror("pipe");
		return 1;
	}
	pid_t *kids = calloc(n, sizeof(pid_t));
	int nkids = 0;
	for (int i = 0; i < n; i++) {
		pid_t c = fork();
		if (c < 0) {
			perror("fork");
			break;
		}
		if (c == 0) {
			prctl(PR_SET_PDEATHSIG, SIGKILL); /* never outlive the parent */
			signal(SIGUSR1, SIG_DFL);
			signal(SIGUSR2, SIG_DFL);
			signal(SIGTERM, SIG_DFL);
			signal(SIGINT, SIG_DFL);
			child(i);
		}
		kids[nkids++] = c;
	}
	close(gofd[0]);
	printf("WORKLOAD pid=%d forked=%d pages=%d range=[0x%llx,0x%llx)\n", getpid(), nkids,
	       npages, (unsigned long long)lo, (unsigned long long)hi);
	fflush(stdout);

	sigset_t block, old;
	sigemptyset(&block);
	sigaddset(&block, SIGUSR1);
	sigaddset(&block, SIGUSR2);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGINT);
	sigprocmask(SIG_BLOCK, &block, &old);
	while (!got_term) {
		if (!got_usr1 && !got_usr2)
			sigsuspend(&old); /* no lost signal between the test and the sleep */
		if (got_usr2) {
			got_usr2 = 0;
			place(lo, hi, nkids);
		}
		if (got_usr1) {
			got_usr1 = 0;
			printf("WORKLOAD pfn-now=0x%llx idx=%d\n",
			       (unsigned long long)pfn_of(page_at(ctl->idx)), ctl->idx);
			fflush(stdout);
		}
	}
	for (int i = 0; i < nkids; i++)
		kill(kids[i], SIGKILL);
	for (int i = 0; i < nkids; i++)
		waitpid(kids[i], NULL, 0);
	printf("WORKLOAD done\n");
	fflush(stdout);
	return 0;
}
