/* memcgsim's guest workload: runs a scenario script inside a QEMU guest.
 *
 * One controller process reads the script (one command a line) and drives task processes, one
 * per scenario task, each blocked on its own command FIFO so that its memory stays mapped
 * across steps. Results go to the output port as lines starting with "@@" (parsed by
 * memcgsim.validate.serial). Built static at setup: gcc -static -O2 -o wl workload.c
 *
 * Lines written:
 *   @@R SC STEP ok|ERRNO|skipped|killed   outcome of a step (killed: the task died in it)
 *   @@F SC STEP CGROUP FILE       a memory.* file follows, then one @@L per line of it
 *   @@L SC STEP CGROUP FILE LINE
 *   @@T SC STEP TASK alive|exited|killed
 *   @@V SC STEP FD VALUE          a read of an open memory.peak file
 *   @@W SC STEP CGROUP MS READS settled|unsettled
 *                                 when the dumped files last changed (ms after the first
 *                                 read), in how many reads
 *   @@S SC begin|end              scenario boundaries
 */
#define _GNU_SOURCE
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ipc.h>
#include <sys/mman.h>
#include <sched.h>
#include <sys/prctl.h>
#include <sys/shm.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define PAGE 4096
#define MAXT 64
#define MAXR 64
#define MAXFD 16
#define CG "/sys/fs/cgroup"
#define FIFO_DIR "/run/wl"

static int out = 1;
static char iobuf[1 << 16];

static void say(const char *fmt, ...)
{
	char line[8192];
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(line) - 2)
		n = sizeof(line) - 2;
	line[n++] = '\n';
	for (int off = 0; off < n;) {
		ssize_t w = write(out, line + off, n - off);
		if (w <= 0)
			break;
		off += w;
	}
}

static const char *ename(int e)
{
	const char *s = strerrorname_np(e);
	return s ? s : "EUNKNOWN";
}

/* ------------------------------------------------------------------ task side */

struct region {
	char name[32];
	char *addr;
	size_t len;
	int shm;
};

static struct region regions[MAXR];
static char my_name[32];

static struct region *region(const char *name)
{
	for (int i = 0; i < MAXR; i++)
		if (regions[i].addr && !strcmp(regions[i].name, name))
			return &regions[i];
	return NULL;
}

static struct region *new_region(const char *name)
{
	struct region *r = region(name);
	if (r)
		return r;
	for (int i = 0; i < MAXR; i++)
		if (!regions[i].addr) {
			snprintf(regions[i].name, sizeof(regions[i].name), "%s", name);
			return &regions[i];
		}
	return NULL;
}

static void touch(char *p, size_t len, int write)
{
	volatile char sink = 0;
	for (size_t off = 0; off < len; off += PAGE) {
		if (write)
			p[off] = 1;
		else
			sink += ((volatile char *)p)[off];
	}
	(void)sink;
}

static int write_file(const char *path, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_APPEND, 0644);
	if (fd < 0)
		return errno;
	while (len) {
		size_t n = len < sizeof(iobuf) ? len : sizeof(iobuf);
		ssize_t w = write(fd, iobuf, n);
		if (w < 0) {
			int e = errno;
			close(fd);
			return e;
		}
		len -= w;
	}
	close(fd);
	return 0;
}

static int read_file(const char *path)
{
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return errno;
	for (;;) {
		ssize_t n = read(fd, iobuf, sizeof(iobuf));
		if (n < 0) {
			int e = errno;
			close(fd);
			return e;
		}
		if (n == 0)
			break;
	}
	close(fd);
	return 0;
}

static int task_loop(void);

/* Write every page the task will ever write before it joins its cgroup, so that no copy-on-write
 * fault of the process's own stack or data is charged there. */
static __attribute__((noinline)) void prefault_stack(void)
{
	volatile char stack[256 << 10];
	for (size_t i = 0; i < sizeof(stack); i += PAGE)
		stack[i] = 0;
}

/* Every writable private page of the process, written once (its own copy, charged where the
 * process is now). */
