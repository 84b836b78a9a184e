#include "exporter_process.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <spawn.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <sstream>

extern char** environ;

namespace integration {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

int PidfdOpen(pid_t pid) {
  return static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
}

// Waits until the process behind `pidfd` has exited or `timeout` passed; true if it exited.
bool WaitForExit(int pidfd, milliseconds timeout) {
  auto deadline = Clock::now() + timeout;
  while (true) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    pollfd entry{pidfd, POLLIN, 0};
    int ready = poll(&entry, 1, static_cast<int>(std::max<int64_t>(left, 0)));
    if (ready > 0) return true;
    if (ready == 0) return false;
    if (errno != EINTR) return false;
  }
}

struct Spawned {
  pid_t pid = -1;
  int input_fd = -1;   // write end of the child's stdin; -1 when stdin is /dev/null
  int output_fd = -1;  // read end of the child's stdout+stderr
  std::string error;
};

// posix_spawn with stdout+stderr on one pipe, default signal dispositions and an empty signal
// mask (the test process may have changed both; the program under test must not inherit that).
Spawned Spawn(const std::vector<std::string>& argv, bool with_input) {
  Spawned spawned;
  int output_pipe[2];
  int input_pipe[2] = {-1, -1};
  if (pipe2(output_pipe, O_CLOEXEC) != 0 || (with_input && pipe2(input_pipe, O_CLOEXEC) != 0)) {
    spawned.error = std::string("pipe2: ") + strerror(errno);
    return spawned;
  }
  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  if (with_input) {
    posix_spawn_file_actions_adddup2(&actions, input_pipe[0], 0);
  } else {
    posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0);
  }
  posix_spawn_file_actions_adddup2(&actions, output_pipe[1], 1);
  posix_spawn_file_actions_adddup2(&actions, output_pipe[1], 2);
  posix_spawnattr_t attributes;
  posix_spawnattr_init(&attributes);
  sigset_t all_signals, no_signals;
  sigfillset(&all_signals);
  sigemptyset(&no_signals);
  posix_spawnattr_setsigdefault(&attributes, &all_signals);
  posix_spawnattr_setsigmask(&attributes, &no_signals);
  posix_spawnattr_setflags(&attributes, POSIX_SPAWN_SETSIGDEF | POSIX_SPAWN_SETSIGMASK);
  std::vector<char*> raw_argv;
  for (const std::string& argument : argv) raw_argv.push_back(const_cast<char*>(argument.c_str()));
  raw_argv.push_back(nullptr);
  int error = posix_spawn(&spawned.pid, raw_argv[0], &actions, &attributes, raw_argv.data(), environ);
  posix_spawn_file_actions_destroy(&actions);
  posix_spawnattr_destroy(&attributes);
  close(output_pipe[1]);
  if (with_input) close(input_pipe[0]);
  if (error != 0) {
    spawned.pid = -1;
    spawned.error = "posix_spawn " + argv[0] + ": " + strerror(error);
    close(output_pipe[0]);
    if (with_input) close(input_pipe[1]);
    return spawned;
  }
  spawned.output_fd = output_pipe[0];
  spawned.input_fd = input_pipe[1];
  return spawned;
}

// The port in a logfmt line like `... msg="Listening on" address=127.0.0.1:43567`.
std::optional<int> ListeningPort(std::string_view log) {
  size_t position = 0;
  while ((position = log.find("Listening on", position)) != std::string_view::npos) {
    size_t line_end = log.find('\n', position);
    if (line_end == std::string_view::npos) return std::nullopt;  // the line is not complete yet
    std::string_view line = log.substr(position, line_end - position);
    position = line_end;
    size_t address = line.find("address=");
    if (address == std::string_view::npos) continue;
    std::string_view value = line.substr(address + 8);
    value = value.substr(0, value.find(' '));
    while (!value.empty() && value.back() == '"') value.remove_suffix(1);
    size_t colon = value.rfind(':');
    if (colon == std::string_view::npos) continue;
    int port = std::atoi(std::string(value.substr(colon + 1)).c_str());
    if (port > 0) return port;
  }
  return std::nullopt;
}

// The pidfd_ sample lines of a scrape, for failure messages.
std::string PidfdSeries(const std::string& body) {
  std::string lines;
  size_t position = 0;
  while (position < body.size()) {
    size_t end = body.find('\n', position);
    if (end == std::string::npos) end = body.size();
    std::string_view line(body.data() + position, end - position);
    if (line.starts_with("pidfd_")) lines.append(line).append("\n");
    position = end + 1;
  }
  return lines;
}

}  // namespace

std::string ExporterBinary() {
  // PIDFD_IT_EXPORTER_BINARY runs the same tests against another build (an older revision
  // side by side, a sanitizer build).
  if (const char* other = std::getenv("PIDFD_IT_EXPORTER_BINARY"); other && *other) return other;
  return PIDFD_EXPORTER_BINARY;
}

TempDir::TempDir() {
  const char* base = std::getenv("TMPDIR");
  std::string pattern = std::string(base && *base ? base : "/tmp") + "/pidfd_it.XXXXXX";
  if (mkdtemp(pattern.data()) == nullptr) {
    std::perror("mkdtemp");
    std::abort();
  }
  path_ = pattern;
}

