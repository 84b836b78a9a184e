// ReadUntilClosed: everything a forked child writes to a pipe until it closes its end; the
// unit tests that run code in a child (to drop a capability, or to enter a namespace) read
// its report with it. Any thread; blocks until the writer closes.
#pragma once

#include <errno.h>
#include <unistd.h>

#include <string>

namespace pidfd_exporter {

inline std::string ReadUntilClosed(int fd) {
  std::string text;
  char buffer[512];
  for (ssize_t n; (n = read(fd, buffer, sizeof buffer)) != 0;) {
    if (n < 0 && errno == EINTR) continue;
    if (n < 0) break;
    text.append(buffer, static_cast<size_t>(n));
  }
  return text;
}

}  // namespace pidfd_exporter
