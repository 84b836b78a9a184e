// accuracy PORT OBS [DELAY_MS...]: scenario 5, against a running pidfd_exporter whose
// config has the sets acc_d<DELAY> (comm acc_d<DELAY>) and vis (comm vis).
//
// Reap latency: per delay, OBS times, one child at a time: the child renames itself
// acc_d<D> and blocks on a pipe; once /metrics shows pidfd_processes{set} = 1 (the exporter
// watches it) the parent closes the pipe, the child _exits, the parent notices the zombie
// with waitid(WEXITED|WNOWAIT) (t_zombie), sleeps until t_zombie + D, reaps with waitpid
// (t_r0 .. t_r1). Truth = (t_r0 + t_r1)/2 - t_zombie. Exporter = delta of
// pidfd_reap_latency_seconds_sum{set} (its _count must grow by exactly 1). Error = exporter - truth.
//
// Visibility: OBS times, a child "vis" is reaped at once by a thread of the parent that
// records t_zombie; the main thread polls /metrics back to back from the moment it let the
// child go until pidfd_process_exits_total{set="vis"} grows; visible = response time - t_zombie.
//
// Prints one line per delay, one for visibility, then raw samples with -v.
#define _GNU_SOURCE
#include <errno.h>
#include <math.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "metrics_client.h"

static int port;
static mc_buf buf;

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}
static void sleep_until(double t) {
  struct timespec ts = {(time_t)t, (long)((t - (time_t)t) * 1e9)};
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL) == EINTR) {
  }
}
static int cmp(const void* a, const void* b) {
  double x = *(const double*)a, y = *(const double*)b;
  return x < y ? -1 : x > y;
}
// Nearest-rank percentile of a sorted array.
static double pct(const double* v, int n, double q) {
  if (n == 0) return NAN;
  int k = (int)ceil(q * n) - 1;
  if (k < 0) k = 0;
  if (k >= n) k = n - 1;
  return v[k];
}
static double metric(const char* name, const char* label) {
  for (int tries = 0; tries < 100; ++tries) {
    if (mc_scrape(port, &buf) == 0) return mc_sum(&buf, name, label);
    usleep(10000);
  }
  fprintf(stderr, "accuracy: cannot scrape port %d\n", port);
  exit(1);
}
// Waits (polling every ms, at most 5 s) until metric(label) >= target. Returns 0 when reached.
static int wait_metric(const char* name, const char* label, double target) {
  double deadline = now() + 5;
  while (now() < deadline) {
    if (metric(name, label) >= target - 1e-9) return 0;
    usleep(1000);
  }
  return -1;
}
// Forks a child that renames itself `comm`, then blocks until the pipe closes and _exits.
static pid_t spawn(const char* comm, int* release_fd) {
  int p[2];
  if (pipe(p) != 0) exit(1);
  pid_t pid = fork();
  if (pid == 0) {
    close(p[1]);
    prctl(PR_SET_NAME, comm);
    char c;
    while (read(p[0], &c, 1) > 0) {
    }
    _exit(0);
  }
  close(p[0]);
  *release_fd = p[1];
  return pid;
}