static void prefault(void)
{
	char line[512];
	int fd = open("/proc/self/maps", O_RDONLY);
	static char maps[16384];
	ssize_t n = 0, r;

	prefault_stack();
	while (fd >= 0 && (r = read(fd, maps + n, sizeof(maps) - 1 - n)) > 0)
		n += r;
	if (fd >= 0)
		close(fd);
	maps[n] = 0;
	for (char *l = maps; l && *l;) {
		char *nl = strchr(l, '\n');
		size_t len = nl ? (size_t)(nl - l) : strlen(l);
		snprintf(line, sizeof(line), "%.*s", (int)len, l);
		unsigned long lo, hi;
		char perms[8];
		if (sscanf(line, "%lx-%lx %7s", &lo, &hi, perms) == 3 && perms[0] == 'r' &&
		    perms[1] == 'w' && perms[3] == 'p' && !strstr(line, "[vvar") &&
		    !strstr(line, "[vsyscall"))
			for (unsigned long a = lo; a < hi; a += PAGE) {
				volatile char *p = (volatile char *)a;
				*p = *p;
			}
		l = nl ? nl + 1 : NULL;
	}
	errno = 0;
}

static int open_fifos(const char *name, int *cmd, int *rep)
{
	char p[128];
	snprintf(p, sizeof(p), FIFO_DIR "/%s.cmd", name);
	*cmd = open(p, O_RDONLY);
	snprintf(p, sizeof(p), FIFO_DIR "/%s.rep", name);
	*rep = open(p, O_WRONLY);
	return (*cmd < 0 || *rep < 0) ? -1 : 0;
}

static int cmd_fd = -1, rep_fd = -1;

static int task_do(char *argv[], int argc)
{
	const char *op = argv[0];
	struct region *r;

	if (!strcmp(op, "anon") && argc == 4) {
		/* anon REGION BYTES FLAGS: 1 shared, 2 locked, 4 no touch */
		size_t len = strtoull(argv[2], NULL, 10);
		int flags = atoi(argv[3]);
		int mf = (flags & 1 ? MAP_SHARED : MAP_PRIVATE) | MAP_ANONYMOUS;
		if (flags & 2)
			mf |= MAP_LOCKED;
		char *p = mmap(NULL, len, PROT_READ | PROT_WRITE, mf, -1, 0);
		if (p == MAP_FAILED)
			return errno;
		r = new_region(argv[1]);
		r->addr = p, r->len = len, r->shm = 0;
		if (!(flags & 4))
			touch(p, len, 1);
		return 0;
	}
	if (!strcmp(op, "shm") && argc == 3) {
		size_t len = strtoull(argv[2], NULL, 10);
		int id = shmget(IPC_PRIVATE, len, IPC_CREAT | 0600);
		if (id < 0)
			return errno;
		char *p = shmat(id, NULL, 0);
		if (p == (void *)-1)
			return errno;
		shmctl(id, IPC_RMID, NULL);
		r = new_region(argv[1]);
		r->addr = p, r->len = len, r->shm = 1;
		touch(p, len, 1);
		return 0;
	}
	if (!strcmp(op, "mmap") && argc == 3) {
		int fd = open(argv[2], O_RDONLY);
		if (fd < 0)
			return errno;
		struct stat st;
		fstat(fd, &st);
		size_t len = (st.st_size + PAGE - 1) / PAGE * PAGE;
		char *p = mmap(NULL, len, PROT_READ, MAP_SHARED, fd, 0);
		close(fd);
		if (p == MAP_FAILED)
			return errno;
		r = new_region(argv[1]);
		r->addr = p, r->len = len, r->shm = 0;
		touch(p, len, 0);
		return 0;
	}
	if ((!strcmp(op, "touch") || !strcmp(op, "unmap") || !strcmp(op, "mlock") ||
	     !strcmp(op, "munlock")) && argc == 2) {
		r = region(argv[1]);
		if (!r)
			return ENOENT;
		if (op[0] == 't') {
			touch(r->addr, r->len, 1);
			return 0;
		}
		if (!strcmp(op, "mlock"))
			return mlock(r->addr, r->len) ? errno : 0;
		if (!strcmp(op, "munlock"))
			return munlock(r->addr, r->len) ? errno : 0;
		int ret = r->shm ? shmdt(r->addr) : munmap(r->addr, r->len);
		r->addr = NULL;
		return ret ? errno : 0;
	}
	if (!strcmp(op, "write") && argc == 3)
		return write_file(argv[1], strtoull(argv[2], NULL, 10));
	if (!strcmp(op, "read") && argc == 2)
		return read_file(argv[1]);
	if (!strcmp(op, "fork") && argc == 2) {
		pid_t pid = fork();
		if (pid < 0)
			return errno;
		if (pid == 0) {
			close(cmd_fd);
			close(rep_fd);
			snprintf(my_name, sizeof(my_name), "%s", argv[1]);
			if (open_fifos(my_name, &cmd_fd, &rep_fd))
				_exit(111);
			_exit(task_loop());
		}
		return -pid; /* the caller replies with the pid */
	}
	return EINVAL;
}

