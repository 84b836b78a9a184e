// A tiny blocking HTTP/1.0 client for /metrics on 127.0.0.1 and a sum over matching series.
// Header-only, C, for the benchmark helpers.
#pragma once
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

typedef struct {
  char* data;
  size_t len, cap;
} mc_buf;

// Fetches http://127.0.0.1:port/metrics into *b (body only). Returns 0 on success.
static int mc_scrape(int port, mc_buf* b) {
  int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return -1;
  struct sockaddr_in a = {0};
  a.sin_family = AF_INET;
  a.sin_port = htons((unsigned short)port);
  a.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (connect(fd, (struct sockaddr*)&a, sizeof a) != 0) {
    close(fd);
    return -1;
  }
  int one = 1;
  setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
  static const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
  if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
    close(fd);
    return -1;
  }
  b->len = 0;
  for (;;) {
    if (b->cap - b->len < 65536) {
      b->cap = b->cap ? b->cap * 2 : 1 << 20;
      b->data = realloc(b->data, b->cap);
    }
    ssize_t r = read(fd, b->data + b->len, b->cap - b->len - 1);
    if (r < 0) {
      close(fd);
      return -1;
    }
    if (r == 0) break;
    b->len += (size_t)r;
  }
  close(fd);
  b->data[b->len] = 0;
  char* body = strstr(b->data, "\r\n\r\n");
  if (!body) return -1;
  body += 4;
  b->len -= (size_t)(body - b->data);
  memmove(b->data, body, b->len + 1);
  return 0;
}

// Sum of the values of every series of `name` (exactly; `_sum`/`_count` are distinct names)
// whose labels contain `label` (e.g. set="acc_d10"); label NULL = all series.
static double mc_sum(const mc_buf* b, const char* name, const char* label) {
  double total = 0;
  size_t nl = strlen(name);
  const char* p = b->data;
  while (p && *p) {
    const char* eol = strchr(p, '\n');
    if (p[0] != '#' && strncmp(p, name, nl) == 0 && (p[nl] == '{' || p[nl] == ' ')) {
      const char* close_brace = p[nl] == '{' ? memchr(p, '}', (size_t)((eol ? eol : p + strlen(p)) - p)) : p + nl;
      int ok = 1;
      if (label) {
        ok = 0;
        size_t ll = strlen(label);
        for (const char* q = p + nl; close_brace && q + ll <= close_brace; ++q)
          if ((q[-1] == '{' || q[-1] == ',') && strncmp(q, label, ll) == 0) {
            ok = 1;
            break;
          }
      }
      if (ok && close_brace) total += strtod(close_brace + 1, NULL);
    }
    p = eol ? eol + 1 : NULL;
  }
  return total;
}
