// The workload of the old-kernel test (tests/vm/README.md): parents that know, on their own
// CLOCK_MONOTONIC, when each child exited and when they reaped it, and say so on stdout for
// tests/vm/check_results.py to compare with the exporter's scrape. Built static, so the same
// binary runs in the Debian 12 VM's initramfs and on the host.
//
//   workload child LIFE_MS CODE [stamp]  (as hold0, hold20, ...: the name is the set) sleep, exit
//                                     CODE; with stamp, first write the time to fd 4
//   workload child wait CODE          block until fd 3 reaches EOF, then exit CODE
//   workload child forever            pause() until killed
//   workload holds BINDIR             hold0: 20 zombies reaped at once, hold20: 20 held 20 ms,
//                                     hold300: 5 held 300 ms (three parents side by side)
//   workload reuse BINDIR ROUNDS      reuse_a exits 0 and is reaped at once; reuse_b is forked
//                                     on the same PID (clone3 set_tid), lives 0-100 ms and
//                                     exits 7; ROUNDS times
//   workload burst BINDIR N           N children of set "burst" wait on one pipe; after
//                                     SIGUSR1 they all exit (code i % 4) and are reaped at once
//   workload linger BINDIR N          N children of set "linger" are SIGKILLed and kept as
//                                     zombies until SIGUSR1, then reaped
// Children exec BINDIR/<set>, a link to this binary, so their comm is the set's name.
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <linux/sched.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int64_t Now(void) {
  struct timespec now;
  clock_gettime(CLOCK_MONOTONIC, &now);
  return (int64_t)now.tv_sec * 1000000000 + now.tv_nsec;
}

static void SleepUntil(int64_t deadline_ns) {
  struct timespec until = {deadline_ns / 1000000000, deadline_ns % 1000000000};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &until, NULL) == EINTR) {
  }
}

static void Die(const char* what) {
  fprintf(stdout, "WORKLOAD_ERROR %s: %s\n", what, strerror(errno));
  fflush(stdout);
  exit(2);
}

// Reads `fd` until its writers are gone (EOF) or it fails for good.
static void WaitForEof(int fd) {
  char byte;
  for (;;) {
    const ssize_t got = read(fd, &byte, 1);
    if (got > 0 || (got < 0 && errno == EINTR)) continue;
    return;
  }
}

static int RunChild(int argc, char** argv) {
  if (argc < 4) return 2;
  const int code = atoi(argv[3]);
  if (strcmp(argv[2], "wait") == 0) {
    WaitForEof(3);
  } else if (strcmp(argv[2], "forever") == 0) {
    for (;;) pause();
  } else if (strcmp(argv[2], "hog") == 0) {
    // The OOM phase's victim: told to go by EOF on fd 3, it touches 256 MiB, 8 times its
    // cgroup's memory.max; the OOM killer ends it before the exit below. (1 GiB would not be
    // mapped at all: the VM has 1 GiB and no swap, and the kernel refuses such an overcommit.)
    WaitForEof(3);
    const size_t bytes = (size_t)256 << 20;
    char* memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) _exit(125);
    for (size_t offset = 0; offset < bytes; offset += 4096) ((volatile char*)memory)[offset] = 1;
  } else {
    SleepUntil(Now() + (int64_t)atoi(argv[2]) * 1000000);
  }
  // Hold children ("stamp") have a pipe on fd 4: the last moment before the exit, on our
  // clock (the earliest the kernel can have made this a zombie).
  if (argc >= 5 && strcmp(argv[4], "stamp") == 0) {
    const int64_t exiting = Now();
    (void)!write(4, &exiting, sizeof exiting);
  }
  _exit(code);
}

// Forks (or, with set_tid > 0, clone3s onto that PID) a child that execs BINDIR/name.
// Returns the PID; -1 when clone3 could not take set_tid.
static pid_t Spawn(const char* bindir, const char* name, const char* arg, const char* code, pid_t set_tid,
                   int stamp_fd) {
  pid_t pid;
  if (set_tid > 0) {
    pid_t wanted[1] = {set_tid};
    struct clone_args args;
    memset(&args, 0, sizeof args);
    args.exit_signal = SIGCHLD;
    args.set_tid = (uintptr_t)wanted;
    args.set_tid_size = 1;
    pid = (pid_t)syscall(SYS_clone3, &args, sizeof args);
    if (pid < 0) return -1;
  } else {
    pid = fork();
    if (pid < 0) Die("fork");
  }
  if (pid == 0) {
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    if (stamp_fd >= 0 && dup2(stamp_fd, 4) < 0) _exit(126);
    char path[512];
    snprintf(path, sizeof path, "%s/%s", bindir, name);
    execl(path, name, "child", arg, code, stamp_fd >= 0 ? "stamp" : (char*)NULL, (char*)NULL);
    _exit(127);
  }
  return pid;
}

