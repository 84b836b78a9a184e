// Micro-benchmarks of the exporter's hot functions (scenario 6 of BENCHMARKS.md).
//   ParseStat            one /proc/PID/stat line (tests/fixtures/proc/ordinary/stat)
//   ProcessSets::Match   N sets (1, 10, 100) of comm or cmdline matchers; the process
//                        matches the LAST set (worst case: every set is tried)
//   Metrics::Serialize   100 and 1000 sets with every series present
//   Tracker exit+reap    one watched process's exit and reap through the tracker's
//                        public OnPidfdEvent(): the user-space work per lifecycle after
//                        epoll reported it (epoll_wait itself is not included)
//   ReapWatch round      10,000 lingering zombies on kernels < 6.9: one round of
//                        TakeDue() + CheckedStillZombie() for every key due (the scheduling
//                        only; the checks' own system calls are not included)
#include <benchmark/benchmark.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/syscall.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "config.h"
#include "event_loop.h"
#include "exit_resources.h"
#include "kernel_log.h"
#include "metrics.h"
#include "pidfd.h"
#include "process_set.h"
#include "procfs.h"
#include "reap_watch.h"
#include "tracker.h"

namespace pe = pidfd_exporter;

namespace {

constexpr char kStatLine[] =
    "5037 (sleep) S 4996 4993 2893 0 -1 4194560 304 0 1 0 0 0 0 0 20 0 1 0 57594 2990080 427 "
    "18446744073709551615 93828916613120 93828916631049 140734181808224 0 0 0 0 16781312 0 1 0 0 17 1 0 0 0 "
    "0 0 "
    "93828916645136 93828916646400 93829236330496 140734181812246 140734181812257 140734181812257 "
    "140734181814253 0\n";

pe::Config MustParse(const std::string& yaml) {
  pe::ConfigResult result = pe::ParseConfig(yaml, "bench.yml");
  if (!result.config) {
    for (const auto& error : result.errors) fprintf(stderr, "%s\n", error.ToString().c_str());
    abort();
  }
  return *result.config;
}

// N sets; set i matches comm c<i> (kind 0) or cmdline regex "--id=<i>\b" (kind 1).
std::string SetsYaml(int n, int kind) {
  std::string yaml = "process_sets:\n";
  for (int i = 0; i < n; ++i) {
    char line[160];
    if (kind == 0)
      snprintf(line, sizeof line, "  - name: c%04d\n    comm: [c%04d]\n", i, i);
    else
      snprintf(line, sizeof line, "  - name: s%04d\n    cmdline: ['--id=%04d\\b']\n", i, i);
    yaml += line;
  }
  yaml += "limits:\n  max_sets: 5000\n";
  return yaml;
}

void BM_ParseStat(benchmark::State& state) {
  for (auto _ : state) {
    auto stat = pe::ParseStat(kStatLine);
    benchmark::DoNotOptimize(stat);
  }
}
BENCHMARK(BM_ParseStat);

// Issue 13's work per process lifecycle on the exit path: its record summed (RecordRead) and the
// sum handed to a claim (Claim), for a single-threaded process; the metric updates are not
// included (ExitResourcesObserved: 5 atomic adds and a histogram observation).
static void BM_ExitResourcesRecordAndClaim(benchmark::State& state) {
  size_t delivered = 0;
  pidfd_exporter::ExitResources resources(
      [&delivered](size_t, const pidfd_exporter::ProcessResources&) { ++delivered; });
  pidfd_exporter::TaskExitRecord record;
  record.group_dead = true;
  record.exit_code = 0;
  record.user_microseconds = 1000;
  record.system_microseconds = 500;
  record.runtime_nanoseconds = 1'600'000;
  record.peak_rss_kib = 4096;
  int pid = 1000;
  for (auto _ : state) {
    record.pid = record.tgid = pid;
    resources.RecordRead(record, 1);
    resources.Claim(pid, 0u, 1, 1);
    pid = pid == 4'000'000 ? 1000 : pid + 1;
  }
  benchmark::DoNotOptimize(delivered);
}
BENCHMARK(BM_ExitResourcesRecordAndClaim);

// The same with the eBPF probe's final run times (exporter/final_runtime_probe.h): the record,
// the claim and the main thread's free, whose extra CPU is delivered at once.
static void BM_ExitResourcesRecordClaimAndFree(benchmark::State& state) {
  size_t delivered = 0;
  pidfd_exporter::ExitResources resources(
      [&delivered](size_t, const pidfd_exporter::ProcessResources&) { ++delivered; });
  resources.ExpectFinalRuntimes([&delivered](size_t, const pidfd_exporter::FinalCpu&) { ++delivered; });
  pidfd_exporter::TaskExitRecord record;
  record.group_dead = true;
  record.user_microseconds = 1000;
  record.system_microseconds = 500;
  record.runtime_nanoseconds = 1'600'000;
  record.peak_rss_kib = 4096;
  pidfd_exporter::FinalRuntime freed{0, 0, 2'000'000, 1'000'000, 600'000, 0, 0};
  int pid = 1000;
  for (auto _ : state) {
    record.pid = record.tgid = freed.pid = freed.tgid = pid;
    resources.RecordRead(record, 1);
    resources.Claim(pid, 0u, 1, 1);
    resources.FinalRuntimeRead(freed, 1);
    pid = pid == 4'000'000 ? 1000 : pid + 1;
  }
  benchmark::DoNotOptimize(delivered);
}
BENCHMARK(BM_ExitResourcesRecordClaimAndFree);

// A free of a process nobody watches whose records were read (nearly every free on a host).
static void BM_ExitResourcesUnwatchedFree(benchmark::State& state) {
  pidfd_exporter::ExitResources resources([](size_t, const pidfd_exporter::ProcessResources&) {});
  resources.ExpectFinalRuntimes([](size_t, const pidfd_exporter::FinalCpu&) {});
  pidfd_exporter::TaskExitRecord record;
  record.group_dead = true;
  record.runtime_nanoseconds = 1'600'000;
  pidfd_exporter::FinalRuntime freed{0, 0, 2'000'000, 0, 0, 0, 0};
  for (int pid = 1000; pid <= 11'000; ++pid) {
    record.pid = record.tgid = pid;
    resources.RecordRead(record, 1);
  }
  int pid = 1000;
  for (auto _ : state) {
    freed.pid = freed.tgid = pid;
    resources.FinalRuntimeRead(freed, 1);
    pid = pid == 11'000 ? 1000 : pid + 1;
  }
}
BENCHMARK(BM_ExitResourcesUnwatchedFree);

// One /dev/kmsg record that is no OOM kill (what nearly every record is).
static void BM_ParseKernelLogRecordOther(benchmark::State& state) {
  const std::string record = "6,1234,5678901,-;EXT4-fs (vda): mounted filesystem with ordered data mode\n";
  for (auto _ : state) benchmark::DoNotOptimize(pidfd_exporter::ParseKernelLogRecord(record));
}
BENCHMARK(BM_ParseKernelLogRecordOther);

void BM_MatchComm(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  pe::ProcessSets sets(MustParse(SetsYaml(n, 0)));
  pe::ProcessAttributes process;
  process.pid = 1234;
  char comm[16];
  snprintf(comm, sizeof comm, "c%04d", n - 1);
  process.comm = comm;
  process.argv = {"/usr/bin/worker", "--id=0001"};
  for (auto _ : state) {
    auto match = sets.Match(process);
    if (!match) state.SkipWithError("no match");
    benchmark::DoNotOptimize(match);
  }
}
BENCHMARK(BM_MatchComm)->Arg(1)->Arg(10)->Arg(100);

void BM_MatchCmdline(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  pe::ProcessSets sets(MustParse(SetsYaml(n, 1)));
  pe::ProcessAttributes process;
  process.pid = 1234;
  process.comm = "worker";
  char id[32];
  snprintf(id, sizeof id, "--id=%04d", n - 1);
  process.argv = {"/usr/bin/worker", "--config", "/etc/worker/worker.conf", id, "--verbose"};
  for (auto _ : state) {
    auto match = sets.Match(process);
    if (!match) state.SkipWithError("no match");
    benchmark::DoNotOptimize(match);
  }
}
BENCHMARK(BM_MatchCmdline)->Arg(1)->Arg(10)->Arg(100);

// The metric updates of one exited process's resources (ExitAccounting::ExitResourcesCounted).
void BM_ExitResourcesObserved(benchmark::State& state) {
  pe::Config config = MustParse(SetsYaml(1, 0));
  pe::Metrics metrics(config);
  const size_t slot = metrics.SetSlot("c0000", "c0000");
  for (auto _ : state) metrics.ExitResourcesObserved(slot, 0.012, 0.003, 4 << 20, 0, 4096);
}
BENCHMARK(BM_ExitResourcesObserved);

// Every set has processes, exits with two codes, reap latencies and lifetimes observed.
void BM_Serialize(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  pe::Config config = MustParse(SetsYaml(n, 0));
  pe::Metrics metrics(config);
  std::vector<std::string> names;
  for (int i = 0; i < n; ++i) {
    char name[16];
    snprintf(name, sizeof name, "c%04d", i);
    names.push_back(name);
  }
  metrics.CreateFixedSets(names);
  for (int i = 0; i < n; ++i) {
    const size_t slot = metrics.SetSlot(names[i], names[i]);
    metrics.ProcessJoined(slot);
    metrics.ExitCounted(slot, "exited", "0", 1.7e9);
    metrics.ExitCounted(slot, "killed", "SIGKILL", 1.7e9);
    metrics.ReapLatencyObserved(slot, 0.002);
    metrics.LifetimeObserved(slot, 3.0);
  }
  size_t bytes = 0;
  for (auto _ : state) {
    std::string text = metrics.Serialize();
    bytes = text.size();
    benchmark::DoNotOptimize(text);
  }
  state.counters["bytes"] = static_cast<double>(bytes);
  state.SetBytesProcessed(static_cast<int64_t>(bytes) * state.iterations());
}
BENCHMARK(BM_Serialize)->Arg(100)->Arg(1000)->Unit(benchmark::kMicrosecond);

// --- Sets that come and go (limits.idle_set_timeout) ----------------------------------

// One process's life in its set (join, exit, latency, lifetime, leave): the hot path that
// now checks the slot handle's generation on every call.
void BM_SetUpdates(benchmark::State& state) {
  pe::Config config;
  pe::Metrics metrics(config);
  const size_t slot = metrics.SetSlot("bench", "{{.Comm}}");
  for (auto _ : state) {
    metrics.ProcessJoined(slot);
    metrics.ExitCounted(slot, "exited", "0", 1.7e9);
    metrics.ReapLatencyObserved(slot, 0.002);
    metrics.LifetimeObserved(slot, 3.0);
    metrics.ProcessLeft(slot);
  }
}
BENCHMARK(BM_SetUpdates);

// One idle sweep over N live sets of which none expires (every set has a member): the cost
// of ExpireIdleSets each tenth of the timeout.
void BM_IdleSweep(benchmark::State& state) {
  const int n = static_cast<int>(state.range(0));
  pe::Config config;
  config.max_sets = static_cast<size_t>(n);
  pe::Metrics metrics(config);
  for (int i = 0; i < n; ++i) metrics.ProcessJoined(metrics.SetSlot("s" + std::to_string(i), "{{.Comm}}"));
  auto now = std::chrono::steady_clock::now();
  for (auto _ : state) {
    now += std::chrono::seconds(1);
    benchmark::DoNotOptimize(metrics.ExpireIdleSets(now));
  }
}
BENCHMARK(BM_IdleSweep)->Arg(256)->Arg(4096);

// A name that comes and goes: its set created with all series, one exit, expired with all
// series (the table entry reused). Per name.
void BM_SetChurn(benchmark::State& state) {
  pe::Config config;
  config.idle_set_timeout = std::chrono::milliseconds(1);
  pe::Metrics metrics(config);
  auto now = std::chrono::steady_clock::now();
  uint64_t name = 0;
  for (auto _ : state) {
    const size_t slot = metrics.SetSlot("n" + std::to_string(name++), "{{.Comm}}");
    metrics.ProcessJoined(slot);
    metrics.ExitCounted(slot, "exited", "0", 1.7e9);
    metrics.ProcessLeft(slot);
    metrics.ExpireIdleSets(now);
    now += std::chrono::seconds(1);
    metrics.ExpireIdleSets(now);
  }
  state.counters["table"] = static_cast<double>(metrics.SetCount());
}
BENCHMARK(BM_SetChurn);

// --- Tracker: exit + reap of one watched process ---------------------------------------

constexpr int kTrackerChildren = 2000;

struct TrackerFixture {
  std::unique_ptr<pe::EventLoop> loop;
  std::unique_ptr<pe::Metrics> metrics;
  std::unique_ptr<pe::Tracker> tracker;
  std::vector<pid_t> pids;
  std::vector<uint64_t> keys;

  explicit TrackerFixture(int children) {
    const pe::Config config = MustParse(
        "process_sets:\n  - name: mbkid\n    comm: [mbkid]\ndiscovery:\n  scan_interval: 1h\n  "
        "proc_connector: off\n");
    std::string error;
    loop = pe::EventLoop::Create(&error);
    metrics = std::make_unique<pe::Metrics>(config);
    pe::TrackerOptions options;
    options.features = pe::ProbeKernelFeatures();
    options.can_read_other_exit_codes = geteuid() == 0;
    pe::Pidfd::SetReapIsPolled(options.features.reap_events);
    tracker = pe::Tracker::Create(loop.get(), metrics.get(), config, options, &error);
    if (!tracker) {
      fprintf(stderr, "tracker: %s\n", error.c_str());
      abort();
    }
    int ready[2];
    if (pipe(ready) != 0) abort();
    for (int i = 0; i < children; ++i) {
      const pid_t pid = fork();
      if (pid == 0) {
        prctl(PR_SET_NAME, "mbkid");
        prctl(PR_SET_PDEATHSIG, SIGKILL);
        char c = 1;
        if (write(ready[1], &c, 1) != 1) _exit(1);
        for (;;) pause();
      }
      pids.push_back(pid);
    }
    for (int got = 0; got < children;) {
      char c[256];
      const ssize_t r = read(ready[0], c, sizeof c);
      if (r <= 0) abort();
      got += static_cast<int>(r);
    }
    close(ready[0]);
    close(ready[1]);
    for (pid_t pid : pids) {
      // The tracker keys processes by pidfs inode (6.9+): the same for every pidfd.
      const int fd = static_cast<int>(syscall(SYS_pidfd_open, pid, 0));
      struct stat st {};
      if (fd < 0 || fstat(fd, &st) != 0) abort();
      keys.push_back(st.st_ino);
      close(fd);
    }
    tracker->Scan();
  }
  ~TrackerFixture() {
    for (pid_t pid : pids) kill(pid, SIGKILL);
    while (waitpid(-1, nullptr, WNOHANG) > 0) {
    }
  }
};

double Now() {
  timespec ts{};
  clock_gettime(CLOCK_MONOTONIC, &ts);
  return static_cast<double>(ts.tv_sec) + static_cast<double>(ts.tv_nsec) * 1e-9;
}

// EPOLLIN at the exit (zombie: the tracker reads /proc/PID/stat), then EPOLLIN|EPOLLHUP
// at the reap (the tracker reads the exit status with PIDFD_GET_INFO, observes the
// latency, closes the pidfd). Only the two OnPidfdEvent calls are timed.
void BM_TrackerExitThenReap(benchmark::State& state) {
  TrackerFixture fixture(kTrackerChildren);
  size_t i = 0;
  for (auto _ : state) {
    const pid_t pid = fixture.pids[i];
    kill(pid, SIGKILL);
    siginfo_t info{};
    waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT);
    double t0 = Now();
    fixture.tracker->OnPidfdEvent(fixture.keys[i], EPOLLIN);
    double elapsed = Now() - t0;
    waitpid(pid, nullptr, 0);
    t0 = Now();
    fixture.tracker->OnPidfdEvent(fixture.keys[i], EPOLLIN | EPOLLHUP);
    elapsed += Now() - t0;
    state.SetIterationTime(elapsed);
    ++i;
  }
}
BENCHMARK(BM_TrackerExitThenReap)
    ->Iterations(kTrackerChildren)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

// Exit and reap in one report (the parent reaped before the loop woke up, the common case
// under a fork storm).
void BM_TrackerExitAndReapTogether(benchmark::State& state) {
  TrackerFixture fixture(kTrackerChildren);
  size_t i = 0;
  for (auto _ : state) {
    const pid_t pid = fixture.pids[i];
    kill(pid, SIGKILL);
    waitpid(pid, nullptr, 0);
    const double t0 = Now();
    fixture.tracker->OnPidfdEvent(fixture.keys[i], EPOLLIN | EPOLLHUP);
    state.SetIterationTime(Now() - t0);
    ++i;
  }
}
BENCHMARK(BM_TrackerExitAndReapTogether)
    ->Iterations(kTrackerChildren)
    ->UseManualTime()
    ->Unit(benchmark::kMicrosecond);

}  // namespace

