// bare_listener SECONDS PAUSE_MS [taskstats]: the least any event-driven listener of the proc
// connector can cost, to set beside the exporter (bench/compare.sh, scenario "unrelated").
// It subscribes to every connector event (no filter) and, with "taskstats", registers for the
// exit records of every CPU as the exporter does; then for SECONDS it only reads:
//   PAUSE_MS 0: waits in poll() and reads each message as it comes (a wake-up per event);
//   PAUSE_MS N: sleeps N ms, then reads whatever queued (wake-ups coalesced, which the exporter
//               cannot do without losing the pidfds of short-lived processes in sets).
// Its CPU and the host's slowdown beside it are the kernel's cost of sending the events plus
// the listener's wake-ups, with none of the exporter's own work. Prints "messages=N records=N".
// Needs the initial network and PID namespaces and CAP_NET_ADMIN (taskstats; the connector
// before Linux 6.6).
#define _GNU_SOURCE
#include <linux/cn_proc.h>
#include <linux/connector.h>
#include <linux/genetlink.h>
#include <linux/netlink.h>
#include <linux/taskstats.h>
#include <poll.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

static double now(void) {
  struct timespec ts;
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return ts.tv_sec + ts.tv_nsec / 1e9;
}

static int open_netlink(int protocol, int groups) {
  int fd = socket(AF_NETLINK, SOCK_DGRAM | SOCK_CLOEXEC | SOCK_NONBLOCK, protocol);
  int size = 8 << 20;  // as the exporter: no overflow while a pause lets messages queue
  if (fd < 0) return -1;
  if (setsockopt(fd, SOL_SOCKET, SO_RCVBUFFORCE, &size, sizeof size) != 0)
    setsockopt(fd, SOL_SOCKET, SO_RCVBUF, &size, sizeof size);
  struct sockaddr_nl address = {.nl_family = AF_NETLINK, .nl_groups = (uint32_t)groups};
  if (bind(fd, (struct sockaddr*)&address, sizeof address) != 0) {
    close(fd);
    return -1;
  }
  return fd;
}

static int subscribe_connector(int fd) {
  char buffer[NLMSG_SPACE(sizeof(struct cn_msg) + sizeof(enum proc_cn_mcast_op))] = {0};
  struct nlmsghdr* header = (struct nlmsghdr*)buffer;
  header->nlmsg_len = sizeof buffer;
  header->nlmsg_type = NLMSG_DONE;
  struct cn_msg* message = NLMSG_DATA(header);
  message->id.idx = CN_IDX_PROC;
  message->id.val = CN_VAL_PROC;
  message->len = sizeof(enum proc_cn_mcast_op);
  *(enum proc_cn_mcast_op*)message->data = PROC_CN_MCAST_LISTEN;
  return send(fd, buffer, sizeof buffer, 0) == (ssize_t)sizeof buffer ? 0 : -1;
}

// Sends a generic netlink request with one string attribute; returns the reply's length.
static ssize_t genl_request(int fd, uint16_t family, uint8_t command, uint16_t attribute, const char* value,
                            char* reply, size_t reply_size) {
  char buffer[256] = {0};
  struct nlmsghdr* header = (struct nlmsghdr*)buffer;
  struct genlmsghdr* genl = NLMSG_DATA(header);
  struct nlattr* attr = (struct nlattr*)((char*)genl + GENL_HDRLEN);
  const size_t value_size = strlen(value) + 1;
  attr->nla_type = attribute;
  attr->nla_len = (uint16_t)(NLA_HDRLEN + value_size);
  memcpy((char*)attr + NLA_HDRLEN, value, value_size);
  header->nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN + NLA_ALIGN(attr->nla_len));
  header->nlmsg_type = family;
  header->nlmsg_flags = NLM_F_REQUEST;
  genl->cmd = command;
  genl->version = 1;
  if (send(fd, buffer, header->nlmsg_len, 0) < 0) return -1;
  struct pollfd waiting = {.fd = fd, .events = POLLIN};
  if (poll(&waiting, 1, 1000) != 1) return -1;
  return recv(fd, reply, reply_size, 0);
}

