// cgroup identity: what a cgroup path (as ParseCgroup in exporter/procfs.h returns it) says
// about the service or container a process runs in: the systemd unit and the container
// runtime's 64-hex container ID. Pure functions over text, no /proc access: any thread may
// call them. The layouts recognised are recorded in tests/fixtures/proc/cgroup_*/ and
// listed in docs/configuration.md.
#pragma once

#include <string_view>

namespace pidfd_exporter {

// The systemd unit: the last path component named `*.service` or `*.scope`
// ("/system.slice/nginx.service" → "nginx.service";
// "/user.slice/user-1000.slice/user@1000.service/app.slice/foo.service" → "foo.service").
// "" when there is none (the root cgroup, a slice, a cgroupfs-driver container).
std::string_view UnitOfCgroup(std::string_view cgroup_path);

// The container ID: the 64 lowercase hex digits of the innermost component that names a
// container, under both cgroup drivers:
//   systemd driver:  cri-containerd-<id>.scope, crio-<id>.scope, docker-<id>.scope,
//                    libpod-<id>.scope (also below it, as in ".../libpod-<id>.scope/container")
//   cgroupfs driver: /kubepods/<qos>/pod<uid>/<id>, /docker/<id>, /kubepods/.../crio-<id>,
//                    /libpod_parent/libpod-<id>
// "" when no component names one (conmon's "crio-conmon-<id>.scope" is not the container).
std::string_view ContainerIdOfCgroup(std::string_view cgroup_path);

}  // namespace pidfd_exporter
