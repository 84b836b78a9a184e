// Workloads for tests/e2e/fault_injection_test.sh and bench/soak/soak.sh. The command name
// (comm) of every process is the name this binary was copied to, so a config can match
// exactly this workload: `cp fault_helper fi_storm && ./fi_storm storm 20000 2`.
//
//   sleep                  pause until killed
//   zombies N              fork N children that _exit(7) at once; do not reap them; print
//                          "ready" and pause; on SIGTERM reap them all and exit 0 (PID 1
//                          of a container may not reap orphans)
//   storm TOTAL WORKERS    WORKERS forked workers fork TOTAL children in all as fast as they
//                          can; each child _exit(i % 4) at once; workers reap as they go.
//                          Prints the number of processes created (children + workers).
//   churn SECONDS WORKERS [RATE [NAMES]]
//                          for SECONDS, WORKERS workers keep forking children that live
//                          0-3 ms; reaped in batches of 8 (so some linger as zombies for a
//                          moment). RATE caps the forks per second of each worker (0 = no
//                          cap); with NAMES > 0 each child renames itself (prctl) to one of
//                          NAMES names "ch_<n>". Prints the number of processes created.
// Build: cc -O2 -o fault_helper fault_helper.c
#define _GNU_SOURCE
#include <signal.h>
#include <sys/prctl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t terminate_requested = 0;
static void on_sigterm(int signal_number) {
  (void)signal_number;
  terminate_requested = 1;
}

static double now_seconds(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

// Runs in a worker: forks children until `count` were made or `deadline` passed.
static double fork_rate = 0;  // per worker per second; 0 = unlimited
static int rename_pool = 0;

static long forker(long count, double deadline, int linger) {
  long made = 0;
  const double started = now_seconds();
  int pending = 0;
  unsigned seed = (unsigned)getpid();
  while ((count < 0 || made < count) && (deadline <= 0 || now_seconds() < deadline)) {
    if (fork_rate > 0) {
      const double due = started + (double)made / fork_rate;
      const double wait = due - now_seconds();
      if (wait > 0) usleep((useconds_t)(wait * 1e6));
    }
    (void)rand_r(&seed);  // every child starts from a different seed
    pid_t child = fork();
    if (child < 0) {
      // Out of processes for a moment: reap and go on.
      while (pending > 0 && waitpid(-1, NULL, 0) > 0) --pending;
      continue;
    }
    if (child == 0) {
      if (rename_pool > 0) {
        char name[16];
        snprintf(name, sizeof name, "ch_%d", (int)(rand_r(&seed) % (unsigned)rename_pool));
        prctl(PR_SET_NAME, name, 0, 0, 0);
      }
      if (linger) usleep((useconds_t)(rand_r(&seed) % 3000));
      _exit((int)(made % 4));
    }
    ++made;
    ++pending;
    if (pending >= (linger ? 8 : 1)) {
      while (pending > 0 && waitpid(-1, NULL, 0) > 0) --pending;
    }
  }
  while (pending > 0 && waitpid(-1, NULL, 0) > 0) --pending;
  return made;
}

// Forks `workers` workers that each report their count through a pipe.
static long run_workers(int workers, long total, double seconds, int linger) {
  int fds[2];
  if (pipe(fds) != 0) return -1;
  const double deadline = seconds > 0 ? now_seconds() + seconds : 0;
  for (int w = 0; w < workers; ++w) {
    pid_t worker = fork();
    if (worker == 0) {
      close(fds[0]);
      long share = total < 0 ? -1 : total / workers + (w < total % workers ? 1 : 0);
      long made = forker(share, deadline, linger);
      if (write(fds[1], &made, sizeof made) != sizeof made) _exit(1);
      _exit(0);
    }
  }
  close(fds[1]);
  long sum = workers, made;
  while (read(fds[0], &made, sizeof made) == sizeof made) sum += made;
  while (wait(NULL) > 0) {
  }
  return sum;
}

int main(int argc, char** argv) {
  if (argc < 2) {
    fprintf(stderr, "usage: %s sleep | zombies N | storm TOTAL WORKERS | churn SECONDS WORKERS\n", argv[0]);
    return 2;
  }
  setvbuf(stdout, NULL, _IOLBF, 0);
  if (strcmp(argv[1], "sleep") == 0) {
    for (;;) pause();
  }
  if (strcmp(argv[1], "zombies") == 0 && argc == 3) {
    const int n = atoi(argv[2]);
    struct sigaction action;
    memset(&action, 0, sizeof action);
    action.sa_handler = on_sigterm;
    sigaction(SIGTERM, &action, NULL);
    for (int i = 0; i < n; ++i) {
      if (fork() == 0) _exit(7);
    }
    printf("ready\n");
    while (!terminate_requested) pause();
    while (wait(NULL) > 0) {
    }
    return 0;
  }
  if (strcmp(argv[1], "storm") == 0 && argc == 4) {
    printf("%ld\n", run_workers(atoi(argv[3]), atol(argv[2]), 0, 0));
    return 0;
  }
  if (strcmp(argv[1], "churn") == 0 && argc >= 4 && argc <= 6) {
    if (argc >= 5) fork_rate = atof(argv[4]);
    if (argc >= 6) rename_pool = atoi(argv[5]);
    printf("%ld\n", run_workers(atoi(argv[3]), -1, atof(argv[2]), 1));
    return 0;
  }
  fprintf(stderr, "%s: bad arguments\n", argv[0]);
  return 2;
}
