#include "connector_workload.h"

#include <fcntl.h>
#include <net/if.h>
#include <poll.h>
#include <sched.h>
#include <signal.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>

#include "http_client.h"
#include "workload.h"

namespace integration {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// In the forked child: brings the new namespace's loopback up (async-signal-safe calls only).
bool LoopbackUp() {
  int fd = socket(AF_INET, SOCK_DGRAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return false;
  ifreq request{};
  std::memcpy(request.ifr_name, "lo", 3);
  bool ok = ioctl(fd, SIOCGIFFLAGS, &request) == 0;
  request.ifr_flags = static_cast<short>(request.ifr_flags | IFF_UP);
  ok = ok && ioctl(fd, SIOCSIFFLAGS, &request) == 0;
  close(fd);
  return ok;
}

void WriteAll(int fd, const char* text) {
  ssize_t ignored = write(fd, text, std::strlen(text));
  (void)ignored;
}

}  // namespace

char ReadCommandByte(int fd) {
  char byte = 0;
  ssize_t n;
  do {
    n = read(fd, &byte, 1);
  } while (n < 0 && errno == EINTR);
  if (n != 1) _exit(99);
  return byte;
}

void SendByte(int fd, char byte) {
  ssize_t n;
  do {
    n = write(fd, &byte, 1);
  } while (n < 0 && errno == EINTR);
  ASSERT_EQ(n, 1) << strerror(errno);
}

pid_t ForkZeroLifetime(const char* comm, int code) {
  pid_t pid = fork();
  if (pid < 0) {
    std::perror("fork");
    std::abort();
  }
  if (pid == 0) {
    SetComm(comm);
    _exit(code);
  }
  return pid;
}

int WaitPid(pid_t pid) {
  int status = -1;
  while (waitpid(pid, &status, 0) < 0) {
    if (errno != EINTR) return -1;
  }
  return status;
}

bool WaitExitedNoReap(pid_t pid) {
  siginfo_t info{};
  while (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) < 0) {
    if (errno != EINTR) return false;
  }
  return true;
}

LastPidWriter::LastPidWriter() {
  fd_ = open("/proc/sys/kernel/ns_last_pid", O_WRONLY | O_CLOEXEC);
  if (fd_ < 0) {
    reason_ = std::string("open /proc/sys/kernel/ns_last_pid: ") + strerror(errno);
    return;
  }
  // Probe with the current value's neighbourhood: any value is only a hint to the allocator.
  if (!Set(getpid())) reason_ = std::string("write /proc/sys/kernel/ns_last_pid: ") + strerror(errno);
}

LastPidWriter::~LastPidWriter() {
  if (fd_ >= 0) close(fd_);
}

bool LastPidWriter::Set(pid_t last) {
  if (fd_ < 0) return false;
  char text[32];
  int length = std::snprintf(text, sizeof text, "%d", static_cast<int>(last));
  return pwrite(fd_, text, static_cast<size_t>(length), 0) == length;
}

NetnsExporter::~NetnsExporter() {
  if (pid_ > 0) KillAndReap();
  output_.Join();
  if (netns_fd_ >= 0) close(netns_fd_);
}

void NetnsExporter::KillAndReap() {
  kill(pid_, SIGKILL);
  WaitPid(pid_);
  pid_ = -1;
}

testing::AssertionResult NetnsExporter::Spawn(const std::string& config_yaml) {
  const std::string config_path = directory_.WriteFile("config.yml", config_yaml);
  std::vector<std::string> argv = {ExporterBinary(), "--config.file=" + config_path,
                                   "--web.listen-address=127.0.0.1:0"};
  if (const char* more = std::getenv("PIDFD_IT_EXPORTER_ARGS")) argv.push_back(more);
  std::vector<char*> raw_argv;
  for (const std::string& argument : argv) raw_argv.push_back(const_cast<char*>(argument.c_str()));
  raw_argv.push_back(nullptr);
  int output[2];
  if (pipe2(output, O_CLOEXEC) != 0) return testing::AssertionFailure() << "pipe2: " << strerror(errno);
  const pid_t parent = getpid();
  pid_ = fork();
  if (pid_ < 0) return testing::AssertionFailure() << "fork: " << strerror(errno);
  if (pid_ == 0) {
    prctl(PR_SET_PDEATHSIG, SIGKILL, 0, 0, 0);
    if (getppid() != parent) _exit(97);
    dup2(output[1], 1);
    dup2(output[1], 2);
    int null_fd = open("/dev/null", O_RDONLY);
    if (null_fd >= 0) dup2(null_fd, 0);
    if (unshare(CLONE_NEWNET) != 0) {
      WriteAll(2, "test harness: unshare(CLONE_NEWNET) failed\n");
      _exit(120);
    }
    if (!LoopbackUp()) {
      WriteAll(2, "test harness: cannot bring lo up in the new network namespace\n");
      _exit(121);
    }
    struct sigaction default_action {};
    default_action.sa_handler = SIG_DFL;
    for (int signal_number = 1; signal_number < NSIG; ++signal_number) {
      if (signal_number != SIGKILL && signal_number != SIGSTOP)
        sigaction(signal_number, &default_action, nullptr);
    }
    sigset_t none;
    sigemptyset(&none);
    sigprocmask(SIG_SETMASK, &none, nullptr);
    execv(raw_argv[0], raw_argv.data());
    WriteAll(2, "test harness: execv of the exporter failed\n");
    _exit(122);
  }
  close(output[1]);
  output_.Start(output[0]);
  return testing::AssertionSuccess();
}