// Waits until pid is a zombie without reaping it; returns when that was seen.
static int64_t WaitExited(pid_t pid) {
  siginfo_t info;
  while (waitid(P_PID, (id_t)pid, &info, WEXITED | WNOWAIT) != 0) {
    if (errno != EINTR) Die("waitid");
  }
  return Now();
}

// Reaps pid; returns the reap time (midpoint of the waitpid call) and the status.
static int64_t Reap(pid_t pid, int* status) {
  const int64_t before = Now();
  while (waitpid(pid, status, 0) != pid) {
    if (errno != EINTR) Die("waitpid");
  }
  return before + (Now() - before) / 2;
}

// One hold set: n children that live 200 ms (long enough to be watched) and exit 3; each
// zombie is held hold_ms after the parent saw it exit. The true latency (kernel's zombie
// transition to the reap) lies between two measurements on our clock: from the parent's
// wake-up (waitid returned: after the exit) to the start of waitpid (before the reap), and
// from the child's last stamp (before the exit) to the end of waitpid (after the reap).
static void HoldSet(const char* bindir, const char* set, int n, int hold_ms) {
  int64_t sum = 0, low = 0, high = 0, min = INT64_MAX, max = 0, cpu_us = 0;
  int wrong_status = 0;
  int stamps[2];
  if (pipe(stamps) != 0) Die("pipe");
  for (int i = 0; i < n; ++i) {
    const pid_t pid = Spawn(bindir, set, "200", "3", 0, stamps[1]);
    const int64_t exited = WaitExited(pid);
    int64_t child_exiting = exited;
    if (read(stamps[0], &child_exiting, sizeof child_exiting) != sizeof child_exiting) Die("read stamp");
    if (hold_ms > 0) SleepUntil(exited + (int64_t)hold_ms * 1000000);
    int status = 0;
    struct rusage usage;
    const int64_t before = Now();
    // wait4: the CPU the kernel adds to this parent's RUSAGE_CHILDREN for the child.
    while (wait4(pid, &status, 0, &usage) != pid) {
      if (errno != EINTR) Die("wait4");
    }
    const int64_t after = Now();
    cpu_us += usage.ru_utime.tv_sec * 1000000LL + usage.ru_utime.tv_usec + usage.ru_stime.tv_sec * 1000000LL +
              usage.ru_stime.tv_usec;
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 3) ++wrong_status;
    const int64_t held = before + (after - before) / 2 - exited;
    sum += held;
    low += before - exited;
    high += after - child_exiting;
    if (held < min) min = held;
    if (held > max) max = held;
  }
  close(stamps[0]);
  close(stamps[1]);
  printf(
      "TRUTH set=%s kind=hold hold_ms=%d count=%d sum_ns=%lld low_sum_ns=%lld high_sum_ns=%lld min_ns=%lld "
      "max_ns=%lld wrong_status=%d cpu_us=%lld\n",
      set, hold_ms, n, (long long)sum, (long long)low, (long long)high, (long long)min, (long long)max,
      wrong_status, (long long)cpu_us);
  fflush(stdout);
}

static int Holds(const char* bindir) {
  const struct {
    const char* set;
    int n, hold_ms;
  } sets[] = {{"hold0", 20, 0}, {"hold20", 20, 20}, {"hold300", 5, 300}};
  pid_t parents[3];
  for (int i = 0; i < 3; ++i) {
    parents[i] = fork();
    if (parents[i] < 0) Die("fork");
    if (parents[i] == 0) {
      HoldSet(bindir, sets[i].set, sets[i].n, sets[i].hold_ms);
      _exit(0);
    }
  }
  int failed = 0;
  for (int i = 0; i < 3; ++i) {
    int status = 0;
    if (waitpid(parents[i], &status, 0) != parents[i] || status != 0) failed = 1;
  }
  return failed;
}

