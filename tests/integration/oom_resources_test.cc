// OOM kills and the resources of exited processes, on real processes and the real binary:
// a worker in a memory cgroup of its own (made under the test's own memory cgroup, removed
// afterwards) allocates past the cgroup's limit and is OOM-killed; a sibling in the same set and
// cgroup is killed with kill -9. The first must count as reason="oom_killed", the second as
// "killed" — with the kernel log, and with the cgroup counter alone. A worker that burns CPU and
// touches memory must be accounted as its own getrusage() says.
#include <fcntl.h>
#include <sys/mman.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <cmath>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>

#include "harness.h"
#include "skip_policy.h"

namespace integration {
namespace {

constexpr char kExits[] = "pidfd_process_exits_total";
constexpr char kProcesses[] = "pidfd_processes";
constexpr char kFeature[] = "pidfd_exporter_kernel_feature";

Labels ExitOf(const std::string& set, const std::string& reason) {
  return {{"set", set}, {"reason", reason}, {"code", "SIGKILL"}};
}

// A memory cgroup under the test's own (cgroup v1 "memory" hierarchy, else cgroup v2 where its
// memory controller is enabled), with a memory limit and no swap; removed on destruction.
class MemoryCgroup {
 public:
  MemoryCgroup(const std::string& name, uint64_t limit_bytes) {
    std::string mount;
    bool v2 = false;
    if (!FindMount(&mount, &v2)) {
      error_ = "no memory cgroup hierarchy is mounted";
      return;
    }
    const std::string own = OwnPath(v2);
    if (own.empty()) {
      error_ = "the test's own memory cgroup is unknown";
      return;
    }
    directory_ = mount + (own == "/" ? "" : own) + "/" + name;
    if (mkdir(directory_.c_str(), 0755) != 0) {
      error_ = "mkdir " + directory_ + ": " + std::strerror(errno);
      directory_.clear();
      return;
    }
    const std::string limit = std::to_string(limit_bytes);
    if (!WriteFile(v2 ? "memory.max" : "memory.limit_in_bytes", limit)) return;
    if (v2) WriteFile("memory.swap.max", "0");  // absent without swap accounting: fine
    procs_fd_ = open((directory_ + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (procs_fd_ < 0) error_ = "open cgroup.procs: " + std::string(std::strerror(errno));
  }
  ~MemoryCgroup() {
    if (procs_fd_ >= 0) close(procs_fd_);
    if (directory_.empty()) return;
    for (int attempt = 0; attempt < 200 && rmdir(directory_.c_str()) != 0 && errno == EBUSY; ++attempt)
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    if (access(directory_.c_str(), F_OK) == 0) ADD_FAILURE() << "could not remove " << directory_;
  }
  MemoryCgroup(const MemoryCgroup&) = delete;
  MemoryCgroup& operator=(const MemoryCgroup&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  int procs_fd() const { return procs_fd_; }
  const std::string& directory() const { return directory_; }

 private:
  static bool FindMount(std::string* mount, bool* v2) {
    std::ifstream mountinfo("/proc/self/mountinfo");
    std::string line;
    std::string v2_mount;
    while (std::getline(mountinfo, line)) {
      const size_t separator = line.find(" - ");
      if (separator == std::string::npos) continue;
      std::istringstream head(line.substr(0, separator));
      std::istringstream tail(line.substr(separator + 3));
      std::string field, point, type, source, options;
      for (int index = 0; index < 5 && head >> field; ++index) point = field;
      tail >> type >> source >> options;
      if (type == "cgroup" && ("," + options + ",").find(",memory,") != std::string::npos) {
        *mount = point;
        return true;
      }
      if (type == "cgroup2" && v2_mount.empty()) v2_mount = point;
    }
    std::ifstream controllers(v2_mount + "/cgroup.controllers");
    std::string list;
    std::getline(controllers, list);
    if (v2_mount.empty() || (" " + list + " ").find(" memory ") == std::string::npos) return false;
    *mount = v2_mount;
    *v2 = true;
    return true;
  }
  static std::string OwnPath(bool v2) {
    std::ifstream cgroup("/proc/self/cgroup");
    std::string line;
    while (std::getline(cgroup, line)) {
      const size_t first = line.find(':');
      const size_t second = line.find(':', first + 1);
      if (first == std::string::npos || second == std::string::npos) continue;
      const std::string controllers = line.substr(first + 1, second - first - 1);
      const bool wanted =
          v2 ? line.rfind("0::", 0) == 0 : ("," + controllers + ",").find(",memory,") != std::string::npos;
      if (wanted) return line.substr(second + 1);
    }
    return "";
  }
  bool WriteFile(const std::string& file, const std::string& value) {
    std::ofstream out(directory_ + "/" + file);
    out << value;
    out.flush();
    if (out.good()) return true;
    error_ = "cannot write " + value + " to " + directory_ + "/" + file;
    return false;
  }

  std::string directory_;
  int procs_fd_ = -1;
  std::string error_;
};

std::string RandomSuffix() {
  std::random_device device;
  return std::to_string(device() % 1000000);
}

// A child that moves into `procs_fd`'s cgroup, names itself, waits for a byte on `go_fd`, then
// touches 1 GiB of anonymous memory: far past any test limit. Async-signal-safe.
pid_t SpawnAllocator(int procs_fd, const char* comm, int go_fd) {
  return ForkChild([=] {
    if (write(procs_fd, "0", 1) != 1) _exit(90);
    SetComm(comm);
    char byte = 0;
    if (read(go_fd, &byte, 1) != 1) _exit(91);
    constexpr size_t kBytes = size_t{1} << 30;
    void* memory = mmap(nullptr, kBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (memory == MAP_FAILED) _exit(92);
    for (size_t offset = 0; offset < kBytes; offset += 4096) static_cast<volatile char*>(memory)[offset] = 1;
    _exit(3);  // not reached: the OOM killer ends it first
  });
}

// Waits (without reaping) until `pid` exited; returns its raw wait status, or -1.
int WaitForZombie(pid_t pid) {
  siginfo_t info{};
  if (waitid(P_PID, static_cast<id_t>(pid), &info, WEXITED | WNOWAIT) != 0) return -1;
  if (info.si_code == CLD_KILLED) return info.si_status;
  return info.si_code == CLD_EXITED ? (info.si_status << 8) : -1;
}

// The OOM kill, then a kill -9 in the same set and cgroup; `extra_arguments` choose the sources.
void OomKillAndKill9(const std::vector<std::string>& extra_arguments, bool kernel_log_expected) {
  const std::string set = "oom_it";
  MemoryCgroup cgroup("pidfd-oom-it-" + RandomSuffix(), 48 << 20);
  if (!cgroup.ok()) SKIP_UNLESS_CI("cannot create a memory cgroup under the test's own: " + cgroup.error());
  ExporterProcess exporter;
  ASSERT_TRUE(exporter.Start(MakeConfig(CommSet(set, "oom_it_worker"), "auto"), extra_arguments));
  Metrics metrics;
  ASSERT_TRUE(exporter.Scrape(&metrics));
  EXPECT_EQ(metrics.Value(kFeature, {{"feature", "oom_kernel_log"}}), kernel_log_expected ? 1 : 0);
  EXPECT_EQ(metrics.Value(kFeature, {{"feature", "oom_cgroup_counter"}}), 1) << exporter.LogTail();
  EXPECT_EQ(metrics.Value(kFeature, {{"feature", "oom_attribution"}}), 1);

  int go[2];
  ASSERT_EQ(pipe2(go, O_CLOEXEC), 0);
  const pid_t victim = SpawnAllocator(cgroup.procs_fd(), "oom_it_worker", go[0]);
  close(go[0]);
  auto sibling = ChildProcess::Spawn({"oom_it_worker", "", cgroup.procs_fd()});
  ASSERT_TRUE(exporter.WaitFor("both workers watched", [&](const Metrics& m) {
    return m.Value(kProcesses, {{"set", set}}) == 2;
  }));

  ASSERT_EQ(write(go[1], "g", 1), 1);
  close(go[1]);
  const int status = WaitForZombie(victim);
  ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << "victim ended with status " << status;
  ASSERT_EQ(waitpid(victim, nullptr, 0), victim);
  Metrics last;
  ASSERT_TRUE(exporter.WaitFor(
      "the OOM kill counted as oom_killed",
      [&](const Metrics& m) { return m.ValueOrZero(kExits, ExitOf(set, "oom_killed")) == 1; }, &last))
      << "cgroup " << cgroup.directory();
  EXPECT_EQ(last.ValueOrZero(kExits, ExitOf(set, "killed")), 0);

  sibling->Kill(SIGKILL);
  ASSERT_TRUE(sibling->WaitUntilZombie());
  sibling->Reap();
  ASSERT_TRUE(exporter.WaitFor(
      "the kill -9 counted as killed",
      [&](const Metrics& m) { return m.ValueOrZero(kExits, ExitOf(set, "killed")) == 1; }, &last));
  EXPECT_EQ(last.ValueOrZero(kExits, ExitOf(set, "oom_killed")), 1);
  EXPECT_EQ(last.Sum(kExits, {{"set", set}}), 2);
}

TEST(OomAttributionTest, OomKillIsOomKilledAndKill9IsKilled) {
  const bool kernel_log_readable = access("/dev/kmsg", R_OK) == 0;
  OomKillAndKill9({}, kernel_log_readable);
}

TEST(OomAttributionTest, CgroupCounterAloneTellsOomKillFromKill9) {
  OomKillAndKill9({"--debug.disable-kernel-features=oom_kernel_log"}, false);
}

TEST(OomAttributionTest, Kill9WithoutAnySourceIsKilled) {
  const std::string set = "oom_none";
  ExporterProcess exporter;
  ASSERT_TRUE(exporter.Start(MakeConfig(CommSet(set, "oom_none_wrk"), "auto"),
                             {"--debug.disable-kernel-features=oom_kernel_log,oom_cgroup_counter"}));
  auto child = ChildProcess::Spawn({"oom_none_wrk", "", -1});
  ASSERT_TRUE(exporter.WaitFor("watched", [&](const Metrics& m) {
    return m.Value(kProcesses, {{"set", set}}) == 1;
  }));
  child->Kill(SIGKILL);
  ASSERT_TRUE(child->WaitUntilZombie());
  child->Reap();
  Metrics last;
  ASSERT_TRUE(exporter.WaitFor(
      "killed", [&](const Metrics& m) { return m.ValueOrZero(kExits, ExitOf(set, "killed")) == 1; }, &last));
  EXPECT_EQ(last.Value(kFeature, {{"feature", "oom_attribution"}}), 0);
}

// What the burner measured of itself just before it exited.
struct SelfUsage {
  struct rusage usage;
};

constexpr size_t kTouchedBytes = 64 << 20;
constexpr size_t kWrittenBytes = 1 << 20;
char written_block[kWrittenBytes];

// Burns ~300 ms of CPU (user and some system time), touches kTouchedBytes, writes kWrittenBytes to
// `file_fd`, reports getrusage(RUSAGE_SELF) on `report_fd` and exits. Async-signal-safe.
pid_t SpawnBurner(const char* comm, int file_fd, int report_fd) {
  return ForkChild([=] {
    SetComm(comm);
    char* memory = static_cast<char*>(
        mmap(nullptr, kTouchedBytes, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0));
    if (memory == MAP_FAILED) _exit(92);
    for (size_t offset = 0; offset < kTouchedBytes; offset += 4096) memory[offset] = 1;
    if (write(file_fd, written_block, kWrittenBytes) != static_cast<ssize_t>(kWrittenBytes)) _exit(93);
    SelfUsage self{};
    volatile uint64_t sink = 0;
    for (;;) {
      for (int spin = 0; spin < 1000000; ++spin) sink = sink + static_cast<uint64_t>(spin);
      getppid();  // a little system time
      getrusage(RUSAGE_SELF, &self.usage);
      if (self.usage.ru_utime.tv_sec * 1000000 + self.usage.ru_utime.tv_usec +
              self.usage.ru_stime.tv_sec * 1000000 + self.usage.ru_stime.tv_usec >=
          300000)
        break;
    }
    if (write(report_fd, &self, sizeof self) != sizeof self) _exit(94);
    _exit(0);
  });
}

double Seconds(const timeval& time) {
  return static_cast<double>(time.tv_sec) + static_cast<double>(time.tv_usec) / 1e6;
}

// One burner in set `set`, watched by an exporter started with `flags`: what the child measured
// of itself just before it exited, what its parent's wait4() says it used, and the scrape once
// its resources (and, with the eBPF probe, the CPU of the rest of its exit) are counted.
struct BurnerRun {
  SelfUsage self{};
  rusage parent_view{};
  bool final_runtime = false;
  Metrics metrics;
};

// wait4() rounds user and system time down to 1 us each.
constexpr double kWait4Rounding = 5e-6;
// Reaped as soon as it is a zombie, the burner may still run the last of its exit (after it
// notified its parent, before its final switch) when wait4() reads its run time; the probe
// reads it once the task is freed. Measured +0.6 us natively (tests/vm/README.md).
constexpr double kExitTailAfterWait4 = 0.002;

double CpuOf(const Metrics& metrics, const std::string& set) {
  return metrics.ValueOrZero("pidfd_process_cpu_seconds_total", {{"set", set}, {"mode", "user"}}) +
         metrics.ValueOrZero("pidfd_process_cpu_seconds_total", {{"set", set}, {"mode", "system"}});
}

void RunBurner(const std::string& set, const std::vector<std::string>& flags, BurnerRun* run) {
  ExporterProcess exporter;
  ASSERT_TRUE(exporter.Start(MakeConfig(CommSet(set, set + "_b"), "auto"), flags));
  Metrics metrics;
  ASSERT_TRUE(exporter.Scrape(&metrics));
  if (metrics.Value(kFeature, {{"feature", "exit_resources"}}) != 1)
    SKIP_UNLESS_CI("no taskstats exit records here (CAP_NET_ADMIN and the proc connector are needed)");
  run->final_runtime = metrics.Value(kFeature, {{"feature", "final_runtime"}}) == 1;

  TempDir directory;
  const std::string file = directory.path() + "/written";
  const int file_fd = open(file.c_str(), O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
  ASSERT_GE(file_fd, 0);
  int report[2];
  ASSERT_EQ(pipe2(report, O_CLOEXEC), 0);
  const std::string name = set + "_b";
  const pid_t burner = SpawnBurner(name.c_str(), file_fd, report[1]);
  close(report[1]);
  close(file_fd);
  ASSERT_EQ(read(report[0], &run->self, sizeof run->self), static_cast<ssize_t>(sizeof run->self));
  close(report[0]);
  ASSERT_EQ(WaitForZombie(burner), 0);
  // What the kernel adds to this process's RUSAGE_CHILDREN for the burner.
  int status = 0;
  ASSERT_EQ(wait4(burner, &status, 0, &run->parent_view), burner);
  ASSERT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;

  const double parent_cpu = Seconds(run->parent_view.ru_utime) + Seconds(run->parent_view.ru_stime);
  const bool final_runtime = run->final_runtime;
  ASSERT_TRUE(exporter.WaitFor(
      final_runtime ? "the burner's resources and the CPU of the rest of its exit" : "the burner's resources",
      [&](const Metrics& m) {
        if (m.ValueOrZero("pidfd_process_peak_rss_bytes_count", {{"set", set}}) != 1) return false;
        // wait4() rounds each mode down to 1 us. Without the probe's share the exporter is
        // milliseconds short (the 64 MiB teardown): this waits for that share to come.
        return !final_runtime || CpuOf(m, set) >= parent_cpu - kWait4Rounding;
      },
      &run->metrics))
      << "exporter " << CpuOf(run->metrics, set) << " s, wait4() " << parent_cpu << " s";
}

void ExpectPeakRssAndWrites(const BurnerRun& run, const std::string& set) {
  const double peak = run.metrics.ValueOrZero("pidfd_process_peak_rss_bytes_sum", {{"set", set}});
  EXPECT_EQ(peak, static_cast<double>(run.self.usage.ru_maxrss) * 1024);
  EXPECT_GE(peak, static_cast<double>(kTouchedBytes));
  // Page-cache writes are accounted when the pages are dirtied, to the writer, exactly.
  EXPECT_EQ(run.metrics.ValueOrZero("pidfd_process_io_bytes_total", {{"set", set}, {"direction", "write"}}),
            static_cast<double>(kWrittenBytes));
}

TEST(ExitResourcesTest, WithoutTheProbeCpuStopsAtTheExitRecord) {
  const std::string set = "res_rec";
  BurnerRun run;
  RunBurner(set, {"--debug.disable-kernel-features=final_runtime"}, &run);
  if (HasFatalFailure() || IsSkipped()) return;
  EXPECT_FALSE(run.final_runtime);
  const double user =
      run.metrics.ValueOrZero("pidfd_process_cpu_seconds_total", {{"set", set}, {"mode", "user"}});
  const double system =
      run.metrics.ValueOrZero("pidfd_process_cpu_seconds_total", {{"set", set}, {"mode", "system"}});
  const double own_cpu = Seconds(run.self.usage.ru_utime) + Seconds(run.self.usage.ru_stime);
  const double parent_cpu = Seconds(run.parent_view.ru_utime) + Seconds(run.parent_view.ru_stime);
  // The record is built after the child's last getrusage() (the report's write, the start of
  // the exit: at most 2 ms more, never less), and before 64 MiB are unmapped, which the parent
  // sees and the record does not.
  EXPECT_GE(user + system, own_cpu - 1e-6);
  EXPECT_LE(user + system, own_cpu + 0.002) << "user " << user << " system " << system;
  EXPECT_LT(user + system, parent_cpu);
  EXPECT_GT(user, system);  // it spun in user space
  ExpectPeakRssAndWrites(run, set);
}

TEST(ExitResourcesTest, WithTheProbeCpuIsWhatTheParentSees) {
  const std::string set = "res_fin";
  BurnerRun run;
  RunBurner(set, {}, &run);
  if (HasFatalFailure() || IsSkipped()) return;
  if (!run.final_runtime)
    SKIP_UNLESS_CI(
        "the eBPF probe did not load (CAP_BPF, CAP_PERFMON, kernel BTF and Linux 5.8+ are needed)");
  // RunBurner waited for the exporter's CPU to reach wait4()'s, and failed if it did not.
  const double cpu = CpuOf(run.metrics, set);
  const double parent_cpu = Seconds(run.parent_view.ru_utime) + Seconds(run.parent_view.ru_stime);
  EXPECT_LE(cpu, parent_cpu + kExitTailAfterWait4)
      << "exporter " << cpu << " s, wait4() " << parent_cpu << " s";
  // The split follows the kernel's: nearly all of it user time, like the parent's.
  const double user =
      run.metrics.ValueOrZero("pidfd_process_cpu_seconds_total", {{"set", set}, {"mode", "user"}});
  EXPECT_NEAR(user, Seconds(run.parent_view.ru_utime), 0.01);
  ExpectPeakRssAndWrites(run, set);
}

}  // namespace
}  // namespace integration
