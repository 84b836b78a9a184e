// Workload processes for the integration tests: children that give themselves a chosen comm
// (prctl(PR_SET_NAME) right after fork, so the exporter's comm matchers see them) and then
// block on a pipe until the test tells them how to end (exit code or signal). The test stays
// their parent, so it decides when they are reaped, and it measures on its own clocks when a
// child became a zombie (waitid WEXITED|WNOWAIT) and when it reaped it.
//
// Between fork and exit a worker only makes async-signal-safe system calls: the test process
// has other threads (the exporter's log drain), so the forked child must not allocate or lock.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <memory>
#include <string>

namespace integration {

using SteadyTime = std::chrono::steady_clock::time_point;
using WallTime = std::chrono::system_clock::time_point;

// A fixed-size message on a worker's command pipe (one write, atomic on a pipe).
struct WorkerCommand {
  enum Kind : int32_t { kExit = 1, kRaise = 2 };
  int32_t kind = kExit;
  int32_t value = 0;  // the exit code or the signal number
};

// Sends `command` to the worker reading `command_fd`'s other end.
void SendWorkerCommand(int command_fd, WorkerCommand command);

// The body of a worker, for tests that build their own process trees: names the calling
// process `comm`, then serves commands read from `command_fd` until one ends it. A closed pipe
// ends it with exit code 99. Async-signal-safe; never returns.
[[noreturn]] void RunWorker(const char* comm, int command_fd);

// Forks a child that runs `body` (async-signal-safe; must not return) with a parent-death
// signal, so a failing test leaves nothing behind.
template <typename Body>
pid_t ForkChild(Body body) {
  const pid_t parent = getpid();
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    std::abort();
  }
  if (pid == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent) _exit(97);
    body();
    _exit(98);
  }
  return pid;
}

// Sets the calling process's comm (truncated by the kernel to 15 bytes).
void SetComm(const char* comm);

struct ChildOptions {
  std::string comm;  // at most 15 bytes
  // Empty: RLIMIT_CORE 0, so a fatal signal never dumps core. Else the child chdirs here and
  // raises RLIMIT_CORE to its hard limit, so whether a core is written is the kernel's choice
  // (core_pattern); tests read the outcome from the wait status.
  std::string core_directory;
  // When >= 0: an open cgroup.procs file the child writes "0" to (moving itself into that
  // cgroup) before it names itself, so the exporter reads the new cgroup with the new comm.
  int cgroup_procs_fd = -1;
};

// One worker child of the test process. Destruction kills and reaps a child still around.
class ChildProcess {
 public:
  // Forks the worker; aborts the test binary if fork fails (nothing sensible to test then).
  static std::unique_ptr<ChildProcess> Spawn(const ChildOptions& options);
  ~ChildProcess();
  ChildProcess(const ChildProcess&) = delete;
  ChildProcess& operator=(const ChildProcess&) = delete;

  pid_t pid() const { return pid_; }
  // The child's pidfs inode (fstat of a pidfd): names it also after the reap, when its PID
  // may already belong to another process.
  uint64_t pidfs_inode() const { return pidfs_inode_; }

  void Exit(int code);     // the child calls _exit(code)
  void Raise(int signal);  // the child raises `signal` on itself with its default action
  void Kill(int signal);   // the test sends `signal` with kill(2)

  // Waits (up to `timeout`) until the child has exited, without reaping it. Records when the
  // test saw it (zombie_seen*): after the exit, so an upper bound of the exit time.
  testing::AssertionResult WaitUntilZombie(std::chrono::milliseconds timeout = std::chrono::seconds(10));
  // Reaps the child (waitpid) and returns its raw wait status; records reap_started/finished.
  int Reap();

  SteadyTime zombie_seen() const { return zombie_seen_; }
  WallTime zombie_seen_wall() const { return zombie_seen_wall_; }
  SteadyTime reap_started() const { return reap_started_; }
  SteadyTime reap_finished() const { return reap_finished_; }
  bool reaped() const { return reaped_; }
  int status() const { return status_; }

 private:
  ChildProcess() = default;

  pid_t pid_ = -1;
  int command_fd_ = -1;
  int pidfd_ = -1;
  uint64_t pidfs_inode_ = 0;
  bool reaped_ = false;
  int status_ = -1;
  SteadyTime zombie_seen_{};
  WallTime zombie_seen_wall_{};
  SteadyTime reap_started_{};
  SteadyTime reap_finished_{};
};

// The comm of the calling process's thread-group leader (/proc/self/comm of the main thread),
// which is what a parent label shows for zombies the test process must reap.
std::string SelfComm();

// What the exporter must report for a raw wait status, by the contract in README (metrics table):
// reason exited|killed|dumped and code "0".."255" or a signal name like "SIGSEGV".
std::string ExpectedExitReason(int status);
std::string ExpectedExitCode(int status);

// Seconds as a double, for comparing with metric values.
double Seconds(std::chrono::nanoseconds duration);
double UnixSeconds(WallTime time);

// A pipe whose ends close with the scope (both O_CLOEXEC, so the exporter never holds one).
struct Pipe {
  Pipe();
  ~Pipe();
  Pipe(const Pipe&) = delete;
  Pipe& operator=(const Pipe&) = delete;
  void CloseRead();
  void CloseWrite();
  int read_end() const { return fds[0]; }
  int write_end() const { return fds[1]; }
  int fds[2];
};

// Reads exactly `size` bytes within `timeout`; false on EOF, error or timeout.
bool ReadFully(int fd, void* data, size_t size, std::chrono::milliseconds timeout = std::chrono::seconds(20));

// Kills and reaps, at scope exit, a process the test forked by hand (tests that build their
// own process trees), so a failing assertion leaves nothing behind.
class ProcessGuard {
 public:
  explicit ProcessGuard(pid_t pid) : pid_(pid) {}
  ~ProcessGuard();
  ProcessGuard(const ProcessGuard&) = delete;
  ProcessGuard& operator=(const ProcessGuard&) = delete;
  // Reaps the (exited) process and returns its wait status; the guard then does nothing.
  int Reap();
  pid_t pid() const { return pid_; }

 private:
  pid_t pid_;
};

}  // namespace integration
