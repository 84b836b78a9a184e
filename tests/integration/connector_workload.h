// Helpers for the proc-connector tests (connector_test.cc): zero-lifetime children, forced PID
// reuse through /proc/sys/kernel/ns_last_pid, and an exporter run in its own network namespace
// (where the proc connector is unavailable), scraped from a thread that joins that namespace.
//
// Like workload.h, code that runs in a forked child only makes async-signal-safe calls.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <cstdlib>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <vector>

#include "exporter_process.h"
#include "prometheus_text.h"
#include "workload.h"

namespace integration {

// Forks a child that names itself `comm` (prctl) and calls _exit(code) at once. Aborts the test
// binary if fork fails.
pid_t ForkZeroLifetime(const char* comm, int code);

// Reads one byte (a command) in a forked child; a closed pipe (the test gave up) ends it.
char ReadCommandByte(int fd);

// Writes one command byte to a forked child (a gtest assertion on failure).
void SendByte(int fd, char byte);

// waitpid(pid) (retrying on EINTR); returns the raw wait status, -1 on error.
int WaitPid(pid_t pid);

// Blocks until the child `pid` has exited, without reaping it (waitid WEXITED|WNOWAIT).
bool WaitExitedNoReap(pid_t pid);

// Writes /proc/sys/kernel/ns_last_pid, so that the next PID the kernel hands out in this (the
// initial) PID namespace is last + 1 unless another process forks first.
class LastPidWriter {
 public:
  LastPidWriter();
  ~LastPidWriter();
  LastPidWriter(const LastPidWriter&) = delete;
  LastPidWriter& operator=(const LastPidWriter&) = delete;
  // Empty when writing is possible; else why not (open or a probe write failed).
  const std::string& unavailable_reason() const { return reason_; }
  bool Set(pid_t last);

 private:
  int fd_ = -1;
  std::string reason_;
};

// The real exporter started in a new network namespace (unshare(CLONE_NEWNET) in the forked
// child, loopback brought up, then exec), listening on 127.0.0.1:0 inside it. HTTP requests are
// made from a short-lived thread that setns()es into the exporter's namespace.
class NetnsExporter {
 public:
  NetnsExporter() = default;
  ~NetnsExporter();
  NetnsExporter(const NetnsExporter&) = delete;
  NetnsExporter& operator=(const NetnsExporter&) = delete;

  // Starts the exporter; succeeds once it logged the address it listens on.
  testing::AssertionResult Start(const std::string& config_yaml);
  // Starts the exporter and waits (up to `timeout`) for it to exit by itself; its wait status,
  // or nullopt when it did not exit in time (it is killed then).
  std::optional<int> RunUntilExit(const std::string& config_yaml, std::chrono::milliseconds timeout);

  testing::AssertionResult Scrape(Metrics* metrics, std::string* body = nullptr) const;
  testing::AssertionResult WaitFor(std::string_view description,
                                   const std::function<bool(const Metrics&)>& condition,
                                   Metrics* last = nullptr,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;
  pid_t pid() const { return pid_; }
  std::string Log() const;

 private:
  testing::AssertionResult Spawn(const std::string& config_yaml);
  void KillAndReap();

  TempDir directory_;
  pid_t pid_ = -1;
  int netns_fd_ = -1;
  int port_ = 0;
  ProcessOutput output_;
};

}  // namespace integration