static int task_loop(void)
{
	char line[1024];
	size_t have = 0;

	for (;;) {
		char *nl = memchr(line, '\n', have);
		if (!nl) {
			ssize_t n = read(cmd_fd, line + have, sizeof(line) - 1 - have);
			if (n <= 0)
				return 0;
			have += n;
			continue;
		}
		*nl = 0;
		char *argv[8];
		int argc = 0;
		for (char *tok = strtok(line, " "); tok && argc < 8; tok = strtok(NULL, " "))
			argv[argc++] = tok;
		if (argc && !strcmp(argv[0], "exit"))
			_exit(0);
		int ret = argc ? task_do(argv, argc) : EINVAL;
		char rep[32];
		int n = snprintf(rep, sizeof(rep), "%d\n", ret);
		if (write(rep_fd, rep, n) != n)
			return 1;
		size_t used = nl + 1 - line;
		memmove(line, nl + 1, have - used);
		have -= used;
	}
}

/* ------------------------------------------------------------ controller side */

struct task {
	char name[32];
	pid_t pid;
	int cmd, rep;
	int state; /* 0 alive, 1 exited, 2 killed */
	int exiting;
};

static struct task tasks[MAXT];
static int ntasks;
static int fds[MAXFD];
static char fdnames[MAXFD][32];
static int sc;

static struct task *task(const char *name)
{
	for (int i = 0; i < ntasks; i++)
		if (!strcmp(tasks[i].name, name))
			return &tasks[i];
	return NULL;
}

static void mark_dead(struct task *t)
{
	if (t->state)
		return;
	t->state = t->exiting ? 1 : 2;
	if (t->cmd >= 0)
		close(t->cmd);
	if (t->rep >= 0)
		close(t->rep);
	t->cmd = t->rep = -1;
}

static void msleep(int ms)
{
	struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
	nanosleep(&ts, NULL);
}

static int gone(pid_t pid)
{
	char p[64], s[256];
	snprintf(p, sizeof(p), "/proc/%d/stat", pid);
	int fd = open(p, O_RDONLY);
	if (fd < 0)
		return 1;
	ssize_t n = read(fd, s, sizeof(s) - 1);
	close(fd);
	if (n <= 0)
		return 1;
	s[n] = 0;
	char *c = strrchr(s, ')');
	return c && (c[2] == 'Z' || c[2] == 'X');
}

/* Collect dead tasks (the controller is their subreaper) and wait until their exit is done. */
static void reap(void)
{
	int st;
	pid_t pid;
	while ((pid = waitpid(-1, &st, WNOHANG)) > 0)
		for (int i = 0; i < ntasks; i++)
			if (tasks[i].pid == pid)
				mark_dead(&tasks[i]);
	for (int i = 0; i < ntasks; i++)
		if (!tasks[i].state && gone(tasks[i].pid)) {
			for (int k = 0; k < 500 && waitpid(tasks[i].pid, &st, WNOHANG) == 0; k++)
				msleep(2);
			mark_dead(&tasks[i]);
		}
}

/* Send one command to a task and wait for its reply; returns the reply (an errno or, for fork,
 * minus the child's pid), or -1 with the task marked dead when it died meanwhile. */
