// forker WORKERS SECONDS [fork|vfork|exec|rename] [COMM]: the process-lifecycle load of scenario 2.
// Each worker renames itself COMM (default "fstorm"; children inherit it) and loops
// {vfork or fork; child _exit(0) at once; parent waitpid} for SECONDS. Mode exec: workers are
// named "fworker" and each child execs $FORKER_EXEC (a symlink to /bin/true whose name is the
// comm the child takes), so short-lived exec'd programs are the load. Mode rename: workers are
// named "fworker" and each forked child renames itself COMM (prctl) and exits, so the parent is
// in no set and every child joins one by its comm event (issue 14's "renamed children"). Prints
// "forks=<total> seconds=<elapsed> rate=<per second>".
#define _GNU_SOURCE
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: forker WORKERS SECONDS [fork|vfork|exec|rename] [COMM]\n");
    return 2;
  }
  int workers = atoi(argv[1]);
  double seconds = atof(argv[2]);
  const char* mode = argc > 3 ? argv[3] : "vfork";
  int use_vfork = strcmp(mode, "vfork") == 0;
  int use_exec = strcmp(mode, "exec") == 0;
  int use_rename = strcmp(mode, "rename") == 0;
  const char* exec_path = getenv("FORKER_EXEC");
  if (use_exec && !exec_path) {
    fprintf(stderr, "forker: mode exec needs FORKER_EXEC (the program to exec)\n");
    return 2;
  }
  const char* child_comm = argc > 4 ? argv[4] : "fstorm";
  const char* comm = use_exec || use_rename ? "fworker" : child_comm;
  long* counts = mmap(NULL, sizeof(long) * (size_t)workers, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
  double start = now();
  double deadline = start + seconds;
  for (int w = 0; w < workers; ++w) {
    if (fork() == 0) {
      prctl(PR_SET_NAME, comm);
      long n = 0;
      for (;;) {
        if ((n & 15) == 0 && now() >= deadline) break;
        pid_t pid = use_vfork ? vfork() : fork();
        if (pid == 0) {
          if (use_exec) {
            char* child_argv[] = {(char*)exec_path, NULL};
            execv(exec_path, child_argv);
          }
          if (use_rename) prctl(PR_SET_NAME, child_comm);
          _exit(0);
        }
        if (pid < 0) continue;
        waitpid(pid, NULL, 0);
        ++n;
      }
      counts[w] = n;
      _exit(0);
    }
  }
  while (wait(NULL) > 0) {
  }
  double elapsed = now() - start;
  long total = 0;
  for (int w = 0; w < workers; ++w) total += counts[w];
  printf("forks=%ld seconds=%.3f rate=%.0f\n", total, elapsed, total / elapsed);
  return 0;
}
