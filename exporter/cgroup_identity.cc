#include "cgroup_identity.h"

#include <algorithm>
#include <array>

namespace pidfd_exporter {
namespace {

// Container IDs of containerd, CRI-O, Docker and Podman are SHA-256 digests in hex.
constexpr size_t kContainerIdLength = 64;

// The prefixes the runtimes put before the ID in a cgroup name (systemd driver: a scope
// "<prefix><id>.scope"; CRI-O and Podman under cgroupfs: the same name without ".scope").
constexpr std::array<std::string_view, 4> kContainerPrefixes = {"cri-containerd-", "crio-", "docker-",
                                                                "libpod-"};

bool EndsWith(std::string_view text, std::string_view suffix) {
  return text.size() >= suffix.size() && text.substr(text.size() - suffix.size()) == suffix;
}

bool IsContainerId(std::string_view text) {
  return text.size() == kContainerIdLength && std::all_of(text.begin(), text.end(), [](char c) {
           return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'f');
         });
}

// Calls `visit` on each non-empty path component, last first, until it returns true.
template <typename Visit>
void ForEachComponentFromLast(std::string_view path, Visit visit) {
  while (!path.empty()) {
    const size_t slash = path.rfind('/');
    const std::string_view component = slash == std::string_view::npos ? path : path.substr(slash + 1);
    if (!component.empty() && visit(component)) return;
    if (slash == std::string_view::npos) return;
    path = path.substr(0, slash);
  }
}

std::string_view ContainerIdOfComponent(std::string_view component) {
  if (EndsWith(component, ".scope")) component.remove_suffix(6);
  if (IsContainerId(component)) return component;
  for (const std::string_view prefix : kContainerPrefixes) {
    if (component.substr(0, prefix.size()) == prefix && IsContainerId(component.substr(prefix.size()))) {
      return component.substr(prefix.size());
    }
  }
  return {};
}

}  // namespace

std::string_view UnitOfCgroup(std::string_view cgroup_path) {
  std::string_view unit;
  ForEachComponentFromLast(cgroup_path, [&](std::string_view component) {
    for (const std::string_view suffix : {std::string_view(".service"), std::string_view(".scope")}) {
      // A unit has a name before its suffix: a bare ".service" directory is not one.
      if (component.size() > suffix.size() && EndsWith(component, suffix)) {
        unit = component;
        return true;
      }
    }
    return false;
  });
  return unit;
}

std::string_view ContainerIdOfCgroup(std::string_view cgroup_path) {
  std::string_view id;
  ForEachComponentFromLast(cgroup_path, [&](std::string_view component) {
    id = ContainerIdOfComponent(component);
    return !id.empty();
  });
  return id;
}

}  // namespace pidfd_exporter
