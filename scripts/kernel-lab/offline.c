/*
 * kernel-lab offliner: offline one memory block with a time limit.
 *
 *   offline BLOCK TIMEOUT_S
 *
 * Writes "offline" to /sys/devices/system/memory/memoryBLOCK/state and
 * measures the write with CLOCK_MONOTONIC. offline_pages() in 6.1 loops until
 * the block is empty and backs off when a signal is pending (-EINTR), so an
 * alarm(TIMEOUT_S) with a handler (no SA_RESTART) ends a livelocked offline.
 * Prints one line:
 *   OFFLINE block=B result=ok|EINTR|E... errno=N dur_ns=D timeout_s=T
 * and the block's state afterwards. Exit status 0 iff the block went offline.
 *
 * Build: gcc -O2 -static -o offline offline.c
 */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static void on_alarm(int s) { (void)s; }

static long long now_ns(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000000000LL + ts.tv_nsec;
}

int main(int argc, char **argv)
{
	if (argc != 3) {
		fprintf(stderr, "usage: %s BLOCK TIMEOUT_S\n", argv[0]);
		return 2;
	}
	char path[256], state[64] = "";
	snprintf(path, sizeof(path), "/sys/devices/system/memory/memory%s/state", argv[1]);
	int t = atoi(argv[2]);
	struct sigaction sa;
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_alarm; /* no SA_RESTART: the write returns EINTR */
	sigaction(SIGALRM, &sa, NULL);
	int fd = open(path, O_WRONLY);
	if (fd < 0) {
		perror(path);
		return 2;
	}
	long long t0 = now_ns();
	alarm(t);
	ssize_t r = write(fd, "offline", 7);
	int err = errno;
	alarm(0);
	long long t1 = now_ns();
	close(fd);
	fd = open(path, O_RDONLY);
	if (fd >= 0) {
		ssize_t k = read(fd, state, sizeof(state) - 1);
		state[k > 0 ? k : 0] = 0;
		char *nl = strchr(state, '\n');
		if (nl)
			*nl = 0;
		close(fd);
	}
	const char *res = r >= 0 ? "ok" : err == EINTR ? "EINTR" : strerror(err);
	printf("OFFLINE block=%s result=%s errno=%d dur_ns=%lld timeout_s=%d t0_ns=%lld state=%s\n",
	       argv[1], res, r >= 0 ? 0 : err, t1 - t0, t, t0, state);
	fflush(stdout);
	return r >= 0 ? 0 : 1;
}
