// sleepers N SETS [PREFIX]: forks N children that name themselves PREFIX%04d (i % SETS)
// with prctl(PR_SET_NAME) and pause(). Prints "ready <N>" on stdout once every child has
// renamed itself, then waits; on SIGTERM/SIGINT (or stdin EOF when -s is not given) it
// SIGKILLs and reaps every child and exits 0. Used by the scrape, idle and memory scenarios.
#define _GNU_SOURCE
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

static volatile sig_atomic_t stop;
static void on_signal(int s) { (void)s; stop = 1; }

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: sleepers N SETS [PREFIX]\n");
    return 2;
  }
  long n = atol(argv[1]), sets = atol(argv[2]);
  const char* prefix = argc > 3 ? argv[3] : "b";
  if (n < 0 || sets < 1) return 2;
  pid_t* kids = calloc((size_t)n + 1, sizeof(pid_t));
  int ready[2];
  if (pipe(ready) != 0) return 1;
  struct sigaction sa = {0};
  sa.sa_handler = on_signal;
  sigaction(SIGTERM, &sa, NULL);
  sigaction(SIGINT, &sa, NULL);
  sigset_t block, old;
  sigemptyset(&block);
  sigaddset(&block, SIGTERM);
  sigaddset(&block, SIGINT);
  sigprocmask(SIG_BLOCK, &block, &old);
  for (long i = 0; i < n; ++i) {
    pid_t pid = fork();
    if (pid < 0) {
      fprintf(stderr, "sleepers: fork %ld: %s\n", i, strerror(errno));
      n = i;
      break;
    }
    if (pid == 0) {
      char name[16];
      snprintf(name, sizeof name, "%s%04d", prefix, (int)(i % sets) % 10000);
      prctl(PR_SET_NAME, name);
      prctl(PR_SET_PDEATHSIG, SIGKILL);
      close(ready[0]);
      char c = 1;
      if (write(ready[1], &c, 1) != 1) _exit(1);
      close(ready[1]);
      signal(SIGTERM, SIG_DFL);
      signal(SIGINT, SIG_DFL);
      sigprocmask(SIG_SETMASK, &old, NULL);
      for (;;) pause();
    }
    kids[i] = pid;
  }
  close(ready[1]);
  long got = 0;
  char buf[4096];
  while (got < n) {
    ssize_t r = read(ready[0], buf, sizeof buf);
    if (r <= 0) break;
    got += r;
  }
  printf("ready %ld\n", got);
  fflush(stdout);
  sigset_t wait_set = block;
  int sig;
  sigwait(&wait_set, &sig);
  for (long i = 0; i < n; ++i) kill(kids[i], SIGKILL);
  while (waitpid(-1, NULL, 0) > 0 || errno == EINTR) {
  }
  return 0;
}