static long ask(struct task *t, const char *fmt, ...)
{
	char line[1024], rep[32];
	va_list ap;
	va_start(ap, fmt);
	int n = vsnprintf(line, sizeof(line) - 1, fmt, ap);
	va_end(ap);
	line[n++] = '\n';
	if (write(t->cmd, line, n) != n) {
		reap();
		mark_dead(t);
		return -1;
	}
	size_t have = 0;
	for (;;) {
		ssize_t r = read(t->rep, rep + have, sizeof(rep) - 1 - have);
		if (r <= 0) {
			int st;
			for (int k = 0; k < 2500 && !gone(t->pid); k++)
				msleep(2);
			waitpid(t->pid, &st, WNOHANG);
			mark_dead(t);
			return -1;
		}
		have += r;
		if (memchr(rep, '\n', have))
			break;
	}
	rep[have] = 0;
	return strtol(rep, NULL, 10);
}

static int write_str(const char *path, const char *text)
{
	int fd = open(path, O_WRONLY);
	if (fd < 0)
		return errno;
	ssize_t n = write(fd, text, strlen(text));
	int e = n < 0 ? errno : 0;
	close(fd);
	return e;
}

static int new_fifos(const char *name)
{
	char p[128];
	snprintf(p, sizeof(p), FIFO_DIR "/%s.cmd", name);
	unlink(p);
	if (mkfifo(p, 0600))
		return errno;
	snprintf(p, sizeof(p), FIFO_DIR "/%s.rep", name);
	unlink(p);
	if (mkfifo(p, 0600))
		return errno;
	return 0;
}

static int ctl_open_fifos(struct task *t)
{
	char p[128];
	snprintf(p, sizeof(p), FIFO_DIR "/%s.cmd", t->name);
	t->cmd = open(p, O_WRONLY);
	snprintf(p, sizeof(p), FIFO_DIR "/%s.rep", t->name);
	t->rep = open(p, O_RDONLY);
	return (t->cmd < 0 || t->rep < 0) ? errno : 0;
}

static struct task *add_task(const char *name)
{
	if (ntasks == MAXT)
		return NULL;
	struct task *t = &tasks[ntasks++];
	memset(t, 0, sizeof(*t));
	snprintf(t->name, sizeof(t->name), "%s", name);
	t->cmd = t->rep = -1;
	return t;
}

static int spawn(const char *name, const char *cg, const char *adj, int cpu)
{
	struct task *t = add_task(name);
	if (!t)
		return ENOSPC;
	int e = new_fifos(name);
	if (e)
		return e;
	char procs[512];
	snprintf(procs, sizeof(procs), CG "%s/cgroup.procs", cg);
	pid_t pid = fork();
	if (pid < 0)
		return errno;
	if (pid == 0) {
		signal(SIGCHLD, SIG_IGN);
		if (cpu >= 0) {
			cpu_set_t set;
			CPU_ZERO(&set);
			CPU_SET(cpu, &set);
			if (sched_setaffinity(0, sizeof(set), &set))
				_exit(113);
		}
		if (write_str("/proc/self/oom_score_adj", adj))
			_exit(114);
		prefault();
		snprintf(my_name, sizeof(my_name), "%s", name);
		if (open_fifos(name, &cmd_fd, &rep_fd))
			_exit(111);
		/* a first reply from here, so that the pipe's buffer page (reused for every later
		 * reply) is charged where the controller lives, not to the scenario's cgroup */
		if (write(rep_fd, "0\n", 2) != 2)
			_exit(111);
		if (write_str(procs, "0"))
			_exit(112);
		/* joined: the second reply merges into that page or reuses it */
		if (write(rep_fd, "0\n", 2) != 2)
			_exit(111);
		_exit(task_loop());
	}
	t->pid = pid;
	e = ctl_open_fifos(t);
	if (e)
		return e;
	char ready[8];
	for (int have = 0; have < 4;) {
		ssize_t n = read(t->rep, ready + have, 4 - have);
		if (n <= 0) {
			reap();
			mark_dead(t);
			return EIO;
		}
		have += n;
	}
	return 0;
}