// 10,000 zombies aged 1 min .. ~2.8 h (exits 1 s apart), checked on schedule by a loop that
// wakes at NextDeadline(): the cost of one wake-up's round. Counters: checks per round and
// ns per check. (At these ages the schedule asks ~50 * ln(10,060 / 60) ~ 256 checks/s of the
// loop for all 10,000; the benchmark runs far more rounds, so the simulated ages grow.)
void BM_ReapWatchLingeringRound(benchmark::State& state) {
  constexpr int64_t kSecond = 1'000'000'000;
  pe::ReapWatch watch(pe::ReapWatchOptions{.max_checks_per_second = 0});
  const int64_t start = 20'000 * kSecond;
  for (uint64_t key = 0; key < 10'000; ++key) {
    watch.Add(key, start - 60 * kSecond - static_cast<int64_t>(key) * kSecond, start);
  }
  std::vector<uint64_t> due;
  int64_t checks = 0;
  int64_t now = start;
  for (auto _ : state) {
    now = *watch.NextDeadline();
    watch.TakeDue(now, &due);
    for (uint64_t key : due) watch.CheckedStillZombie(key, now);
    checks += static_cast<int64_t>(due.size());
  }
  state.counters["checks_per_round"] = benchmark::Counter(static_cast<double>(checks) / state.iterations());
  state.counters["per_check"] = benchmark::Counter(static_cast<double>(checks),
                                                   benchmark::Counter::kIsRate | benchmark::Counter::kInvert);
}
BENCHMARK(BM_ReapWatchLingeringRound);

