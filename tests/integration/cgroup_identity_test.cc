// Service and container identity on real processes: workers move themselves into cgroup v2
// directories the test creates under its own cgroup, named like a systemd service
// (pidfd-it-<rand>.service) and like a Docker container scope (docker-<64 hex>.scope), and
// the exporter must name their sets by {{.Unit}} and {{.ContainerID}} and match unit:. Where
// systemd runs, a transient unit made with systemd-run gets its own set too. Every cgroup the
// test makes is removed again.
#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <fstream>
#include <random>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include "harness.h"
#include "skip_policy.h"

namespace integration {
namespace {

constexpr char kProcesses[] = "pidfd_processes";
constexpr char kExits[] = "pidfd_process_exits_total";

// The cgroup v2 mount point (first "cgroup2" line of /proc/self/mountinfo), or "".
std::string CgroupV2Mount() {
  std::ifstream mountinfo("/proc/self/mountinfo");
  std::string line;
  while (std::getline(mountinfo, line)) {
    const size_t separator = line.find(" - ");
    if (separator == std::string::npos || line.compare(separator + 3, 8, "cgroup2 ") != 0) continue;
    std::istringstream fields(line.substr(0, separator));
    std::string field;
    for (int index = 0; index < 5 && fields >> field; ++index) {
    }
    return field;  // field 5: the mount point
  }
  return "";
}

// The test process's own cgroup v2 path (the "0::" line).
std::string OwnCgroupV2Path() {
  std::ifstream cgroup("/proc/self/cgroup");
  std::string line;
  while (std::getline(cgroup, line)) {
    if (line.rfind("0::", 0) == 0) return line.substr(3);
  }
  return "";
}

std::string RandomHex(size_t digits) {
  std::random_device device;
  std::string hex;
  while (hex.size() < digits) hex += "0123456789abcdef"[device() % 16];
  return hex;
}

// A cgroup v2 directory (with its parents: `name` may hold slashes, as a Kubernetes layout
// does) under the test's own cgroup, removed innermost first at scope exit.
class TestCgroup {
 public:
  TestCgroup(const std::string& mount, const std::string& own_path, const std::string& name)
      : relative_path_((own_path == "/" ? "" : own_path) + "/" + name), directory_(mount + relative_path_) {
    std::string path = mount + (own_path == "/" ? "" : own_path);
    size_t start = 0;
    while (start < name.size()) {
      const size_t slash = std::min(name.find('/', start), name.size());
      path += "/" + name.substr(start, slash - start);
      start = slash + 1;
      if (mkdir(path.c_str(), 0755) != 0) {
        error_ = "mkdir " + path + ": " + std::strerror(errno);
        return;
      }
      created_.push_back(path);
    }
    procs_fd_ = open((directory_ + "/cgroup.procs").c_str(), O_WRONLY | O_CLOEXEC);
    if (procs_fd_ < 0) error_ = "open " + directory_ + "/cgroup.procs: " + std::strerror(errno);
  }
  ~TestCgroup() {
    if (procs_fd_ >= 0) close(procs_fd_);
    for (auto directory = created_.rbegin(); directory != created_.rend(); ++directory) {
      // Reaped workers leave at once; the kernel may need a moment to release an emptied cgroup.
      for (int attempt = 0; attempt < 200 && rmdir(directory->c_str()) != 0 && errno == EBUSY; ++attempt) {
        std::this_thread::sleep_for(std::chrono::milliseconds(10));
      }
      if (access(directory->c_str(), F_OK) == 0) ADD_FAILURE() << "could not remove " << *directory;
    }
  }
  TestCgroup(const TestCgroup&) = delete;
  TestCgroup& operator=(const TestCgroup&) = delete;

  bool ok() const { return error_.empty(); }
  const std::string& error() const { return error_; }
  int procs_fd() const { return procs_fd_; }
  const std::string& relative_path() const { return relative_path_; }