static long now_ms(void)
{
	struct timespec ts;
	clock_gettime(CLOCK_MONOTONIC, &ts);
	return ts.tv_sec * 1000L + ts.tv_nsec / 1000000L;
}

/* Lines whose values move while nothing runs: pressure averages decay, and background
 * writeback cleans dirty pages on its own clock. They are printed but not waited for. */
static int moves_alone(const char *file, const char *line)
{
	return !strcmp(file, "memory.pressure") || strstr(line, "dirty") ||
	       strstr(line, "writeback");
}

/* Read every memory.* file of a cgroup: `all` gets "FILE LINE\n" records, `key` the same
 * without the lines that move alone. Returns 0, or the errno of opening the directory. */
static int snap_cgroup(const char *dir, char *all, size_t asz, char *key, size_t ksz)
{
	char path[1024], buf[16384];
	size_t na = 0, nk = 0;
	DIR *d = opendir(dir);
	if (!d)
		return errno;
	all[0] = key[0] = 0;
	struct dirent *de;
	while ((de = readdir(d))) {
		if (strncmp(de->d_name, "memory.", 7))
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
		int fd = open(path, O_RDONLY);
		if (fd < 0)
			continue;
		ssize_t n = read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (n < 0)
			continue;
		buf[n] = 0;
		na += snprintf(all + na, asz - na, "%s\n", de->d_name);
		if (na >= asz)
			na = asz - 1;
		for (char *l = strtok(buf, "\n"); l; l = strtok(NULL, "\n")) {
			na += snprintf(all + na, asz - na, "%s %s\n", de->d_name, l);
			if (na >= asz)
				na = asz - 1;
			if (moves_alone(de->d_name, l))
				continue;
			nk += snprintf(key + nk, ksz - nk, "%s %s\n", de->d_name, l);
			if (nk >= ksz)
				nk = ksz - 1;
		}
	}
	closedir(d);
	return 0;
}

/* Force the cgroup's pending statistics out: on cgroup v2, reading cpu.stat flushes the
 * cgroup's rstat tree, memcg's counters with it. v1 has no such file: the caller waits for
 * the kernel's periodic flush instead. */
static void flush_stats(const char *dir)
{
	char path[1024], buf[4096];
	snprintf(path, sizeof(path), "%s/cpu.stat", dir);
	int fd = open(path, O_RDONLY);
	if (fd < 0)
		return;
	while (read(fd, buf, sizeof(buf)) > 0)
		;
	close(fd);
}

#define SETTLE_MAX_MS 6000
/* v1 (6.1) flushes memcg statistics every 2 s (flush_memcg_stats_dwork): a value must stay
 * unchanged for longer than that before it counts as settled */
#define V1_QUIET_MS 2200
#define V2_QUIET_MS 100

/* Dump a cgroup's memory.* files once they have settled: read them until two reads agree
 * over the quiet interval (or SETTLE_MAX_MS passes), then print the last read, and how long
 * settling took (@@W). */
static void dump_cgroup(int step, const char *cg)
{
	static char all[2][1 << 17], key[2][1 << 17];
	char dir[512];
	snprintf(dir, sizeof(dir), CG "%s", cg);
	int v2 = access(CG "/cgroup.controllers", F_OK) == 0;
	long quiet = v2 ? V2_QUIET_MS : V1_QUIET_MS;
	long t0 = now_ms(), since = t0;
	int cur = 0, reads = 1, settled = 0;
	flush_stats(dir);
	int e = snap_cgroup(dir, all[0], sizeof(all[0]), key[0], sizeof(key[0]));
	if (e) {
		say("@@R %d %d %s", sc, step, ename(e));
		return;
	}
	for (;;) {
		msleep(v2 ? 50 : 200);
		flush_stats(dir);
		int nxt = !cur;
		if (snap_cgroup(dir, all[nxt], sizeof(all[nxt]), key[nxt], sizeof(key[nxt])))
			break;
		reads++;
		long t = now_ms();
		if (strcmp(key[cur], key[nxt]))
			since = t;
		cur = nxt;
		if (t - since >= quiet) {
			settled = 1;
			break;
		}
		if (t - t0 >= SETTLE_MAX_MS)
			break;
	}
	const char *file = NULL;
	for (char *l = strtok(all[cur], "\n"); l; l = strtok(NULL, "\n")) {
		char *sp = strchr(l, ' ');
		if (!sp) {
			file = l;
			say("@@F %d %d %s %s", sc, step, cg, file);
			continue;
		}
		*sp = 0;
		say("@@L %d %d %s %s %s", sc, step, cg, l, sp + 1);
	}
	(void)file;
	say("@@W %d %d %s %ld %d %s", sc, step, cg, since - t0, reads,
	    settled ? "settled" : "unsettled");
}

