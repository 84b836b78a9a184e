// main: flags → config → wiring of event loop, tracker, metrics and HTTP server; the
// signal mask (SIGTERM/SIGINT stop, SIGHUP reloads, all read through a signalfd on the
// loop thread); exit codes (0 clean stop or valid config, 1 any start-up error).
#include <malloc.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <future>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "build_info.h"
#include "cgroup_oom_counter.h"
#include "config.h"
#include "event_loop.h"
#include "final_runtime_probe.h"
#include "http_server.h"
#include "kernel_log.h"
#include "log.h"
#include "metrics.h"
#include "oom_attribution.h"
#include "pidfd.h"
#include "proc_connector.h"
#include "status_page.h"
#include "taskstats.h"
#include "tracker.h"
#include "unique_fd.h"
#include "web_config.h"

namespace pidfd_exporter {
namespace {

constexpr char kDefaultConfigPath[] = "/etc/pidfd_exporter/config.yml";

double UnixNow() {
  return std::chrono::duration<double>(std::chrono::system_clock::now().time_since_epoch()).count();
}

// Asks the scheduler (EEVDF, Linux 6.12+) for a short time slice for the calling thread: a
// woken task with a short slice preempts the running one at once instead of waiting for its
// slice to end. The connector's events must be handled while the process that caused them is
// still there (an exec'd program may live for a few hundred microseconds); with the default
// slice the loop waited ~0.4 ms behind the very process it had to look at. Older kernels
// reject the field (EINVAL): nothing changes then. No privilege needed.
void RequestShortSchedulerSlice() {
  struct {
    uint32_t size, sched_policy;
    uint64_t sched_flags;
    int32_t sched_nice;
    uint32_t sched_priority;
    uint64_t sched_runtime, sched_deadline, sched_period;
    uint32_t sched_util_min, sched_util_max;
  } attributes{};
  attributes.size = sizeof attributes;
  attributes.sched_policy = 0;  // SCHED_OTHER
  attributes.sched_nice = getpriority(PRIO_PROCESS, 0);
  attributes.sched_runtime = 100 * 1000;  // 100 µs, the smallest slice the kernel accepts
  if (syscall(SYS_sched_setattr, 0, &attributes, 0) != 0) {
    LogDebug("No short scheduler slice (kernel < 6.12?)", {{"err", strerror(errno)}});
  }
}

std::string VersionText() {
  return std::string("pidfd_exporter, version ") + kVersion + " (revision: " + kRevision +
         ")\n  build date: " + kBuildDate + "\n";
}

std::string JoinErrors(const std::vector<ConfigError>& errors) {
  std::string text;
  for (const auto& error : errors) text += error.ToString() + "\n";
  return text;
}

// Root, or CAP_SYS_PTRACE in the effective set: then /proc/PID/stat field 52 is readable
// for every process (ptrace_may_access in PTRACE_MODE_READ).
bool CanReadOtherExitCodes() {
  if (geteuid() == 0) return true;
  FILE* status = fopen("/proc/self/status", "re");
  if (!status) return false;
  char line[256];
  unsigned long long effective = 0;
  while (fgets(line, sizeof line, status)) {
    if (sscanf(line, "CapEff: %llx", &effective) == 1) break;
  }
  fclose(status);
  constexpr int kCapSysPtrace = 19;
  return (effective >> kCapSysPtrace) & 1;
}

// One pidfd per watched process: raise the soft descriptor limit to the hard one.
void RaiseFileLimit() {
  rlimit limit{};
  if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
  if (limit.rlim_cur < limit.rlim_max) {
    limit.rlim_cur = limit.rlim_max;
    setrlimit(RLIMIT_NOFILE, &limit);
  }
  LogInfo("File descriptor limit", {{"soft", std::to_string(limit.rlim_cur)}});
}

struct Flags {
  std::string config_file = kDefaultConfigPath;
  bool config_file_given = false;
  bool config_check = false;
  std::vector<std::string> listen_addresses{":9721"};
  std::string telemetry_path = "/metrics";
  std::string web_config_file;
  int max_requests = 40;
  int max_connections = 1024;
  std::string request_head_timeout = "3s";
  std::string procfs = "/proc";
  std::string log_level = "info";
  std::string log_format = "logfmt";
  std::string disable_kernel_features;  // hidden: --debug.disable-kernel-features
};

ConfigResult LoadInitialConfig(const Flags& flags) {
  if (flags.config_file_given) return LoadConfigFile(flags.config_file);
  struct stat ignored {};
  if (stat(flags.config_file.c_str(), &ignored) == 0) return LoadConfigFile(flags.config_file);
  LogInfo("No config file, using the built-in default config", {{"missing", flags.config_file}});
  return ParseConfig(kBuiltinConfig, "<built-in>");
}

// Step 1: flags, and the log they configure. An exit code when the process must end here.
std::optional<int> ParseFlags(int argc, char** argv, Flags* flags) {
  CLI::App app{"pidfd_exporter: Prometheus exporter for process exits, reap latency and zombies"};
  app.set_version_flag("--version", VersionText());
  app.add_option("--config.file", flags->config_file,
                 "Process-set config file (default: " + std::string(kDefaultConfigPath) +
                     ", or the built-in default when that does not exist)");
  app.add_flag("--config.check", flags->config_check, "Validate the config file, print errors and exit 0/1");
  app.add_option("--web.listen-address", flags->listen_addresses,
                 "Address to listen on; repeatable; ':P' means all IPv4 addresses, '[::1]:P' IPv6")
      ->default_str(":9721");
  app.add_option("--web.telemetry-path", flags->telemetry_path, "Path under which to expose metrics")
      ->default_str("/metrics");
  app.add_option("--web.config.file", flags->web_config_file,
                 "exporter-toolkit web config file (basic_auth_users, tls_server_config)");
  app.add_option("--web.max-requests", flags->max_requests,
                 "Scrapes served at once; more answer 503 at once (0 = no limit)")
      ->default_str("40");
  app.add_option("--web.max-connections", flags->max_connections,
                 "Client connections open at once; past it the oldest without a complete request is closed")
      ->default_str("1024");
  app.add_option("--web.request-head-timeout", flags->request_head_timeout,
                 "Time from connect to a complete request head, TLS handshake included")
      ->default_str("3s");
  app.add_option("--path.procfs", flags->procfs, "procfs mountpoint")->default_str("/proc");
  app.add_option("--log.level", flags->log_level, "debug, info, warn or error")->default_str("info");
  app.add_option("--log.format", flags->log_format, "logfmt or json")->default_str("logfmt");
  // Hidden (empty group): runs the fallbacks of older kernels on a new one, for tests/vm/.
  app.add_option("--debug.disable-kernel-features", flags->disable_kernel_features)->group("");
  try {
    app.parse(argc, argv);
  } catch (const CLI::ParseError& error) {
    return app.exit(error);
  }
  flags->config_file_given = app.count("--config.file") > 0;
  LogLevel level;
  LogFormat format;
  if (!ParseLogLevel(flags->log_level, &level)) {
    std::cerr << "pidfd_exporter: --log.level must be debug, info, warn or error, not \"" << flags->log_level
              << "\"\n";
    return 1;
  }
  if (!ParseLogFormat(flags->log_format, &format)) {
    std::cerr << "pidfd_exporter: --log.format must be logfmt or json, not \"" << flags->log_format << "\"\n";
    return 1;
  }
  ConfigureLog(level, format);
  return std::nullopt;
}

// --config.check: the config's verdict as an exit code.
int CheckConfig(const ConfigResult& loaded) {
  if (!loaded.config) {
    std::cerr << JoinErrors(loaded.errors);
    return 1;
  }
  std::cout << loaded.config->source << ": config is valid (" << loaded.config->process_sets.size()
            << " process sets)\n";
  return 0;
}

// Step 2: the exporter-toolkit web config, read once: user and TLS setting changes need a
// restart (the certificate and key files themselves are re-read when they change, tls_context.h).
std::optional<WebConfig> LoadWebConfigFlag(const Flags& flags) {
  if (flags.web_config_file.empty()) return WebConfig{};
  WebConfigResult web_loaded = LoadWebConfig(flags.web_config_file);
  if (!web_loaded.config) {
    LogError("Invalid web config",
             {{"file", flags.web_config_file}, {"errors", JoinErrors(web_loaded.errors)}});
    return std::nullopt;
  }
  for (const std::string& warning : web_loaded.config->warnings)
    LogWarn("Web config", {{"warning", warning}});
  return std::move(*web_loaded.config);
}

// Step 3: the process itself, before any thread exists: memory arenas, the descriptor limit,
// the kernel's features (the probe forks), less those --debug.disable-kernel-features hides.
// nullopt after an unknown feature name. `kernel_has_reap_events`: before hiding.
std::optional<KernelFeatures> PrepareProcess(const Flags& flags, bool* kernel_has_reap_events) {
  // Glibc gives every HTTP thread its own malloc arena; two are plenty for this workload
  // and keep RSS flat under heavy scraping.
  mallopt(M_ARENA_MAX, 2);
  // A scrape's text (1.5 MB at 1,000 sets) is allocated on the gate's scrape thread and freed
  // on the gate thread. With glibc's defaults that memory went back to the kernel after every
  // scrape and was faulted in again on the next: 2 ms of a 4.8 ms scrape. Buffers up to 4 MiB
  // come from the arenas and 8 MiB may stay free in them; the RSS after 20 scrapes of 1,000
  // sets is then what it was when CivetWeb rendered them (16.9 against 16.3 MB), and it does
  // not change with few sets (BENCHMARKS.md, section 1).
  mallopt(M_MMAP_THRESHOLD, 4 << 20);
  mallopt(M_TRIM_THRESHOLD, 8 << 20);
  RaiseFileLimit();
  KernelFeatures features = ProbeKernelFeatures();
  *kernel_has_reap_events = features.reap_events;
  if (std::string unknown; !DisableKernelFeatures(flags.disable_kernel_features, &features, &unknown)) {
    std::cerr << "pidfd_exporter: --debug.disable-kernel-features: " << unknown << "\n";
    return std::nullopt;
  }
  if (!flags.disable_kernel_features.empty()) {
    LogWarn("Kernel features disabled for testing: the fallbacks of older kernels run",
            {{"debug.disable-kernel-features", flags.disable_kernel_features}});
  }
  Pidfd::SetReapIsPolled(features.reap_events);
  LogInfo("Kernel features",
          {{"pidfd_open", features.pidfd_open ? "yes" : "no"},
           {"reap_events", features.reap_events ? "yes" : "no (kernel < 6.9: reaps found by checks)"},
           {"get_info", features.get_info ? "yes" : "no"},
           {"exit_status", features.exit_status ? "yes" : "no (kernel < 6.15: /proc fallback)"},
           {"pidfs_identity", features.pidfs_identity ? "yes" : "no"}});
  return features;
}

// Blocks the signals the exporter handles in every thread (threads inherit the mask, so they
// reach only the signalfd on the loop thread).
UniqueFd BlockHandledSignals() {
  sigset_t handled;
  sigemptyset(&handled);
  sigaddset(&handled, SIGTERM);
  sigaddset(&handled, SIGINT);
  sigaddset(&handled, SIGHUP);
  pthread_sigmask(SIG_BLOCK, &handled, nullptr);
  return UniqueFd(signalfd(-1, &handled, SFD_CLOEXEC | SFD_NONBLOCK));
}

std::unique_ptr<Tracker> CreateTracker(EventLoop* loop, Metrics* metrics, const Config& config,
                                       const Flags& flags, const KernelFeatures& features) {
  TrackerOptions options;
  options.procfs_root = flags.procfs;
  options.features = features;
  options.can_read_other_exit_codes = CanReadOtherExitCodes();
  if (!options.can_read_other_exit_codes && !features.exit_status) {
    LogWarn(
        "Exit codes of other users' processes are unreadable: not root, no CAP_SYS_PTRACE, kernel < 6.15; "
        "their exits are counted with reason=\"unknown\"");
  }
  std::string error;
  auto tracker = Tracker::Create(loop, metrics, config, std::move(options), &error);
  if (!tracker) LogError("Cannot open procfs", {{"err", error}});
  return tracker;
}

// Step 4a: the proc connector. False when the config demands it and it is unavailable.
bool AttachConnector(const Config& config, Tracker* tracker, KernelFeatures* features) {
  if (config.proc_connector == DiscoveryMode::kOff) return true;
  std::string error;
  auto connector = ProcConnector::Open(ProcConnector::kDefaultReceiveBufferBytes, &error);
  if (connector) {
    features->proc_connector = true;
    LogInfo("Proc connector subscribed: forks, execs, renames and exits are seen as they happen",
            {{"receive_buffer_bytes", std::to_string(connector->receive_buffer_bytes())}});
    tracker->AttachConnector(std::move(connector));
    return true;
  }
  if (config.proc_connector == DiscoveryMode::kOn) {
    LogError("proc_connector: on, but the proc connector is unavailable", {{"err", error}});
    return false;
  }
  LogWarn(
      "Proc connector unavailable; discovering processes by scanning /proc only (processes shorter "
      "than the scan interval can be missed)",
      {{"err", error}});
  return true;
}

// Step 4b: taskstats exit records, read next to the connector's exit events (useless without).
bool AttachTaskstats(const Config& config, Tracker* tracker, KernelFeatures* features) {
  if (config.taskstats == DiscoveryMode::kOff) return true;
  std::string error = "needs the proc connector, which is not in use";
  std::unique_ptr<TaskstatsListener> listener;
  if (features->proc_connector)
    listener = TaskstatsListener::Open(TaskstatsListener::kDefaultReceiveBufferBytes, &error);
  if (listener) {
    features->taskstats = true;
    LogInfo("Taskstats exit records registered: programs that exec and vanish at once keep their names",
            {{"receive_buffer_bytes", std::to_string(listener->receive_buffer_bytes())}});
    tracker->AttachTaskstats(std::move(listener));
    return true;
  }
  if (config.taskstats == DiscoveryMode::kOn) {
    LogError("taskstats: on, but taskstats exit records are unavailable", {{"err", error}});
    return false;
  }
  if (!features->proc_connector) {
    // The connector's own line (off, or unavailable and why) says what is missing.
    LogInfo("Taskstats exit records not used: they are read next to the proc connector's events");
  } else {
    LogWarn(
        "Taskstats exit records unavailable; a program that execs and is reaped before its new name can be "
        "read counts as unattributed",
        {{"err", error}});
  }
  return true;
}

// Step 4c: what exited processes used, from the taskstats records (read with them or not at all).
void ReportExitResources(KernelFeatures* features) {
  if (!features->exit_resources) {
    LogInfo("Exit resources off (--debug.disable-kernel-features=exit_resources)");
  } else if (!features->taskstats) {
    features->exit_resources = false;
    LogInfo(
        "Exit resources unavailable: pidfd_process_cpu_seconds_total, pidfd_process_peak_rss_bytes and "
        "pidfd_process_io_bytes_total need taskstats exit records (CAP_NET_ADMIN, the proc connector)");
  } else {
    LogInfo(
        "Exit resources counted from taskstats exit records: CPU, peak RSS and storage I/O of exited "
        "processes");
  }
}

// Step 4d: the CPU after each exit record, from the eBPF probe where it loads.
void AttachFinalRuntimeProbe(Tracker* tracker, KernelFeatures* features) {
  std::string error = "off (--debug.disable-kernel-features=final_runtime)";
  if (!features->exit_resources) error = "needs exit resources";
  std::unique_ptr<FinalRuntimeProbe> probe;
  if (features->exit_resources && features->final_runtime) probe = FinalRuntimeProbe::Open(&error);
  features->final_runtime = probe && tracker->AttachFinalRuntimeProbe(std::move(probe));
  if (!features->final_runtime) {
    LogInfo(
        "Final run times unavailable: pidfd_process_cpu_seconds_total stops at each exit record, before "
        "the end of the exit (about 0.5 ms per process, more for large address spaces) and up to a tick "
        "after the last update of the process's run time",
        {{"err", error}});
    return;
  }
  LogInfo(
      "Final run times read by an eBPF program at sched_process_free: CPU counted as the parent's "
      "getrusage(RUSAGE_CHILDREN) counts it, the rest once the process is reaped");
}

// Step 4e: the sources that tell an OOM kill from a kill -9 (exporter/oom_attribution.h).
void AttachOomAttribution(EventLoop* loop, Metrics* metrics, Tracker* tracker, KernelFeatures* features) {
  std::unique_ptr<KernelLog> log;
  std::string log_error = "off (--debug.disable-kernel-features=oom_kernel_log)";
  if (features->oom_kernel_log) log = KernelLog::Open(&log_error);
  features->oom_kernel_log = log != nullptr;
  std::optional<CgroupOomCounter> counter;
  std::string counter_error = "off (--debug.disable-kernel-features=oom_cgroup_counter)";
  if (features->oom_cgroup_counter) counter = CgroupOomCounter::Open("/proc", &counter_error);
  features->oom_cgroup_counter = counter.has_value();
  LogInfo("OOM attribution sources",
          {{"kernel_log", log ? "yes" : "no: " + log_error},
           {"cgroup_counter",
            counter ? (counter->v2() ? "yes (cgroup v2)" : "yes (cgroup v1)") : "no: " + counter_error}});
  if (!log && !counter) {
    LogWarn("OOM kills count as reason=\"killed\" (no source can tell them from a kill -9)");
    return;
  }
  tracker->AttachOomAttribution(std::make_unique<OomAttribution>(
      loop, std::move(log), std::move(counter),
      [metrics](const std::string& operation) { metrics->CountError(operation); }));
}

// Registered but inert: worth a line, since the kernel still builds a record per exit.
void WarnIfRecordsCannotName(const KernelFeatures& features, const Tracker& tracker) {
  if (!features.taskstats || tracker.ExitRecordsCanName()) return;
  LogWarn(
      "Taskstats exit records cannot name processes under this config: a matcher or set name needs more "
      "than the process name (exe, cmdline, user, cgroup, or a name template such as the default "
      "{{.ExeBase}}); exec'd programs that vanish at once count as unattributed");
}

// Step 5: reloads (SIGHUP, POST /-/reload), on the loop thread: the file is parsed off to the
// side and swapped in at once or not at all.
class Reloader {
 public:
  Reloader(const Flags& flags, const Config& running, const KernelFeatures& features, EventLoop* loop,
           Metrics* metrics, Tracker* tracker)
      : path_(flags.config_file),
        from_file_(flags.config_file_given || running.source != "<built-in>"),
        connector_mode_(running.proc_connector),
        taskstats_mode_(running.taskstats),
        reap_latency_buckets_(running.reap_latency_buckets),
        lifetime_buckets_(running.lifetime_buckets),
        peak_rss_buckets_(running.peak_rss_buckets),
        features_(features),
        loop_(loop),
        metrics_(metrics),
        tracker_(tracker) {}
  void SetScanTimer(int timer_id) { scan_timer_id_ = timer_id; }
  void SetIdleSweepTimer(int timer_id) { idle_sweep_timer_id_ = timer_id; }

