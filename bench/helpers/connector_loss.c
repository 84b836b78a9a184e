// connector_loss SECONDS PAUSE_MS: is ENOBUFS alone a reliable sign of lost proc connector
// events? An unfiltered connector socket with the smallest receive buffer is read empty every
// PAUSE_MS (so that a storm running beside it overflows it again and again) for SECONDS.
// An overflow episode runs from the ENOBUFS that recv reports (ahead of the messages queued
// before the loss) until the queue is read empty; the exporter's rescan, scheduled at the
// ENOBUFS and run after that drain, covers every loss inside it. So a per-CPU sequence gap is
// "explained" when an episode was under way between that CPU's previous message and this one,
// "unexplained" otherwise: a loss that only the sequence numbers reveal, which the exporter's
// kernel-side filter (exporter/proc_connector.h) hides.
// Prints "messages=N enobufs=N gaps_explained=N gaps_unexplained=N". Needs the initial network
// and PID namespaces (and CAP_NET_ADMIN before Linux 6.6).
#define _GNU_SOURCE
#include <errno.h>
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/netlink.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#define MAX_CPUS 1024

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int subscribe(int fd) {
  char buffer[NLMSG_SPACE(sizeof(struct cn_msg) + sizeof(enum proc_cn_mcast_op))] = {0};
  struct nlmsghdr* header = (struct nlmsghdr*)buffer;
  header->nlmsg_len = sizeof buffer;
  header->nlmsg_type = NLMSG_DONE;
  header->nlmsg_pid = (uint32_t)getpid();
  struct cn_msg* message = NLMSG_DATA(header);
  message->id.idx = CN_IDX_PROC;
  message->id.val = CN_VAL_PROC;
  message->len = sizeof(enum proc_cn_mcast_op);
  *(enum proc_cn_mcast_op*)message->data = PROC_CN_MCAST_LISTEN;
  return send(fd, buffer, sizeof buffer, 0) == (ssize_t)sizeof buffer ? 0 : -1;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: connector_loss SECONDS PAUSE_MS\n");
    return 2;
  }
  const double seconds = atof(argv[1]);
  const int pause_ms = atoi(argv[2]);
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC, NETLINK_CONNECTOR);
  int smallest = 1;  // the kernel raises it to its minimum (a few events)
  setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &smallest, sizeof smallest);
  struct sockaddr_nl address = {.nl_family = AF_NETLINK, .nl_groups = CN_IDX_PROC, .nl_pid = 0};
  if (fd < 0 || bind(fd, (struct sockaddr*)&address, sizeof address) != 0 || subscribe(fd) != 0) {
    perror("connector");
    return 1;
  }
  static uint32_t next_sequence[MAX_CPUS];
  static char seen[MAX_CPUS];
  static long enobufs_before[MAX_CPUS];  // ENOBUFS count when the CPU's previous message came
  static char episode_before[MAX_CPUS];  // and whether an episode was under way then
  long messages = 0, enobufs = 0, explained = 0, unexplained = 0;
  int in_episode = 0;
  const double deadline = now() + seconds;
  char buffer[1024];
  while (now() < deadline) {
    poll(NULL, 0, pause_ms);
    for (;;) {
      ssize_t length = recv(fd, buffer, sizeof buffer, MSG_DONTWAIT);
      if (length < 0 && errno == ENOBUFS) {
        ++enobufs;
        in_episode = 1;
        continue;
      }
      if (length < 0) {
        in_episode = 0;
        break;
      }
      if ((size_t)length < NLMSG_LENGTH(sizeof(struct cn_msg)) + 8) continue;
      const struct cn_msg* message = NLMSG_DATA((struct nlmsghdr*)buffer);
      uint32_t cpu;
      memcpy(&cpu, message->data + 4, sizeof cpu);
      if (cpu >= MAX_CPUS) continue;  // acknowledgements of old kernels: cpu -1
      ++messages;
      if (seen[cpu] && message->seq != next_sequence[cpu]) {
        if (enobufs > enobufs_before[cpu] || episode_before[cpu])
          ++explained;
        else
          ++unexplained;
      }
      seen[cpu] = 1;
      enobufs_before[cpu] = enobufs;
      episode_before[cpu] = (char)in_episode;
      next_sequence[cpu] = message->seq + 1;
    }
  }
  printf("messages=%ld enobufs=%ld gaps_explained=%ld gaps_unexplained=%ld\n", messages, enobufs, explained,
         unexplained);
  return 0;
}