static int fd_slot(const char *name, int create)
{
	for (int i = 0; i < MAXFD; i++)
		if (fds[i] > 0 && !strcmp(fdnames[i], name))
			return i;
	if (create)
		for (int i = 0; i < MAXFD; i++)
			if (fds[i] <= 0) {
				snprintf(fdnames[i], sizeof(fdnames[i]), "%s", name);
				return i;
			}
	return -1;
}

/* End a scenario: kill its tasks and close its files. */
static void cleanup(void)
{
	for (int i = 0; i < ntasks; i++)
		if (!tasks[i].state) {
			tasks[i].exiting = 1;
			kill(tasks[i].pid, SIGKILL);
		}
	for (int i = 0; i < ntasks; i++)
		if (!tasks[i].state) {
			for (int k = 0; k < 2500 && !gone(tasks[i].pid); k++)
				msleep(2);
			waitpid(tasks[i].pid, NULL, WNOHANG);
			mark_dead(&tasks[i]);
		}
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
	ntasks = 0;
	for (int i = 0; i < MAXFD; i++)
		if (fds[i] > 0) {
			close(fds[i]);
			fds[i] = 0;
		}
}

static int controller_do(int step, char *argv[], int argc, char *rest)
{
	const char *op = argv[0];
	struct task *t;
	char path[1024];

	if (!strcmp(op, "spawn") && argc == 5)
		return spawn(argv[1], argv[2], argv[3], atoi(argv[4]));
	if (!strcmp(op, "fork") && argc == 3) {
		t = task(argv[1]);
		struct task *c = add_task(argv[2]);
		if (!c)
			return ENOSPC;
		int e = new_fifos(argv[2]);
		if (e)
			return e;
		long r = ask(t, "fork %s", argv[2]);
		if (r == -1)
			return 0;
		if (r > 0)
			return r;
		c->pid = -r;
		return ctl_open_fifos(c);
	}
	if (!strcmp(op, "move") && argc == 3) {
		t = task(argv[1]);
		char pid[32];
		snprintf(path, sizeof(path), CG "%s/cgroup.procs", argv[2]);
		snprintf(pid, sizeof(pid), "%d", t->pid);
		return write_str(path, pid);
	}
	if (!strcmp(op, "exit") && argc == 2) {
		t = task(argv[1]);
		t->exiting = 1;
		ask(t, "exit");
		reap();
		return 0;
	}
	if (!strcmp(op, "task") && argc >= 3) {
		/* task NAME OP ARGS...: run one command in a task */
		t = task(argv[1]);
		if (!t || t->state)
			return -2;
		char cmd[1024] = "";
		for (int i = 2; i < argc; i++) {
			strncat(cmd, argv[i], sizeof(cmd) - strlen(cmd) - 2);
			if (i + 1 < argc)
				strcat(cmd, " ");
		}
		long r = ask(t, "%s", cmd);
		return r == -1 ? -3 : r;
	}
	if (!strcmp(op, "set") && argc >= 3) {
		/* set CGROUP FILE TEXT... (the text is the rest of the line) */
		snprintf(path, sizeof(path), CG "%s/%s", argv[1], argv[2]);
		return write_str(path, rest ? rest : "");
	}
	if (!strcmp(op, "mkdir") && argc == 2) {
		snprintf(path, sizeof(path), CG "%s", argv[1]);
		return mkdir(path, 0755) ? errno : 0;
	}
	if (!strcmp(op, "rmdir") && argc == 2) {
		snprintf(path, sizeof(path), CG "%s", argv[1]);
		return rmdir(path) ? errno : 0;
	}
	if (!strcmp(op, "truncate") && argc == 3)
		return truncate(argv[1], strtoull(argv[2], NULL, 10)) ? errno : 0;
	if (!strcmp(op, "unlink") && argc == 2)
		return unlink(argv[1]) ? errno : 0;
	if (!strcmp(op, "sync") && argc == 1) {
		sync();
		return 0;
	}
	if (!strcmp(op, "drop_caches") && argc == 1) {
		sync();
		return write_str("/proc/sys/vm/drop_caches", "3");
	}
	if (!strcmp(op, "dump") && argc >= 2) {
		msleep(30);
		reap();
		for (int i = 1; i < argc; i++)
			dump_cgroup(step, argv[i]);
		return 0;
	}
	if (!strcmp(op, "state") && argc == 2) {
		msleep(30);
		reap();
		t = task(argv[1]);
		static const char *names[] = {"alive", "exited", "killed"};
		say("@@T %d %d %s %s", sc, step, argv[1], t ? names[t->state] : "unknown");
		return 0;
	}
	if (!strcmp(op, "open") && argc == 3) {
		int i = fd_slot(argv[1], 1);
		if (i < 0)
			return ENOSPC;
		fds[i] = open(argv[2], O_RDWR);
		return fds[i] < 0 ? errno : 0;
	}
	if (!strcmp(op, "fd_write") && argc >= 2) {
		int i = fd_slot(argv[1], 0);
		const char *text = rest ? rest : "";
		return write(fds[i], text, strlen(text)) < 0 ? errno : 0;
	}
	if (!strcmp(op, "fd_read") && argc == 2) {
		int i = fd_slot(argv[1], 0);
		char buf[64];
		ssize_t n = pread(fds[i], buf, sizeof(buf) - 1, 0);
		if (n < 0)
			return errno;
		buf[n] = 0;
		say("@@V %d %d %s %lld", sc, step, argv[1], strtoll(buf, NULL, 10));
		return 0;
	}
	if (!strcmp(op, "close") && argc == 2) {
		int i = fd_slot(argv[1], 0);
		close(fds[i]);
		fds[i] = 0;
		return 0;
	}
	return EINVAL;
}