testing::AssertionResult NetnsExporter::Start(const std::string& config_yaml) {
  if (auto spawned = Spawn(config_yaml); !spawned) return spawned;
  const std::optional<int> port = output_.WaitForListeningPort(std::chrono::seconds(10));
  if (!port) {
    return testing::AssertionFailure() << "the exporter in a new network namespace did not listen:\n"
                                       << output_.Text();
  }
  port_ = *port;
  // It listens, so it unshared long ago: its namespace is the one to join for HTTP.
  const std::string path = "/proc/" + std::to_string(pid_) + "/ns/net";
  netns_fd_ = open(path.c_str(), O_RDONLY | O_CLOEXEC);
  if (netns_fd_ < 0) return testing::AssertionFailure() << "open " << path << ": " << strerror(errno);
  return testing::AssertionSuccess();
}

std::optional<int> NetnsExporter::RunUntilExit(const std::string& config_yaml, milliseconds timeout) {
  if (!Spawn(config_yaml)) return std::nullopt;
  auto deadline = Clock::now() + timeout;
  while (Clock::now() < deadline) {
    int status = 0;
    pid_t result = waitpid(pid_, &status, WNOHANG);
    if (result == pid_) {
      pid_ = -1;
      output_.Join();
      return status;
    }
    std::this_thread::sleep_for(milliseconds(10));  // polling period
  }
  KillAndReap();
  return std::nullopt;
}

std::string NetnsExporter::Log() const {
  return output_.Text();
}

testing::AssertionResult NetnsExporter::Scrape(Metrics* metrics, std::string* body) const {
  HttpResult result;
  std::string setns_error;
  // setns(CLONE_NEWNET) changes the calling thread only: a fresh thread makes the request.
  std::thread requester([&] {
    if (setns(netns_fd_, CLONE_NEWNET) != 0) {
      setns_error = std::string("setns: ") + strerror(errno);
      return;
    }
    result = HttpGet("127.0.0.1", port_, "/metrics");
  });
  requester.join();
  if (!setns_error.empty()) return testing::AssertionFailure() << setns_error;
  if (!result.response) return testing::AssertionFailure() << "GET /metrics failed: " << result.error;
  if (body) *body = result.response->body;
  if (result.response->status != 200) {
    return testing::AssertionFailure() << "GET /metrics returned " << result.response->status;
  }
  ParseResult parsed = ParsePrometheusText(result.response->body);
  if (!parsed.ok()) return testing::AssertionFailure() << "/metrics does not parse: " << parsed.error;
  if (metrics) *metrics = std::move(parsed.metrics);
  return testing::AssertionSuccess();
}

testing::AssertionResult NetnsExporter::WaitFor(std::string_view description,
                                                const std::function<bool(const Metrics&)>& condition,
                                                Metrics* last, milliseconds timeout) const {
  auto deadline = Clock::now() + timeout;
  std::string error;
  while (true) {
    Metrics metrics;
    auto scraped = Scrape(&metrics);
    if (scraped && condition(metrics)) {
      if (last) *last = std::move(metrics);
      return testing::AssertionSuccess();
    }
    error = scraped ? "" : scraped.message();
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(milliseconds(20));  // the scrape period
  }
  return testing::AssertionFailure() << "timed out after " << timeout.count()
                                     << " ms waiting for: " << description
                                     << (error.empty() ? "" : "\nlast scrape error: " + error)
                                     << "\nexporter log:\n"
                                     << Log();
}

}  // namespace integration