struct reaper_arg {
  pid_t pid;
  double t_zombie;
};
static void* reaper(void* p) {
  struct reaper_arg* a = p;
  siginfo_t si;
  waitid(P_PID, (id_t)a->pid, &si, WEXITED | WNOWAIT);
  a->t_zombie = now();
  waitpid(a->pid, NULL, 0);
  return NULL;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: accuracy PORT OBS [DELAY_MS...] [-v]\n");
    return 2;
  }
  port = atoi(argv[1]);
  int obs = atoi(argv[2]);
  int verbose = 0;
  int delays[32], nd = 0;
  for (int i = 3; i < argc && nd < 32; ++i) {
    if (strcmp(argv[i], "-v") == 0)
      verbose = 1;
    else
      delays[nd++] = atoi(argv[i]);
  }
  if (nd == 0) {
    int def[] = {0, 1, 10, 100, 1000};
    memcpy(delays, def, sizeof def);
    nd = 5;
  }
  prctl(PR_SET_NAME, "acc_parent");
  printf("%-10s %4s %6s %11s %11s %11s %11s %11s %11s %9s\n", "delay_ms", "n", "missed", "truth_p50",
         "export_p50", "err_p50", "|err|_p50", "|err|_p99", "|err|_max", "gt_unc");
  for (int d = 0; d < nd; ++d) {
    int n = delays[d] >= 1000 ? (obs + 4) / 5 : obs;
    char comm[16], label[64];
    snprintf(comm, sizeof comm, "acc_d%d", delays[d]);
    snprintf(label, sizeof label, "set=\"%s\"", comm);
    double* err = calloc((size_t)n, sizeof(double));
    double* aerr = calloc((size_t)n, sizeof(double));
    double* truth = calloc((size_t)n, sizeof(double));
    double* expv = calloc((size_t)n, sizeof(double));
    int got = 0, missed = 0;
    double unc_max = 0;
    for (int i = 0; i < n; ++i) {
      double sum0 = metric("pidfd_reap_latency_seconds_sum", label);
      double cnt0 = mc_sum(&buf, "pidfd_reap_latency_seconds_count", label);
      int release;
      pid_t pid = spawn(comm, &release);
      if (wait_metric("pidfd_processes", label, 1) != 0) {
        fprintf(stderr, "accuracy: %s never watched\n", comm);
      }
      close(release);
      siginfo_t si;
      waitid(P_PID, (id_t)pid, &si, WEXITED | WNOWAIT);
      double tz = now();
      sleep_until(tz + delays[d] / 1000.0);
      double r0 = now();
      waitpid(pid, NULL, 0);
      double r1 = now();
      double t = (r0 + r1) / 2 - tz;
      if ((r1 - r0) / 2 > unc_max) unc_max = (r1 - r0) / 2;
      if (wait_metric("pidfd_reap_latency_seconds_count", label, cnt0 + 1) != 0) {
        ++missed;
        continue;
      }
      double cnt1 = mc_sum(&buf, "pidfd_reap_latency_seconds_count", label);
      if (cnt1 != cnt0 + 1) {
        ++missed;
        continue;
      }
      double e = mc_sum(&buf, "pidfd_reap_latency_seconds_sum", label) - sum0;
      truth[got] = t;
      expv[got] = e;
      err[got] = e - t;
      aerr[got] = fabs(e - t);
      if (verbose) fprintf(stderr, "%s truth=%.6f exporter=%.6f err=%+.6f\n", comm, t, e, e - t);
      ++got;
    }
    qsort(err, (size_t)got, sizeof(double), cmp);
    qsort(aerr, (size_t)got, sizeof(double), cmp);
    qsort(truth, (size_t)got, sizeof(double), cmp);
    qsort(expv, (size_t)got, sizeof(double), cmp);
    printf("%-10d %4d %6d %9.3fms %9.3fms %+9.3fms %9.3fms %9.3fms %9.3fms %7.3fms\n", delays[d], got, missed,
           pct(truth, got, .5) * 1e3, pct(expv, got, .5) * 1e3, pct(err, got, .5) * 1e3, pct(aerr, got, .5) * 1e3,
           pct(aerr, got, .99) * 1e3, got ? aerr[got - 1] * 1e3 : NAN, unc_max * 1e3);
    fflush(stdout);
  }

  // Exit -> visible in /metrics.
  double* vis = calloc((size_t)obs, sizeof(double));
  int nvis = 0, vmissed = 0;
  long scrapes = 0;
  const char* vlabel = "set=\"vis\"";
  for (int i = 0; i < obs; ++i) {
    double exits0 = metric("pidfd_process_exits_total", vlabel);
    int release;
    pid_t pid = spawn("vis", &release);
    wait_metric("pidfd_processes", vlabel, 1);
    struct reaper_arg a = {pid, 0};
    pthread_t th;
    pthread_create(&th, NULL, reaper, &a);
    close(release);
    double deadline = now() + 5, seen = 0;
    while (now() < deadline) {
      if (mc_scrape(port, &buf) != 0) continue;
      ++scrapes;
      if (mc_sum(&buf, "pidfd_process_exits_total", vlabel) >= exits0 + 1) {
        seen = now();
        break;
      }
    }
    pthread_join(th, NULL);
    if (seen == 0) {
      ++vmissed;
      continue;
    }
    vis[nvis++] = seen - a.t_zombie;
    if (verbose) fprintf(stderr, "vis %.6f\n", seen - a.t_zombie);
  }
  qsort(vis, (size_t)nvis, sizeof(double), cmp);
  printf("visible    n=%d missed=%d p50=%.3fms p99=%.3fms max=%.3fms (scrapes polled: %ld)\n", nvis, vmissed,
         pct(vis, nvis, .5) * 1e3, pct(vis, nvis, .99) * 1e3, nvis ? vis[nvis - 1] * 1e3 : NAN, scrapes);
  return 0;
}