// The worst round: all 10,000 due at once (a burst of exits 1 ms ago), every one handed out
// and rescheduled. Time per iteration = one round of 10,000 checks' scheduling.
void BM_ReapWatchAllDueRound(benchmark::State& state) {
  constexpr int64_t kMillisecond = 1'000'000;
  pe::ReapWatch watch(pe::ReapWatchOptions{.max_checks_per_second = 0});
  for (uint64_t key = 0; key < 10'000; ++key) watch.Add(key, 0, 0);
  std::vector<uint64_t> due;
  int64_t now = 0;
  for (auto _ : state) {
    now += 100'000 * kMillisecond;  // everyone due again, each round
    watch.TakeDue(now, &due);
    for (uint64_t key : due) watch.Add(key, now, now);  // age 0 again: same work every round
    if (due.size() != 10'000) state.SkipWithError("not all due");
  }
  state.SetItemsProcessed(state.iterations() * 10'000);
}
BENCHMARK(BM_ReapWatchAllDueRound)->Unit(benchmark::kMicrosecond);

// One reap check of a zombie on a kernel < 6.9 (a real zombie child of this process): the
// signal-0 way Pidfd::IsReaped() takes there, and the fdinfo way it falls back to.
struct ZombieChild {
  pid_t pid = fork();
  pe::Pidfd pidfd;
  ZombieChild() {
    if (pid == 0) _exit(0);
    siginfo_t info{};
    waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT);
    int error = 0;
    pidfd = pe::Pidfd::Open(pid, &error);
  }
  ~ZombieChild() { waitpid(pid, nullptr, 0); }
};

void BM_ReapCheckSignalZero(benchmark::State& state) {
  pe::Pidfd::SetReapIsPolled(false);
  ZombieChild zombie;
  for (auto _ : state) {
    if (zombie.pidfd.IsReaped()) state.SkipWithError("reaped?");
  }
}
BENCHMARK(BM_ReapCheckSignalZero);

void BM_ReapCheckFdinfo(benchmark::State& state) {
  ZombieChild zombie;
  for (auto _ : state) {
    if (zombie.pidfd.ReapedPerFdinfo()) state.SkipWithError("reaped?");
  }
}
BENCHMARK(BM_ReapCheckFdinfo);

BENCHMARK_MAIN();