TempDir::~TempDir() {
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

std::string TempDir::WriteFile(const std::string& name, const std::string& content) const {
  std::string path = path_ + "/" + name;
  std::ofstream(path, std::ios::binary | std::ios::trunc) << content;
  return path;
}

std::string DescribeWaitStatus(int status) {
  if (status == -1) return "not started";
  if (WIFEXITED(status)) return "exit " + std::to_string(WEXITSTATUS(status));
  if (WIFSIGNALED(status)) {
    const char* name = sigabbrev_np(WTERMSIG(status));
    return std::string("signal SIG") + (name ? name : "?") + (WCOREDUMP(status) ? " (core dumped)" : "");
  }
  return "wait status " + std::to_string(status);
}

CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& input,
                         milliseconds timeout) {
  CommandResult result;
  Spawned spawned = Spawn(argv, /*with_input=*/true);
  if (spawned.pid < 0) {
    result.output = spawned.error;
    return result;
  }
  // Feed stdin and collect output together: a large input must not deadlock against a
  // command that writes before it has read everything.
  fcntl(spawned.input_fd, F_SETFL, O_NONBLOCK);
  size_t written = 0;
  if (input.empty()) {
    close(spawned.input_fd);
    spawned.input_fd = -1;
  }
  auto deadline = Clock::now() + timeout;
  while (spawned.output_fd >= 0) {
    auto left = std::chrono::duration_cast<milliseconds>(deadline - Clock::now()).count();
    if (left <= 0) {
      result.timed_out = true;
      break;
    }
    pollfd entries[2] = {{spawned.output_fd, POLLIN, 0}, {spawned.input_fd, POLLOUT, 0}};
    int ready = poll(entries, spawned.input_fd >= 0 ? 2 : 1, static_cast<int>(left));
    if (ready < 0 && errno != EINTR) break;
    if (spawned.input_fd >= 0 && entries[1].revents) {
      ssize_t n = write(spawned.input_fd, input.data() + written, input.size() - written);
      if (n > 0) written += static_cast<size_t>(n);
      if ((n < 0 && errno != EAGAIN) || written == input.size()) {
        close(spawned.input_fd);
        spawned.input_fd = -1;
      }
    }
    if (entries[0].revents) {
      char buffer[4096];
      ssize_t n = read(spawned.output_fd, buffer, sizeof buffer);
      if (n > 0) {
        result.output.append(buffer, static_cast<size_t>(n));
      } else if (n == 0 || errno != EINTR) {
        close(spawned.output_fd);
        spawned.output_fd = -1;
      }
    }
  }
  if (spawned.input_fd >= 0) close(spawned.input_fd);
  if (spawned.output_fd >= 0) close(spawned.output_fd);
  if (result.timed_out) kill(spawned.pid, SIGKILL);
  int pidfd = PidfdOpen(spawned.pid);
  if (pidfd >= 0 && !WaitForExit(pidfd, std::chrono::duration_cast<milliseconds>(deadline - Clock::now()) +
                                            std::chrono::seconds(1))) {
    result.timed_out = true;
    kill(spawned.pid, SIGKILL);
  }
  if (pidfd >= 0) close(pidfd);
  waitpid(spawned.pid, &result.status, 0);
  return result;
}

ExporterProcess::~ExporterProcess() {
  if (running()) KillAndReap();
  output_.Join();
  if (pidfd_ >= 0) close(pidfd_);
}

void ExporterProcess::KillAndReap() {
  kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
}

testing::AssertionResult ExporterProcess::Start(const std::string& config_yaml,
                                                const std::vector<std::string>& extra_arguments) {
  config_path_ = directory_.WriteFile("config.yml", config_yaml);
  std::vector<std::string> argv = {ExporterBinary(), "--config.file=" + config_path_,
                                   "--web.listen-address=127.0.0.1:0"};
  argv.insert(argv.end(), extra_arguments.begin(), extra_arguments.end());
  argv.insert(argv.begin(), command_prefix_.begin(), command_prefix_.end());
  // For debugging a failure by hand, e.g. PIDFD_IT_EXPORTER_ARGS=--log.level=debug.
  if (const char* more = std::getenv("PIDFD_IT_EXPORTER_ARGS")) {
    std::istringstream words(more);
    for (std::string word; words >> word;) argv.push_back(word);
  }
  Spawned spawned = Spawn(argv, /*with_input=*/false);
  if (spawned.pid < 0) return testing::AssertionFailure() << spawned.error;
  pid_ = spawned.pid;
  pidfd_ = PidfdOpen(pid_);
  output_.Start(spawned.output_fd);

  bool closed = false;
  if (auto port = output_.WaitForListeningPort(std::chrono::seconds(10), &closed)) {
    port_ = *port;
    return testing::AssertionSuccess();
  }
  std::string reason = closed ? "the exporter closed its output (exited?) before listening"
                              : "no \"Listening on\" log line within 10 s";
  return testing::AssertionFailure() << reason << "\nconfig:\n"
                                     << config_yaml << "\nexporter log:\n"
                                     << LogTail();
}