static int Reuse(const char* bindir, int rounds) {
  // reuse_b's lifetimes cycle, so its exit lands before, while and after the exporter
  // handles reuse_a's exit and reap (and reads /proc/PID, which is reuse_b's by then).
  static const char* const kSecondLifeMs[] = {"0", "1", "5", "100"};
  int reused = 0, wrong_status = 0;
  for (int round = 0; round < rounds; ++round) {
    const pid_t first = Spawn(bindir, "reuse_a", "50", "0", 0, -1);
    int status = 0;
    WaitExited(first);
    Reap(first, &status);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++wrong_status;
    // The freed PID, taken again at once: the exporter has not seen the reap on < 6.9.
    const char* life = kSecondLifeMs[round % 4];
    pid_t second = Spawn(bindir, "reuse_b", life, "7", first, -1);
    if (second == first) {
      ++reused;
    } else {
      second = Spawn(bindir, "reuse_b", life, "7", 0, -1);  // keep the counts exact regardless
    }
    WaitExited(second);
    Reap(second, &status);
    if (!WIFEXITED(status) || WEXITSTATUS(status) != 7) ++wrong_status;
    printf("REUSE round=%d pid=%d second=%d second_life_ms=%s\n", round, (int)first, (int)second, life);
  }
  printf("TRUTH set=reuse kind=reuse rounds=%d reused=%d wrong_status=%d\n", rounds, reused, wrong_status);
  fflush(stdout);
  return 0;
}

static void WaitForSigusr1(void) {
  sigset_t wanted;
  sigemptyset(&wanted);
  sigaddset(&wanted, SIGUSR1);
  int signal_number = 0;
  sigwait(&wanted, &signal_number);
}

static int Burst(const char* bindir, int n) {
  int release[2];
  if (pipe(release) != 0) Die("pipe");
  pid_t* pids = calloc((size_t)n, sizeof *pids);
  for (int i = 0; i < n; ++i) {
    const pid_t pid = fork();
    if (pid < 0) Die("fork");
    if (pid == 0) {
      close(release[1]);
      if (dup2(release[0], 3) < 0) _exit(126);
      char code[8];
      snprintf(code, sizeof code, "%d", i % 4);
      sigset_t none;
      sigemptyset(&none);
      sigprocmask(SIG_SETMASK, &none, NULL);
      char path[512];
      snprintf(path, sizeof path, "%s/burst", bindir);
      execl(path, "burst", "child", "wait", code, (char*)NULL);
      _exit(127);
    }
    pids[i] = pid;
  }
  close(release[0]);
  printf("BURST ready\n");
  fflush(stdout);
  WaitForSigusr1();
  const int64_t released = Now();
  close(release[1]);
  int codes[4] = {0, 0, 0, 0}, wrong = 0;
  for (int i = 0; i < n; ++i) {
    int status = 0;
    const pid_t pid = wait(&status);
    if (pid < 0) Die("wait");
    if (WIFEXITED(status) && WEXITSTATUS(status) < 4) {
      ++codes[WEXITSTATUS(status)];
    } else {
      ++wrong;
    }
  }
  printf(
      "TRUTH set=burst kind=burst count=%d code0=%d code1=%d code2=%d code3=%d wrong_status=%d "
      "span_ns=%lld\n",
      n, codes[0], codes[1], codes[2], codes[3], wrong, (long long)(Now() - released));
  fflush(stdout);
  free(pids);
  return 0;
}

static int Linger(const char* bindir, int n) {
  pid_t* pids = calloc((size_t)n, sizeof *pids);
  for (int i = 0; i < n; ++i) pids[i] = Spawn(bindir, "linger", "forever", "0", 0, -1);
  // Let the exporter see them running: ready means "watch them now" to the script, which
  // polls the exporter before it tells us (SIGUSR1) to kill them.
  printf("LINGER started\n");
  fflush(stdout);
  WaitForSigusr1();
  for (int i = 0; i < n; ++i) kill(pids[i], SIGKILL);
  for (int i = 0; i < n; ++i) WaitExited(pids[i]);
  printf("LINGER zombies\n");
  fflush(stdout);
  WaitForSigusr1();
  int killed = 0;
  for (int i = 0; i < n; ++i) {
    int status = 0;
    Reap(pids[i], &status);
    if (WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) ++killed;
  }
  printf("TRUTH set=linger kind=linger count=%d killed=%d\n", n, killed);
  fflush(stdout);
  free(pids);
  return 0;
}

