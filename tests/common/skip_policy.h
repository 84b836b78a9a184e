// When a test may skip. On a developer's machine a test whose kernel feature or tool is
// missing (no proc connector outside the initial namespaces, no root, no loop devices) skips
// and says why. CI (CI=true) runs on a machine that has all of them: there a skip would hide a
// broken feature behind a green run, so the same condition is a failure.
#pragma once

#include <gtest/gtest.h>

#include <cstdlib>
#include <cstring>

namespace test_policy {

inline bool InCi() {
  const char* ci = std::getenv("CI");
  return ci && (std::strcmp(ci, "true") == 0 || std::strcmp(ci, "1") == 0);
}

}  // namespace test_policy

// Skips the current test with `reason` (streamable), or fails it in CI. Returns from the test
// body either way.
#define SKIP_UNLESS_CI(reason)                                                         \
  do {                                                                                 \
    if (::test_policy::InCi()) {                                                       \
      GTEST_FAIL() << "CI=true, and this machine must have what it needs: " << reason; \
    } else {                                                                           \
      GTEST_SKIP() << reason;                                                          \
    }                                                                                  \
  } while (0)