static int register_taskstats(int fd) {
  char reply[4096];
  ssize_t length = genl_request(fd, GENL_ID_CTRL, CTRL_CMD_GETFAMILY, CTRL_ATTR_FAMILY_NAME, TASKSTATS_GENL_NAME,
                                reply, sizeof reply);
  if (length <= 0) return -1;
  struct nlmsghdr* header = (struct nlmsghdr*)reply;
  if (!NLMSG_OK(header, (size_t)length) || header->nlmsg_type == NLMSG_ERROR) return -1;
  struct nlattr* attr = (struct nlattr*)((char*)NLMSG_DATA(header) + GENL_HDRLEN);
  char* end = reply + header->nlmsg_len;  // within `length`: NLMSG_OK checked it
  int family = -1;
  for (; (char*)attr + NLA_HDRLEN <= end && attr->nla_len >= NLA_HDRLEN;
       attr = (struct nlattr*)((char*)attr + NLA_ALIGN(attr->nla_len)))
    if (attr->nla_type == CTRL_ATTR_FAMILY_ID) family = *(uint16_t*)((char*)attr + NLA_HDRLEN);
  if (family < 0) return -1;
  char cpus[32];
  snprintf(cpus, sizeof cpus, "0-%ld", sysconf(_SC_NPROCESSORS_CONF) - 1);
  char buffer[256] = {0};
  struct nlmsghdr* request = (struct nlmsghdr*)buffer;
  struct genlmsghdr* genl = NLMSG_DATA(request);
  struct nlattr* mask = (struct nlattr*)((char*)genl + GENL_HDRLEN);
  mask->nla_type = TASKSTATS_CMD_ATTR_REGISTER_CPUMASK;
  mask->nla_len = (uint16_t)(NLA_HDRLEN + strlen(cpus) + 1);
  memcpy((char*)mask + NLA_HDRLEN, cpus, strlen(cpus) + 1);
  request->nlmsg_len = NLMSG_LENGTH(GENL_HDRLEN + NLA_ALIGN(mask->nla_len));
  request->nlmsg_type = (uint16_t)family;
  request->nlmsg_flags = NLM_F_REQUEST;
  genl->cmd = TASKSTATS_CMD_GET;
  genl->version = 1;
  return send(fd, buffer, request->nlmsg_len, 0) < 0 ? -1 : 0;
}

static long drain(int fd) {
  static char buffer[1 << 16];
  long messages = 0;
  while (recv(fd, buffer, sizeof buffer, 0) > 0) ++messages;
  return messages;
}

int main(int argc, char** argv) {
  if (argc < 3) {
    fprintf(stderr, "usage: bare_listener SECONDS PAUSE_MS [taskstats]\n");
    return 2;
  }
  const double seconds = atof(argv[1]);
  const int pause_ms = atoi(argv[2]);
  const int connector = open_netlink(NETLINK_CONNECTOR, CN_IDX_PROC);
  if (connector < 0 || subscribe_connector(connector) != 0) {
    perror("connector");
    return 1;
  }
  int taskstats = -1;
  if (argc > 3 && strcmp(argv[3], "taskstats") == 0) {
    taskstats = open_netlink(NETLINK_GENERIC, 0);
    if (taskstats < 0 || register_taskstats(taskstats) != 0) {
      perror("taskstats");
      return 1;
    }
  }
  long messages = 0, records = 0;
  const double end = now() + seconds;
  // Only the connector wakes it; the records are read with the events, as the exporter does
  // (exporter/exit_record_book.h).
  struct pollfd waiting = {.fd = connector, .events = POLLIN};
  while (now() < end) {
    if (pause_ms > 0) {
      usleep((useconds_t)pause_ms * 1000);
    } else if (poll(&waiting, 1, 100) <= 0) {
      continue;
    }
    messages += drain(connector);
    if (taskstats >= 0) records += drain(taskstats);
  }
  printf("messages=%ld records=%ld\n", messages, records);
  return 0;
}