// A child of set "oom" in memory cgroup `cgroup` (it joins before it execs BINDIR/name), with
// `fd3` (or nothing) as its fd 3.
static pid_t SpawnInCgroup(const char* bindir, const char* name, const char* arg, const char* cgroup, int fd3) {
  const pid_t pid = fork();
  if (pid < 0) Die("fork");
  if (pid == 0) {
    char path[512];
    snprintf(path, sizeof path, "%s/cgroup.procs", cgroup);
    const int procs = open(path, O_WRONLY | O_CLOEXEC);
    if (procs < 0 || write(procs, "0", 1) != 1) _exit(124);
    // fd 3 across the exec: dup2() onto itself would keep close-on-exec.
    if (fd3 == 3 && fcntl(3, F_SETFD, 0) != 0) _exit(126);
    if (fd3 >= 0 && fd3 != 3 && dup2(fd3, 3) < 0) _exit(126);
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, NULL);
    snprintf(path, sizeof path, "%s/%s", bindir, name);
    execl(path, name, "child", arg, "0", (char*)NULL);
    _exit(127);
  }
  return pid;
}

// The OOM phase (tests/vm/init mounts cgroup v2 with the memory controller; `cgroup` has a
// small memory.max): oom_hog and oom_sib join the cgroup; on the first SIGUSR1 oom_hog
// allocates until the OOM killer ends it, and is reaped; on the second, oom_sib gets a kill -9
// in the same set and cgroup, and is reaped.
static int Oom(const char* bindir, const char* cgroup) {
  int go[2];
  // Close-on-exec: the sibling must not keep the write end, or the hog never sees its EOF.
  if (pipe2(go, O_CLOEXEC) != 0) Die("pipe");
  const pid_t hog = SpawnInCgroup(bindir, "oom_hog", "hog", cgroup, go[0]);
  const pid_t sibling = SpawnInCgroup(bindir, "oom_sib", "forever", cgroup, -1);
  close(go[0]);
  printf("OOM started hog=%d sibling=%d\n", (int)hog, (int)sibling);
  fflush(stdout);
  WaitForSigusr1();
  close(go[1]);
  int hog_status = 0, sibling_status = 0;
  WaitExited(hog);
  Reap(hog, &hog_status);
  printf("OOM victim reaped\n");
  fflush(stdout);
  WaitForSigusr1();
  kill(sibling, SIGKILL);
  WaitExited(sibling);
  Reap(sibling, &sibling_status);
  printf("TRUTH set=oom kind=oom hog_sigkill=%d sibling_sigkill=%d\n",
         WIFSIGNALED(hog_status) && WTERMSIG(hog_status) == SIGKILL,
         WIFSIGNALED(sibling_status) && WTERMSIG(sibling_status) == SIGKILL);
  fflush(stdout);
  return 0;
}

int main(int argc, char** argv) {
  if (argc >= 2 && strcmp(argv[1], "child") == 0) return RunChild(argc, argv);
  if (argc < 3) {
    fprintf(stderr, "usage: workload holds|reuse|burst|linger BINDIR [N] | oom BINDIR CGROUP\n");
    return 2;
  }
  // SIGUSR1 is taken by sigwait only; blocked before any child exists.
  sigset_t usr1;
  sigemptyset(&usr1);
  sigaddset(&usr1, SIGUSR1);
  sigprocmask(SIG_BLOCK, &usr1, NULL);
  const int n = argc >= 4 ? atoi(argv[3]) : 0;
  if (strcmp(argv[1], "holds") == 0) return Holds(argv[2]);
  if (strcmp(argv[1], "reuse") == 0) return Reuse(argv[2], n);
  if (strcmp(argv[1], "burst") == 0) return Burst(argv[2], n);
  if (strcmp(argv[1], "linger") == 0) return Linger(argv[2], n);
  if (strcmp(argv[1], "oom") == 0 && argc >= 4) return Oom(argv[2], argv[3]);
  fprintf(stderr, "unknown command %s\n", argv[1]);
  return 2;
}
