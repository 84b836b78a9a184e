// resources N CPU_MS TOUCH_MIB CONCURRENCY [COMM]: the ground truth of the exit-resources
// accuracy benchmark (bench/exit_resources.sh). Forks N children, at most CONCURRENCY alive at
// once; each names itself COMM (default "resburn"), touches TOUCH_MIB of fresh anonymous memory,
// burns CPU until its own CLOCK_PROCESS_CPUTIME_ID reaches CPU_MS, reads getrusage(RUSAGE_SELF)
// just before it exits and reports its ru_maxrss and CPU through a pipe. The parent reaps them
// all, then prints its getrusage(RUSAGE_CHILDREN) CPU (what the kernel says all of them used,
// exits included) and the children's own ru_maxrss figures:
//   children=N children_cpu_seconds=S sum_maxrss_bytes=B min_maxrss_bytes=A max_maxrss_bytes=Z
//   self_cpu_seconds=C (the children's own last getrusage, summed)
// and on a second line "maxrss_bytes=" with every child's ru_maxrss, comma-separated.
// With BURN=blind in the environment the children burn a number of loop iterations the parent
// calibrated for CPU_MS, and read neither their clock nor getrusage() (their reports are 0): like
// most programs, they never ask the kernel to bring their run time up to date before exiting.
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

struct Report {
  long maxrss_kib;
  long cpu_us;
};

static double Seconds(struct timeval time) { return time.tv_sec + time.tv_usec / 1e6; }

static unsigned long blind_spins;  // BURN=blind: iterations for CPU_MS, 0 otherwise

static double CpuSeconds(void) {
  struct timespec used;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used);
  return used.tv_sec + used.tv_nsec / 1e9;
}

static void Spin(unsigned long spins) {
  volatile unsigned long sink = 0;
  for (unsigned long spin = 0; spin < spins; ++spin) sink += spin;
}

static void Child(const char* comm, long cpu_ms, long touch_mib, int report_fd) {
  prctl(PR_SET_NAME, comm, 0, 0, 0);
  size_t bytes = (size_t)touch_mib << 20;
  char* memory = mmap(NULL, bytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
  if (memory == MAP_FAILED) _exit(2);
  for (size_t offset = 0; offset < bytes; offset += 4096) memory[offset] = (char)offset;
  if (blind_spins > 0) {
    Spin(blind_spins);
    struct Report nothing = {0, 0};
    if (write(report_fd, &nothing, sizeof nothing) != sizeof nothing) _exit(3);
    _exit(0);
  }
  volatile unsigned long sink = 0;
  struct timespec used;
  do {
    for (int spin = 0; spin < 20000; ++spin) sink += (unsigned long)spin;
    clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &used);
  } while (used.tv_sec * 1000L + used.tv_nsec / 1000000L < cpu_ms);
  struct rusage self;
  getrusage(RUSAGE_SELF, &self);
  struct Report report = {self.ru_maxrss,
                          self.ru_utime.tv_sec * 1000000L + self.ru_utime.tv_usec + self.ru_stime.tv_sec * 1000000L +
                              self.ru_stime.tv_usec};
  if (write(report_fd, &report, sizeof report) != sizeof report) _exit(3);
  _exit(0);
}

int main(int argc, char** argv) {
  if (argc < 5) {
    fprintf(stderr, "usage: resources N CPU_MS TOUCH_MIB CONCURRENCY [COMM]\n");
    return 2;
  }
  const long count = atol(argv[1]), cpu_ms = atol(argv[2]), touch_mib = atol(argv[3]);
  const long concurrency = atol(argv[4]);
  const char* comm = argc > 5 ? argv[5] : "resburn";
  const char* burn = getenv("BURN");
  if (burn && strcmp(burn, "blind") == 0) {
    const unsigned long calibration = 50000000;
    const double before = CpuSeconds();
    Spin(calibration);
    blind_spins = (unsigned long)(calibration * (cpu_ms / 1000.0) / (CpuSeconds() - before));
  }
  int reports[2];
  if (pipe(reports) != 0) return 1;
  long started = 0, alive = 0, failed = 0;
  struct Report* all = calloc((size_t)count, sizeof *all);
  long received = 0;
  while (started < count || alive > 0) {
    if (started < count && alive < concurrency) {
      pid_t pid = fork();
      if (pid < 0) return 1;
      if (pid == 0) Child(comm, cpu_ms, touch_mib, reports[1]);
      ++started;
      ++alive;
      continue;
    }
    int status;
    if (wait(&status) > 0) {
      --alive;
      if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) ++failed;
      // Drain what was reported so far: the pipe holds 64 KiB, 1,000 reports are 16 KiB.
      while (received < count && received < started - alive) {
        if (read(reports[0], &all[received], sizeof all[received]) != sizeof all[received]) return 1;
        ++received;
      }
    }
  }
  struct rusage children;
  getrusage(RUSAGE_CHILDREN, &children);
  double sum = 0, self_cpu = 0;
  long low = -1, high = 0;
  for (long i = 0; i < received; ++i) {
    sum += all[i].maxrss_kib * 1024.0;
    self_cpu += all[i].cpu_us / 1e6;
    if (low < 0 || all[i].maxrss_kib < low) low = all[i].maxrss_kib;
    if (all[i].maxrss_kib > high) high = all[i].maxrss_kib;
  }
  printf("children=%ld failed=%ld children_cpu_seconds=%.6f self_cpu_seconds=%.6f sum_maxrss_bytes=%.0f "
         "min_maxrss_bytes=%ld max_maxrss_bytes=%ld\n",
         received, failed, Seconds(children.ru_utime) + Seconds(children.ru_stime), self_cpu, sum, low * 1024,
         high * 1024);
  printf("maxrss_bytes=");
  for (long i = 0; i < received; ++i) printf("%s%ld", i ? "," : "", all[i].maxrss_kib * 1024);
  printf("\n");
  return failed ? 1 : 0;
}
