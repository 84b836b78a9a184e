#include "workload.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <fstream>

namespace integration {

void SendWorkerCommand(int command_fd, WorkerCommand command) {
  ssize_t written;
  do {
    written = write(command_fd, &command, sizeof command);
  } while (written < 0 && errno == EINTR);
  if (written != static_cast<ssize_t>(sizeof command)) {
    std::perror("write worker command");
    std::abort();
  }
}

void SetComm(const char* comm) {
  prctl(PR_SET_NAME, comm, 0, 0, 0);
}

void RunWorker(const char* comm, int command_fd) {
  SetComm(comm);
  while (true) {
    WorkerCommand command;
    ssize_t n = read(command_fd, &command, sizeof command);
    if (n < 0 && errno == EINTR) continue;
    if (n != static_cast<ssize_t>(sizeof command)) _exit(99);
    if (command.kind == WorkerCommand::kExit) _exit(command.value);
    if (command.kind == WorkerCommand::kRaise) {
      // The test process's dispositions and mask were inherited; the signal must take its
      // default (terminating, maybe dumping) action.
      signal(command.value, SIG_DFL);
      sigset_t only;
      sigemptyset(&only);
      sigaddset(&only, command.value);
      sigprocmask(SIG_UNBLOCK, &only, nullptr);
      raise(command.value);
      _exit(98);  // not reached for fatal signals
    }
  }
}

std::unique_ptr<ChildProcess> ChildProcess::Spawn(const ChildOptions& options) {
  std::unique_ptr<ChildProcess> child(new ChildProcess());
  int command_pipe[2];
  if (pipe2(command_pipe, O_CLOEXEC) != 0) {
    std::perror("pipe2");
    std::abort();
  }
  const char* comm = options.comm.c_str();
  const char* core_directory = options.core_directory.empty() ? nullptr : options.core_directory.c_str();
  const int cgroup_procs_fd = options.cgroup_procs_fd;
  pid_t pid = ForkChild([&] {
    rlimit core{};
    getrlimit(RLIMIT_CORE, &core);
    if (core_directory) {
      if (chdir(core_directory) != 0) _exit(96);
      core.rlim_cur = core.rlim_max;
    } else {
      core.rlim_cur = 0;
    }
    setrlimit(RLIMIT_CORE, &core);
    close(command_pipe[1]);
    if (cgroup_procs_fd >= 0 && write(cgroup_procs_fd, "0", 1) != 1) _exit(95);
    RunWorker(comm, command_pipe[0]);
  });
  close(command_pipe[0]);
  child->pid_ = pid;
  child->command_fd_ = command_pipe[1];
  child->pidfd_ = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
  struct stat pidfd_stat {};
  if (child->pidfd_ >= 0 && fstat(child->pidfd_, &pidfd_stat) == 0) child->pidfs_inode_ = pidfd_stat.st_ino;
  return child;
}

ChildProcess::~ChildProcess() {
  if (!reaped_ && pid_ > 0) {
    kill(pid_, SIGKILL);
    int status;
    while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
    }
  }
  if (command_fd_ >= 0) close(command_fd_);
  if (pidfd_ >= 0) close(pidfd_);
}

void ChildProcess::Exit(int code) {
  SendWorkerCommand(command_fd_, {WorkerCommand::kExit, code});
}

void ChildProcess::Raise(int signal) {
  SendWorkerCommand(command_fd_, {WorkerCommand::kRaise, signal});
}

void ChildProcess::Kill(int signal) {
  kill(pid_, signal);
}

testing::AssertionResult ChildProcess::WaitUntilZombie(std::chrono::milliseconds timeout) {
  // The pidfd bounds the wait; waitid(WNOWAIT) then confirms the exit without reaping.
  pollfd entry{pidfd_, POLLIN, 0};
  int ready;
  do {
    ready = poll(&entry, 1, static_cast<int>(timeout.count()));
  } while (ready < 0 && errno == EINTR);
  if (ready == 0) {
    return testing::AssertionFailure()
           << "child " << pid_ << " did not exit within " << timeout.count() << " ms";
  }
  siginfo_t info{};
  int result;
  do {
    result = waitid(P_PID, static_cast<id_t>(pid_), &info, WEXITED | WNOWAIT);
  } while (result < 0 && errno == EINTR);
  zombie_seen_ = std::chrono::steady_clock::now();
  zombie_seen_wall_ = std::chrono::system_clock::now();
  if (result != 0) return testing::AssertionFailure() << "waitid(" << pid_ << "): " << strerror(errno);
  return testing::AssertionSuccess();
}

int ChildProcess::Reap() {
  reap_started_ = std::chrono::steady_clock::now();
  pid_t result;
  do {
    result = waitpid(pid_, &status_, 0);
  } while (result < 0 && errno == EINTR);
  reap_finished_ = std::chrono::steady_clock::now();
  reaped_ = true;
  return status_;
}

std::string SelfComm() {
  std::ifstream file("/proc/self/comm");
  std::string comm;
  std::getline(file, comm);
  return comm;
}

std::string ExpectedExitReason(int status) {
  if (WIFEXITED(status)) return "exited";
  if (WIFSIGNALED(status)) return WCOREDUMP(status) ? "dumped" : "killed";
  return "unknown";
}

std::string ExpectedExitCode(int status) {
  if (WIFEXITED(status)) return std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return name ? std::string("SIG") + name : std::to_string(WTERMSIG(status));
  }
  return "";
}

double Seconds(std::chrono::nanoseconds duration) {
  return std::chrono::duration<double>(duration).count();
}

double UnixSeconds(WallTime time) {
  return std::chrono::duration<double>(time.time_since_epoch()).count();
}

Pipe::Pipe() {
  if (pipe2(fds, O_CLOEXEC) != 0) {
    std::perror("pipe2");
    std::abort();
  }
}
Pipe::~Pipe() {
  CloseRead();
  CloseWrite();
}
void Pipe::CloseRead() {
  if (fds[0] >= 0) close(fds[0]);
  fds[0] = -1;
}
void Pipe::CloseWrite() {
  if (fds[1] >= 0) close(fds[1]);
  fds[1] = -1;
}

bool ReadFully(int fd, void* data, size_t size, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  auto* bytes = static_cast<char*>(data);
  size_t done = 0;
  while (done < size) {
    const auto left =
        std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now())
            .count();
    pollfd entry{fd, POLLIN, 0};
    if (left <= 0 || poll(&entry, 1, static_cast<int>(left)) == 0) return false;
    const ssize_t n = read(fd, bytes + done, size - done);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) return false;
    done += static_cast<size_t>(n);
  }
  return true;
}

ProcessGuard::~ProcessGuard() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  int status;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
}

int ProcessGuard::Reap() {
  int status = -1;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  return status;
}

}  // namespace integration
