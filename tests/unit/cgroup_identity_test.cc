// Unit and container ID from cgroup paths, on the recorded layouts in
// tests/fixtures/proc/cgroup_*/ (read through ParseCgroup, as the tracker reads them).
#include "cgroup_identity.h"

#include <fstream>
#include <iterator>
#include <string>

#include "gtest/gtest.h"
#include "procfs.h"

namespace pidfd_exporter {
namespace {

// The path ParseCgroup picks from a recorded /proc/PID/cgroup.
std::string FixturePath(const std::string& layout) {
  const std::string file = std::string(PIDFD_TEST_FIXTURES_DIR) + "/proc/" + layout + "/cgroup";
  std::ifstream stream(file, std::ios::binary);
  EXPECT_TRUE(stream.good()) << file;
  const std::string text((std::istreambuf_iterator<char>(stream)), std::istreambuf_iterator<char>());
  return ParseCgroup(text).value_or("<unparsable>");
}

struct Layout {
  const char* fixture;
  const char* unit;
  const char* container_id;
};

class CgroupLayoutTest : public testing::TestWithParam<Layout> {};

TEST_P(CgroupLayoutTest, UnitAndContainerId) {
  const Layout& layout = GetParam();
  const std::string path = FixturePath(layout.fixture);
  EXPECT_EQ(UnitOfCgroup(path), layout.unit) << path;
  EXPECT_EQ(ContainerIdOfCgroup(path), layout.container_id) << path;
}

INSTANTIATE_TEST_SUITE_P(
    RecordedLayouts, CgroupLayoutTest,
    testing::Values(
        // Kubernetes, systemd driver (cgroup v2): the container's scope under the pod slice.
        Layout{"cgroup_containerd_systemd",
               "cri-containerd-2327a2aec169e25cf05f2a901486b7463fdb513ae097fc0ae6a3ca94381ddc42.scope",
               "2327a2aec169e25cf05f2a901486b7463fdb513ae097fc0ae6a3ca94381ddc42"},
        Layout{"cgroup_crio_systemd",
               "crio-5f0b8e2c3a4d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7.scope",
               "5f0b8e2c3a4d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7"},
        // CRI-O's monitor runs beside the container, not in it.
        Layout{"cgroup_crio_conmon",
               "crio-conmon-5f0b8e2c3a4d6e7f8091a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7.scope", ""},
        // Kubernetes, cgroupfs driver: v1 (the name=systemd line is picked) and v2.
        Layout{"cgroup_containerd_cgroupfs", "",
               "34dc0b5e626f2c5c4c5170e34b10e7654ce36f0fcd532739f4445baabea03376"},
        Layout{"cgroup_containerd_cgroupfs_v2", "",
               "9ce45faf7719310972823ceeb3afaa4bc6c5b86fe1d59da60946fc12f42541ca"},
        Layout{"cgroup_crio_cgroupfs", "",
               "a7d3c1e5f9b2480617c3e5a9d1f2b4c6e8a0b2c4d6e8f0a1b3c5d7e9f1a3b5c7"},
        // Docker: systemd driver, cgroupfs driver on a v1-only host, Docker in Docker (innermost).
        Layout{"cgroup_docker_systemd",
               "docker-9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d.scope",
               "9ec39b91f3d70e1beff50a308f77067065ea6be0d91a3378375056cd4422cf3d"},
        Layout{"cgroup_docker_cgroupfs", "",
               "4f797c539e6c745de61a93ca3ff892358ecbcaccd8414d5db545c38428142970"},
        Layout{"cgroup_docker_in_docker", "",
               "cf594798841275880f780c2aa55954b2d218b92a7c82df039aef02e2f4fe83f1"},
        // Podman: systemd (crun's "container" sub-cgroup below the scope), rootless, cgroupfs.
        Layout{"cgroup_podman_systemd",
               "libpod-6dc3fdffbf66b1239d55e98da9aaa759ea51ed35d04eb09d19ebd78963aa26c2.scope",
               "6dc3fdffbf66b1239d55e98da9aaa759ea51ed35d04eb09d19ebd78963aa26c2"},
        Layout{"cgroup_podman_rootless",
               "libpod-cf594798841275880f780c2aa55954b2d218b92a7c82df039aef02e2f4fe83f1.scope",
               "cf594798841275880f780c2aa55954b2d218b92a7c82df039aef02e2f4fe83f1"},
        Layout{"cgroup_podman_cgroupfs", "",
               "2dd433b1e76049a8f3c1d5e7b9a0c2e4f6a8b0c1d3e5f7a9b1c3d5e7f9a1b3c5"},
        // Hosts without containers: systemd services on v2 and on v1 only, a desktop session,
        // the recording VM's hybrid layout (v2 path "/").
        Layout{"cgroup_v2", "nginx.service", ""}, Layout{"cgroup_v1", "nginx.service", ""},
        Layout{"cgroup_user_session", "vte-spawn-0f1e2d3c.scope", ""}, Layout{"ordinary", "", ""}),
    [](const testing::TestParamInfo<Layout>& param_info) { return std::string(param_info.param.fixture); });

TEST(UnitOfCgroupTest, TheLastUnitComponentWins) {
  EXPECT_EQ(UnitOfCgroup("/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service"),
            "foo.service");
  EXPECT_EQ(UnitOfCgroup("/user.slice/user-1000.slice/user@1000.service"), "user@1000.service");
  EXPECT_EQ(UnitOfCgroup("/system.slice/foo.service/worker"), "foo.service");  // a delegated sub-cgroup
  EXPECT_EQ(UnitOfCgroup("/init.scope"), "init.scope");
}

TEST(UnitOfCgroupTest, NoUnitIsEmpty) {
  EXPECT_EQ(UnitOfCgroup(""), "");
  EXPECT_EQ(UnitOfCgroup("/"), "");
  EXPECT_EQ(UnitOfCgroup("/system.slice"), "");
  EXPECT_EQ(UnitOfCgroup("/a/.service"), "");  // no name before the suffix
  EXPECT_EQ(UnitOfCgroup("/a/nginx.services"), "");
  EXPECT_EQ(UnitOfCgroup("//"), "");
}

TEST(ContainerIdOfCgroupTest, OnlyExactly64LowercaseHexDigits) {
  const std::string id(64, 'a');
  EXPECT_EQ(ContainerIdOfCgroup("/docker/" + id), id);
  EXPECT_EQ(ContainerIdOfCgroup("/docker/" + id + "/"), id);
  EXPECT_EQ(ContainerIdOfCgroup("/docker/" + id.substr(1)), "");          // 63 digits
  EXPECT_EQ(ContainerIdOfCgroup("/docker/" + id + "0"), "");              // 65 digits
  EXPECT_EQ(ContainerIdOfCgroup("/docker/" + std::string(64, 'A')), "");  // not lowercase
  EXPECT_EQ(ContainerIdOfCgroup("/docker/" + std::string(63, 'a') + "g"), "");
  EXPECT_EQ(ContainerIdOfCgroup("/system.slice/docker-" + id + ".scope"), id);
  EXPECT_EQ(ContainerIdOfCgroup("/system.slice/docker-" + id + ".service"), "");
  EXPECT_EQ(ContainerIdOfCgroup("/system.slice/other-" + id + ".scope"), "");
  EXPECT_EQ(ContainerIdOfCgroup("/machine.slice/libpod-conmon-" + id + ".scope"), "");
  EXPECT_EQ(ContainerIdOfCgroup(""), "");
  EXPECT_EQ(ContainerIdOfCgroup("/"), "");
}

}  // namespace
}  // namespace pidfd_exporter