  // The errors of a refused file ("" when reloaded, or when the built-in config runs).
  std::string Reload() {
    if (!from_file_) return "";  // the built-in config cannot change
    ConfigResult next = LoadConfigFile(path_);
    if (!next.config) {
      metrics_->ConfigReloaded(false, UnixNow());
      const std::string errors = JoinErrors(next.errors);
      LogError("Reload failed, keeping the running config", {{"errors", errors}});
      return errors;
    }
    if (next.config->proc_connector != connector_mode_ || next.config->taskstats != taskstats_mode_ ||
        next.config->reap_latency_buckets != reap_latency_buckets_ ||
        next.config->lifetime_buckets != lifetime_buckets_ ||
        next.config->peak_rss_buckets != peak_rss_buckets_) {
      LogWarn(
          "discovery.proc_connector, discovery.taskstats and histogram buckets take effect at the next "
          "restart");
    }
    tracker_->ApplyConfig(*next.config);
    WarnIfRecordsCannotName(features_, *tracker_);
    loop_->RescheduleTimer(scan_timer_id_, ScanInterval(*next.config, features_.proc_connector));
    metrics_->SetIdleSetTimeout(next.config->idle_set_timeout);
    loop_->RescheduleTimer(idle_sweep_timer_id_, Metrics::IdleSweepInterval(next.config->idle_set_timeout));
    metrics_->ConfigReloaded(true, UnixNow());
    LogInfo("Config reloaded", {{"file", path_}});
    return "";
  }