/* Script lines: "SC STEP OP ARGS..." with SC the scenario number and STEP its step index
 * (-1 for set-up commands), "begin SC", "end SC"; "set" and "fd_write" take the rest of the
 * line after their fixed words as the text to write (a "|" separates it). */
int main(int argc, char *argv[])
{
	char line[4096];
	FILE *f = argc > 1 ? fopen(argv[1], "r") : stdin;
	if (argc > 2) {
		out = open(argv[2], O_WRONLY | O_NOCTTY);
		if (out < 0)
			out = 1;
	}
	if (!f) {
		say("@@E cannot open %s", argv[1]);
		return 2;
	}
	prctl(PR_SET_CHILD_SUBREAPER, 1);
	mkdir(FIFO_DIR, 0700);
	memset(iobuf, 'x', sizeof(iobuf));
	while (fgets(line, sizeof(line), f)) {
		line[strcspn(line, "\n")] = 0;
		char *rest = strchr(line, '|');
		if (rest) {
			*rest++ = 0;
		}
		char *av[16];
		int ac = 0;
		for (char *tok = strtok(line, " "); tok && ac < 16; tok = strtok(NULL, " "))
			av[ac++] = tok;
		if (!ac || av[0][0] == '#')
			continue;
		if (!strcmp(av[0], "begin") && ac == 2) {
			sc = atoi(av[1]);
			say("@@S %d begin", sc);
			continue;
		}
		if (!strcmp(av[0], "end") && ac == 2) {
			cleanup();
			say("@@S %d end", sc);
			continue;
		}
		if (ac < 3) {
			say("@@E bad line");
			continue;
		}
		int step = atoi(av[1]);
		int e = controller_do(step, av + 2, ac - 2, rest);
		reap();
		say("@@R %d %d %s", sc, step,
		    e == -2 ? "skipped" : e == -3 ? "killed" : e ? ename(e) : "ok");
	}
	say("@@D done");
	return 0;
}
