// ExporterProcess runs the real pidfd_exporter binary as a black box: it writes the config to a
// private temporary directory, starts the binary on 127.0.0.1:0, learns the port from the
// "Listening on" log line, and scrapes /metrics over HTTP. A thread drains the exporter's
// stdout/stderr for the whole run so the exporter never blocks on a full pipe; the text is kept
// for failure messages. Used from the test's main thread only.
#pragma once

#include <gtest/gtest.h>
#include <signal.h>
#include <sys/types.h>

#include <chrono>
#include <condition_variable>
#include <functional>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <utility>
#include <vector>

#include "http_client.h"
#include "prometheus_text.h"

namespace integration {

// The exporter under test (CMake passes the built target's absolute path).
std::string ExporterBinary();

// A private directory under $TMPDIR (or /tmp), removed with all its content on destruction.
class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // Writes `content` to path()/name and returns the full path.
  std::string WriteFile(const std::string& name, const std::string& content) const;

 private:
  std::string path_;
};

struct CommandResult {
  int status = -1;     // raw wait status; -1 when the command could not be started
  std::string output;  // stdout and stderr, interleaved as written
  bool timed_out = false;
};

// Runs argv[0] (a path) with `input` on stdin, collecting its output; kills it after `timeout`.
CommandResult RunCommand(const std::vector<std::string>& argv, const std::string& input = "",
                         std::chrono::milliseconds timeout = std::chrono::seconds(30));

// Human-readable description of a raw wait status ("exit 0", "signal SIGKILL").
std::string DescribeWaitStatus(int status);

struct ExporterExit {
  int status = -1;                       // raw wait status
  std::chrono::milliseconds elapsed{0};  // from SIGTERM to exit
};

// The combined stdout and stderr of a child, read on a thread of its own as it comes, so that
// a test can wait for a log line while the child runs.
class ProcessOutput {
 public:
  ProcessOutput() = default;
  ~ProcessOutput() { Join(); }
  ProcessOutput(const ProcessOutput&) = delete;
  ProcessOutput& operator=(const ProcessOutput&) = delete;

  // Reads `fd` (and closes it) until the child's end is closed.
  void Start(int fd);
  // The port of the exporter's "Listening on" log line, waiting up to `timeout`; nullopt when
  // the output closed first (*closed = true) or the time ran out.
  std::optional<int> WaitForListeningPort(std::chrono::milliseconds timeout, bool* closed = nullptr);
  // Waits for the end of the output (the child exited and its descriptors closed).
  void Join();
  std::string Text() const;
  // The last `bytes` of Text(), for failure messages.
  std::string Tail(size_t bytes) const;

 private:
  void Drain(int fd);

  std::thread thread_;
  mutable std::mutex mutex_;
  std::condition_variable changed_;
  std::string text_;     // guarded by mutex_
  bool closed_ = false;  // guarded by mutex_
};

class ExporterProcess {
 public:
  ExporterProcess() = default;
  // Kills (SIGKILL) and reaps an exporter still running.
  ~ExporterProcess();
  ExporterProcess(const ExporterProcess&) = delete;
  ExporterProcess& operator=(const ExporterProcess&) = delete;

  // Starts the exporter with `config_yaml` and `extra_arguments`; succeeds once it logged the
  // address it listens on (within 10 s).
  testing::AssertionResult Start(const std::string& config_yaml,
                                 const std::vector<std::string>& extra_arguments = {});

  // A command that runs the exporter, e.g. {"/usr/bin/setpriv", "--bounding-set=-net_admin", "--"}
  // to take a capability away; it must exec the exporter in its own process. Before Start().
  void SetCommandPrefix(std::vector<std::string> prefix) { command_prefix_ = std::move(prefix); }

  int port() const { return port_; }
  pid_t pid() const { return pid_; }
  const std::string& config_path() const { return config_path_; }

  HttpResult Get(const std::string& path, const std::vector<std::string>& headers = {}) const;
  // GET /metrics, expect 200, parse strictly.
  testing::AssertionResult Scrape(Metrics* metrics, std::string* body = nullptr) const;
  // Scrapes every 20 ms until `condition` holds on a scrape (that scrape is left in *last), or
  // fails after `timeout` with the last scrape's pidfd_ series and the exporter's log.
  testing::AssertionResult WaitFor(std::string_view description,
                                   const std::function<bool(const Metrics&)>& condition,
                                   Metrics* last = nullptr,
                                   std::chrono::milliseconds timeout = std::chrono::seconds(10)) const;

  // Sends `signal_number` (SIGTERM or SIGINT) and waits up to `timeout` for the exit; nullopt
  // (after SIGKILL) if it did not exit in time.
  std::optional<ExporterExit> Stop(std::chrono::milliseconds timeout = std::chrono::seconds(10),
                                   int signal_number = SIGTERM);

  // The processes the exporter's open pidfds refer to, read from outside through
  // /proc/<exporter>/fd and fdinfo: the exact view of what it watches, unlike
  // pidfd_exporter_watched_pidfds, which also counts short-lived provisional pidfds of any
  // process forking on the machine (connector mode).
  struct PidfdTarget {
    int pid = 0;         // -1 once the process was reaped
    uint64_t inode = 0;  // pidfs inode: the process's identity, also after the reap
  };
  std::vector<PidfdTarget> PidfdTargets() const;

  // Everything the exporter wrote so far.
  std::string Log() const;
  // The last `bytes` of Log(), for failure messages.
  std::string LogTail(size_t bytes = 6000) const;

 private:
  bool running() const { return pid_ > 0; }
  void KillAndReap();

  TempDir directory_;
  std::string config_path_;
  std::vector<std::string> command_prefix_;
  pid_t pid_ = -1;
  int pidfd_ = -1;
  int port_ = 0;
  ProcessOutput output_;
};

}  // namespace integration