 private:
  std::string relative_path_;  // as /proc/PID/cgroup shows it
  std::string directory_;
  std::vector<std::string> created_;  // outermost first
  int procs_fd_ = -1;
  std::string error_;
};

Labels Set(const std::string& name) {
  return {{"set", name}};
}
Labels Exit(const std::string& set, int code) {
  return {{"set", set}, {"reason", "exited"}, {"code", std::to_string(code)}};
}

void EndAndReap(ChildProcess& child, int code) {
  child.Exit(code);
  ASSERT_TRUE(child.WaitUntilZombie());
  child.Reap();
}

// Skips (fails in CI) where no cgroup v2 hierarchy is mounted: every kernel the exporter
// supports has one, so CI machines must too.
#define REQUIRE_CGROUP_V2(mount, own)   \
  if ((mount).empty() || (own).empty()) \
  SKIP_UNLESS_CI("no cgroup v2 hierarchy mounted: cannot create test cgroups")

TEST(CgroupIdentityTest, SetsPerUnitAndPerContainerFromCgroupsTheTestCreates) {
  const std::string mount = CgroupV2Mount();
  const std::string own = OwnCgroupV2Path();
  REQUIRE_CGROUP_V2(mount, own);
  const std::string unit = "pidfd-it-" + RandomHex(8) + ".service";
  const std::string container_id = RandomHex(64);
  TestCgroup service(mount, own, unit);
  TestCgroup container(mount, own, "docker-" + container_id + ".scope");
  ASSERT_TRUE(service.ok()) << service.error();
  ASSERT_TRUE(container.ok()) << container.error();

  ExporterProcess exporter;
  ASSERT_TRUE(exporter.Start(MakeConfig("  - name: by_unit_matcher\n    comm: [cg_it_matched]\n    unit: [" +
                                            YamlQuote(unit) +
                                            "]\n"
                                            "  - name: \"{{.ContainerID}}\"\n    comm: [cg_it_worker]\n"
                                            "  - name: \"{{.Unit}}\"\n    comm: [cg_it_worker]\n",
                                        "auto")));

  auto in_container = ChildProcess::Spawn({"cg_it_worker", "", container.procs_fd()});
  auto in_service = ChildProcess::Spawn({"cg_it_worker", "", service.procs_fd()});
  auto matched = ChildProcess::Spawn({"cg_it_matched", "", service.procs_fd()});
  ASSERT_TRUE(exporter.WaitFor("one set per container and per unit",
                               [&](const Metrics& m) {
                                 return m.Value(kProcesses, Set(container_id)) == 1 &&
                                        m.Value(kProcesses, Set(unit)) == 1 &&
                                        m.Value(kProcesses, Set("by_unit_matcher")) == 1;
                               }))
      << "cgroups " << container.relative_path() << " and " << service.relative_path();

  EndAndReap(*in_container, 3);
  EndAndReap(*in_service, 4);
  EndAndReap(*matched, 5);
  Metrics last;
  ASSERT_TRUE(exporter.WaitFor(
      "the exits counted under the container's and the unit's sets",
      [&](const Metrics& m) {
        return m.ValueOrZero(kExits, Exit(container_id, 3)) == 1 &&
               m.ValueOrZero(kExits, Exit(unit, 4)) == 1 &&
               m.ValueOrZero(kExits, Exit("by_unit_matcher", 5)) == 1;
      },
      &last));
  // Each exit in its own set only.
  EXPECT_EQ(last.Sum(kExits, Set(container_id)), 1);
  EXPECT_EQ(last.Sum(kExits, Set(unit)), 1);
}

std::string ReadSourceFile(const std::string& relative_path) {
  std::ifstream file(std::string(PIDFD_SOURCE_DIR) + "/" + relative_path);
  EXPECT_TRUE(file.good()) << relative_path;
  std::ostringstream text;
  text << file.rdbuf();
  return text.str();
}

// The shipped Kubernetes example, on Kubernetes layouts of both cgroup drivers built under the
// test's cgroup: one set per container, with its zombies and its exits.
TEST(CgroupIdentityTest, KubernetesExampleGivesEachContainerItsSetWithZombiesAndExits) {
  const std::string mount = CgroupV2Mount();
  const std::string own = OwnCgroupV2Path();
  REQUIRE_CGROUP_V2(mount, own);
  const std::string pod_uid = RandomHex(8) + "_" + RandomHex(4) + "_" + RandomHex(4);
  const std::string systemd_id = RandomHex(64);
  const std::string cgroupfs_id = RandomHex(64);
  TestCgroup systemd_driver(mount, own,
                            "kubepods.slice/kubepods-burstable.slice/kubepods-burstable-pod" + pod_uid +
                                ".slice/cri-containerd-" + systemd_id + ".scope");
  TestCgroup cgroupfs_driver(mount, own, "kubepods/besteffort/pod" + RandomHex(8) + "/" + cgroupfs_id);
  ASSERT_TRUE(systemd_driver.ok()) << systemd_driver.error();
  ASSERT_TRUE(cgroupfs_driver.ok()) << cgroupfs_driver.error();

  ExporterProcess exporter;
  ASSERT_TRUE(exporter.Start(ReadSourceFile("config/examples/kubernetes-containers.yml") +
                             "discovery:\n  scan_interval: 100ms\n"));
  auto in_systemd_pod = ChildProcess::Spawn({"cg_it_node", "", systemd_driver.procs_fd()});
  auto in_cgroupfs_pod = ChildProcess::Spawn({"cg_it_python", "", cgroupfs_driver.procs_fd()});
  ASSERT_TRUE(exporter.WaitFor("one set per container", [&](const Metrics& m) {
    return m.Value(kProcesses, Set(systemd_id)) == 1 && m.Value(kProcesses, Set(cgroupfs_id)) == 1;
  }));
  // A container whose PID 1 does not reap: its zombie counts under the container.
  in_systemd_pod->Exit(0);
  ASSERT_TRUE(in_systemd_pod->WaitUntilZombie());
  ASSERT_TRUE(exporter.WaitFor("the zombie under its container", [&](const Metrics& m) {
    return m.Value("pidfd_zombies", Set(systemd_id)) == 1;
  }));
  in_systemd_pod->Reap();
  EndAndReap(*in_cgroupfs_pod, 9);
  Metrics last;
  ASSERT_TRUE(exporter.WaitFor(
      "both exits counted per container",
      [&](const Metrics& m) {
        return m.ValueOrZero(kExits, Exit(systemd_id, 0)) == 1 &&
               m.ValueOrZero(kExits, Exit(cgroupfs_id, 9)) == 1 &&
               m.Value("pidfd_zombies", Set(systemd_id)) == 0;
      },
      &last));
  EXPECT_EQ(last.Sum(kExits, Set(systemd_id)), 1);
  EXPECT_EQ(last.Sum(kExits, Set(cgroupfs_id)), 1);
  // Processes outside containers (the test itself, the exporter) are in no set: a set named
  // by an ID it could not render would be "unknown".
  EXPECT_TRUE(last.Find(kProcesses, Set("unknown")).empty());
}

// Where systemd is the service manager: a transient service made by systemd-run.
TEST(CgroupIdentityTest, TransientSystemdUnitGetsItsOwnSet) {
  if (access("/run/systemd/system", F_OK) != 0) {
    // sd_booted(3)'s test. Not a missing tool: no service manager runs that could start a unit
    // (containers and CI runners often run without systemd); the test above covers {{.Unit}}.
    GTEST_SKIP() << "systemd is not the running service manager (/run/systemd/system absent): no "
                    "transient units here";
  }
  if (access("/usr/bin/systemd-run", X_OK) != 0) {
    SKIP_UNLESS_CI("systemd runs but /usr/bin/systemd-run is not installed");
  }
  const std::string unit = "pidfd-it-" + RandomHex(8) + ".service";
  ExporterProcess exporter;
  ASSERT_TRUE(
      exporter.Start(MakeConfig("  - name: \"{{.Unit}}\"\n    unit: [" + YamlQuote(unit) + "]\n", "auto")));
  const CommandResult started =
      RunCommand({"/usr/bin/systemd-run", "--unit=" + unit, "--quiet", "--property=RuntimeMaxSec=60",
                  "/bin/sh", "-c", "sleep 1; exit 6"});
  ASSERT_EQ(started.status, 0) << started.output;
  ASSERT_TRUE(exporter.WaitFor(
      "the transient unit's exit counted in its own set",
      [&](const Metrics& m) { return m.ValueOrZero(kExits, Exit(unit, 6)) == 1; }, nullptr,
      std::chrono::seconds(20)));
  RunCommand({"/usr/bin/systemctl", "reset-failed", unit});
}

}  // namespace
}  // namespace integration