void ProcessOutput::Start(int fd) {
  thread_ = std::thread([this, fd] { Drain(fd); });
}

void ProcessOutput::Drain(int fd) {
  char buffer[8192];
  while (true) {
    ssize_t n = read(fd, buffer, sizeof buffer);
    if (n < 0 && errno == EINTR) continue;
    std::lock_guard lock(mutex_);
    if (n <= 0) {
      closed_ = true;
      changed_.notify_all();
      break;
    }
    text_.append(buffer, static_cast<size_t>(n));
    changed_.notify_all();
  }
  close(fd);
}

std::optional<int> ProcessOutput::WaitForListeningPort(std::chrono::milliseconds timeout, bool* closed) {
  std::optional<int> port;
  std::unique_lock lock(mutex_);
  changed_.wait_for(lock, timeout, [&] {
    port = ListeningPort(text_);
    return port.has_value() || closed_;
  });
  if (closed != nullptr) *closed = closed_;
  return port;
}

void ProcessOutput::Join() {
  if (thread_.joinable()) thread_.join();
}

std::string ProcessOutput::Text() const {
  std::lock_guard lock(mutex_);
  return text_;
}

std::string ProcessOutput::Tail(size_t bytes) const {
  std::lock_guard lock(mutex_);
  if (text_.size() <= bytes) return text_;
  return "[...]" + text_.substr(text_.size() - bytes);
}

HttpResult ExporterProcess::Get(const std::string& path, const std::vector<std::string>& headers) const {
  return HttpGet("127.0.0.1", port_, path, headers);
}

testing::AssertionResult ExporterProcess::Scrape(Metrics* metrics, std::string* body) const {
  HttpResult result = Get("/metrics");
  if (!result.response) return testing::AssertionFailure() << "GET /metrics failed: " << result.error;
  if (body) *body = result.response->body;
  if (result.response->status != 200) {
    return testing::AssertionFailure() << "GET /metrics returned " << result.response->status << ":\n"
                                       << result.response->body;
  }
  ParseResult parsed = ParsePrometheusText(result.response->body);
  if (!parsed.ok()) {
    return testing::AssertionFailure() << "/metrics does not parse: " << parsed.error << "\nbody:\n"
                                       << result.response->body;
  }
  if (metrics) *metrics = std::move(parsed.metrics);
  return testing::AssertionSuccess();
}

testing::AssertionResult ExporterProcess::WaitFor(std::string_view description,
                                                  const std::function<bool(const Metrics&)>& condition,
                                                  Metrics* last, milliseconds timeout) const {
  auto deadline = Clock::now() + timeout;
  std::string body;
  std::string last_error;
  while (true) {
    Metrics metrics;
    auto scraped = Scrape(&metrics, &body);
    if (scraped && condition(metrics)) {
      if (last) *last = std::move(metrics);
      return testing::AssertionSuccess();
    }
    last_error = scraped ? "" : scraped.message();
    if (Clock::now() >= deadline) break;
    std::this_thread::sleep_for(milliseconds(20));  // the scrape period, not a synchronisation
  }
  return testing::AssertionFailure() << "timed out after " << timeout.count()
                                     << " ms waiting for: " << description << "\n"
                                     << (last_error.empty() ? "" : "last scrape error: " + last_error + "\n")
                                     << "last scrape (pidfd_ series):\n"
                                     << PidfdSeries(body) << "exporter log (tail):\n"
                                     << LogTail();
}

std::optional<ExporterExit> ExporterProcess::Stop(milliseconds timeout, int signal_number) {
  if (!running()) return std::nullopt;
  auto start = Clock::now();
  kill(pid_, signal_number);
  if (!WaitForExit(pidfd_, timeout)) {
    KillAndReap();
    return std::nullopt;
  }
  ExporterExit exit;
  exit.elapsed = std::chrono::duration_cast<milliseconds>(Clock::now() - start);
  while (waitpid(pid_, &exit.status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  output_.Join();
  return exit;
}

std::vector<ExporterProcess::PidfdTarget> ExporterProcess::PidfdTargets() const {
  std::vector<PidfdTarget> targets;
  std::string process_directory = "/proc/" + std::to_string(pid_);
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(process_directory + "/fd", error)) {
    std::error_code link_error;
    auto link = std::filesystem::read_symlink(entry.path(), link_error);
    if (link_error || link.string() != "anon_inode:[pidfd]") continue;
    std::ifstream fdinfo(process_directory + "/fdinfo/" + entry.path().filename().string());
    PidfdTarget target;
    for (std::string line; std::getline(fdinfo, line);) {
      if (line.starts_with("Pid:")) target.pid = std::atoi(line.c_str() + 4);
      if (line.starts_with("ino:")) target.inode = std::strtoull(line.c_str() + 4, nullptr, 10);
    }
    targets.push_back(target);
  }
  return targets;
}

std::string ExporterProcess::Log() const {
  return output_.Text();
}

std::string ExporterProcess::LogTail(size_t bytes) const {
  return output_.Tail(bytes);
}

}  // namespace integration