  // From an HTTP thread: runs Reload() on the loop thread and waits for its answer.
  std::string ReloadFromAnotherThread() {
    auto promise = std::make_shared<std::promise<std::string>>();
    auto answer = promise->get_future();
    {
      std::lock_guard<std::mutex> lock(waiting_mutex_);
      if (abandoned_) return kShuttingDown;
      waiting_.push_back(promise);
    }
    loop_->Post([promise, this] {
      std::string errors = Reload();
      std::lock_guard<std::mutex> lock(waiting_mutex_);
      if (std::erase(waiting_, promise) > 0) promise->set_value(std::move(errors));
    });
    if (answer.wait_for(std::chrono::seconds(30)) != std::future_status::ready) return "reload timed out\n";
    return answer.get();
  }

  // Once the loop stopped (SIGTERM): a reload posted to it never runs. Every one still waiting,
  // and every later one, is answered now, so that no HTTP worker holds the shutdown (up to
  // 30 s, Kubernetes' whole default grace period).
  void Abandon() {
    std::lock_guard<std::mutex> lock(waiting_mutex_);
    abandoned_ = true;
    for (const auto& promise : waiting_) promise->set_value(kShuttingDown);
    waiting_.clear();
  }

 private:
  const std::string path_;
  const bool from_file_;
  const DiscoveryMode connector_mode_;
  const DiscoveryMode taskstats_mode_;
  const std::vector<double> reap_latency_buckets_;
  const std::vector<double> lifetime_buckets_;
  const std::vector<double> peak_rss_buckets_;
  const KernelFeatures& features_;
  EventLoop* loop_;
  Metrics* metrics_;
  Tracker* tracker_;
  int scan_timer_id_ = -1;
  int idle_sweep_timer_id_ = -1;
  static constexpr char kShuttingDown[] = "the exporter is shutting down\n";
  std::mutex waiting_mutex_;
  bool abandoned_ = false;
  std::vector<std::shared_ptr<std::promise<std::string>>> waiting_;
};

// What the status page shows, taken on an HTTP thread.
StatusSnapshot TakeStatusSnapshot(const Flags& flags, const std::string& config_source,
                                  const KernelFeatures& features, const Metrics& metrics,
                                  const Tracker& tracker) {
  StatusSnapshot snapshot;
  snapshot.version = kVersion;
  snapshot.revision = kRevision;
  snapshot.telemetry_path = flags.telemetry_path;
  snapshot.config_source = config_source;
  snapshot.now_unix_seconds = UnixNow();
  snapshot.kernel_features = {{"reap_events", features.reap_events},
                              {"exit_status", features.exit_status},
                              {"proc_connector", features.proc_connector},
                              {"taskstats", features.taskstats},
                              {"pidfs_identity", features.pidfs_identity},
                              {"oom_kernel_log", features.oom_kernel_log},
                              {"oom_cgroup_counter", features.oom_cgroup_counter},
                              {"exit_resources", features.exit_resources},
                              {"final_runtime", features.final_runtime}};
  snapshot.sets = metrics.StatusSets(snapshot.now_unix_seconds);
  snapshot.zombies = tracker.Zombies();
  AttachOldestZombies(&snapshot);
  return snapshot;
}

// Step 6: the HTTP front end.
std::unique_ptr<HttpServer> StartServer(const Flags& flags, const WebConfig& web_config, const Config& config,
                                        const KernelFeatures& features, Metrics* metrics, Tracker* tracker,
                                        Reloader* reloader) {
  HttpServerOptions options;
  options.listen_addresses = flags.listen_addresses;
  options.telemetry_path = flags.telemetry_path;
  options.basic_auth_users = web_config.basic_auth_users;
  options.tls = web_config.tls;
  options.response_headers = web_config.response_headers;
  options.max_requests = flags.max_requests;
  options.max_connections = flags.max_connections;
  const auto head_timeout = ParseDuration(flags.request_head_timeout);
  if (!head_timeout || head_timeout->count() <= 0) {
    LogError("Invalid --web.request-head-timeout", {{"value", flags.request_head_timeout}});
    return nullptr;
  }
  options.request_head_timeout_ms = static_cast<int>(std::min<int64_t>(head_timeout->count(), 3600000));
  HttpHandlers handlers;
  handlers.render_metrics = [metrics] { return metrics->Serialize(); };
  handlers.ready = [tracker] { return tracker->FirstScanDone(); };
  handlers.render_status_page = [&flags, source = config.source, &features, metrics, tracker] {
    return RenderStatusPage(TakeStatusSnapshot(flags, source, features, *metrics, *tracker));
  };
  handlers.reload = [reloader] { return reloader->ReloadFromAnotherThread(); };
  std::string error;
  auto server = HttpServer::Start(options, handlers, &error);
  if (!server) {
    LogError("Cannot start the web server", {{"err", error}});
    return nullptr;
  }
  for (const auto& address : server->ListeningAddresses()) LogInfo("Listening on", {{"address", address}});
  return server;
}

// Templated sets idle for limits.idle_set_timeout are removed (Metrics::ExpireIdleSets) by a
// timer of their own, so the sweep does not depend on how the tracker schedules its scans.
bool StartIdleSetSweep(EventLoop* loop, Metrics* metrics, Reloader* reloader, const Config& config) {
  const int timer_id = loop->AddTimer(Metrics::IdleSweepInterval(config.idle_set_timeout), [metrics] {
    metrics->ExpireIdleSets(std::chrono::steady_clock::now());
  });
  if (timer_id < 0) {
    LogError("Cannot create the idle set timer");
    return false;
  }
  reloader->SetIdleSweepTimer(timer_id);
  return true;
}

// Step 7: serve until SIGTERM or SIGINT; SIGHUP reloads. Scans run on the scan timer.
int Serve(EventLoop* loop, Tracker* tracker, Reloader* reloader, int signal_fd, const Config& config,
          bool connector_in_use) {
  bool stopping = false;
  loop->AddFd(signal_fd, EPOLLIN, [&](uint32_t) {
    signalfd_siginfo info{};
    while (read(signal_fd, &info, sizeof info) == sizeof info) {
      if (info.ssi_signo == SIGHUP) {
        LogInfo("SIGHUP: reloading the config");
        reloader->Reload();
      } else if (!stopping) {
        stopping = true;
        LogInfo("Stopping", {{"signal", SignalName(static_cast<int>(info.ssi_signo))}});
        loop->Stop();
      }
    }
  });
  const int scan_timer_id =
      loop->AddTimer(ScanInterval(config, connector_in_use), [tracker] { tracker->Scan(); });
  if (scan_timer_id < 0) {
    LogError("Cannot create the scan timer");
    return 1;
  }
  reloader->SetScanTimer(scan_timer_id);
  tracker->Scan();
  RequestShortSchedulerSlice();  // the loop thread only: the HTTP threads exist already
  loop->Run();
  return 0;
}

int Run(int argc, char** argv) {
  Flags flags;
  if (std::optional<int> exit_code = ParseFlags(argc, argv, &flags)) return *exit_code;
  ConfigResult loaded = LoadInitialConfig(flags);
  if (flags.config_check) return CheckConfig(loaded);
  if (!loaded.config) {
    LogError("Invalid config", {{"file", flags.config_file}, {"errors", JoinErrors(loaded.errors)}});
    return 1;
  }
  std::optional<WebConfig> web_config = LoadWebConfigFlag(flags);
  if (!web_config) return 1;
  const Config config = std::move(*loaded.config);
  LogInfo("Starting pidfd_exporter",
          {{"version", kVersion}, {"revision", kRevision}, {"config", config.source}});

  bool kernel_has_reap_events = false;
  std::optional<KernelFeatures> prepared = PrepareProcess(flags, &kernel_has_reap_events);
  if (!prepared) return 1;
  KernelFeatures features = *prepared;
  if (!features.pidfd_open) {
    LogError("pidfd_open(2) is not available (Linux 5.3 or newer is required)");
    return 1;
  }
  UniqueFd signal_fd = BlockHandledSignals();
  std::string error;
  auto loop = EventLoop::Create(&error);
  if (!loop) {
    LogError("Cannot create the event loop", {{"err", error}});
    return 1;
  }
  if (kernel_has_reap_events && !features.reap_events) loop->HideReapEvents();
  Metrics metrics(config);
  metrics.SetKernelFeatures(features);
  metrics.ConfigReloaded(true, UnixNow());
  auto tracker = CreateTracker(loop.get(), &metrics, config, flags, features);
  if (!tracker) return 1;
  if (!AttachConnector(config, tracker.get(), &features) ||
      !AttachTaskstats(config, tracker.get(), &features))
    return 1;
  WarnIfRecordsCannotName(features, *tracker);
  ReportExitResources(&features);
  AttachFinalRuntimeProbe(tracker.get(), &features);
  AttachOomAttribution(loop.get(), &metrics, tracker.get(), &features);
  metrics.SetKernelFeatures(features);

  Reloader reloader(flags, config, features, loop.get(), &metrics, tracker.get());
  auto server = StartServer(flags, *web_config, config, features, &metrics, tracker.get(), &reloader);
  if (!server) return 1;
  if (!StartIdleSetSweep(loop.get(), &metrics, &reloader, config)) return 1;
  const int exit_code =
      Serve(loop.get(), tracker.get(), &reloader, signal_fd.get(), config, features.proc_connector);
  reloader.Abandon();  // reloads posted to the stopped loop would wait for nothing
  server.reset();      // stop serving before the tracker and metrics go away
  if (exit_code == 0) LogInfo("Stopped");
  return exit_code;
}

}  // namespace
}  // namespace pidfd_exporter

int main(int argc, char** argv) {
  return pidfd_exporter::Run(argc, argv);
}
