// ProcessReader on a fake /proc tree built from the recorded fixtures (tests/fixtures/proc/):
// which PIDs are user space, what a fork inherits, and reads that must refuse another process.
#include "process_reader.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <algorithm>
#include <filesystem>
#include <fstream>
#include <string>
#include <vector>

namespace pidfd_exporter {
namespace {

namespace fs = std::filesystem;

std::string Fixture(const std::string& process, const std::string& file) {
  std::ifstream in(std::string(PIDFD_TEST_FIXTURES_DIR) + "/proc/" + process + "/" + file);
  return std::string(std::istreambuf_iterator<char>(in), {});
}

// A /proc tree: PID 2 is kthreadd and 77 a kernel thread (the recorded kernel_thread stat),
// 500 an ordinary process (the recorded ordinary files), 600 a stat that does not parse.
class ProcessReaderTest : public testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() / ("process_reader_test." + std::to_string(getpid()));
    for (const auto& [pid, process] : std::vector<std::pair<int, std::string>>{
             {2, "kernel_thread"}, {77, "kernel_thread"}, {500, "ordinary"}}) {
      const fs::path directory = root_ / std::to_string(pid);
      fs::create_directories(directory);
      for (const char* file : {"stat", "comm", "cmdline", "status", "cgroup"}) {
        std::ofstream(directory / file) << Fixture(process, file);
      }
    }
    fs::create_directories(root_ / "600");
    std::ofstream(root_ / "600" / "stat") << "garbage";
    fs::create_directories(root_ / "self");
    reader_ = ProcessReader::Open(
        root_.string(), [this](std::string_view op) { errors_.emplace_back(op); }, &error_);
    ASSERT_NE(reader_, nullptr) << error_;
  }
  void TearDown() override { fs::remove_all(root_); }

  fs::path root_;
  std::string error_;
  std::vector<std::string> errors_;
  std::unique_ptr<ProcessReader> reader_;
};

TEST_F(ProcessReaderTest, ListsNumericEntriesOnly) {
  auto pids = reader_->ListPids();
  ASSERT_TRUE(pids.has_value());
  std::sort(pids->begin(), pids->end());
  EXPECT_EQ(*pids, (std::vector<int>{2, 77, 500, 600}));
}

TEST_F(ProcessReaderTest, KernelThreadsAreNeverUserSpace) {
  EXPECT_FALSE(reader_->ReadStat(77).has_value());
  EXPECT_FALSE(reader_->ReadStat(600).has_value()) << "unparsable";
  EXPECT_FALSE(reader_->ReadStat(4242).has_value()) << "gone";
  auto ordinary = reader_->ReadStat(500);
  ASSERT_TRUE(ordinary.has_value());
  EXPECT_TRUE(ProcessReader::IsUserSpace(*ordinary));
  EXPECT_FALSE(reader_->Read(77, kNeedCmdline, std::nullopt).has_value());
  EXPECT_TRUE(errors_.empty()) << "a vanished or kernel process is no error";
}

TEST_F(ProcessReaderTest, ForksOfKernelThreadsAreKernelThreads) {
  EXPECT_FALSE(reader_->NameForkedFrom(2).has_value()) << "kthreadd forks kernel threads";
  EXPECT_FALSE(reader_->NameForkedFrom(77).has_value()) << "so does every kernel thread";
  auto inherited = reader_->NameForkedFrom(500);
  ASSERT_TRUE(inherited.has_value());
  EXPECT_EQ(*inherited, reader_->ReadStat(500)->comm);
  EXPECT_EQ(reader_->NameForkedFrom(4242), std::string()) << "a gone parent: a user process, name unknown";
}

TEST_F(ProcessReaderTest, ReadRefusesAnotherStartTime) {
  const uint64_t start = reader_->ReadStat(500)->start_time_ticks;
  auto read = reader_->Read(500, kNeedCmdline | kNeedCgroup, start);
  ASSERT_TRUE(read.has_value());
  EXPECT_EQ(read->attributes.pid, read->stat.pid);
  EXPECT_EQ(read->attributes.start_time_ticks, start);
  EXPECT_FALSE(read->attributes.argv.empty());
  EXPECT_TRUE(reader_->Read(500, 0, std::nullopt).has_value()) << "start unknown: accepted";
  EXPECT_FALSE(reader_->Read(500, 0, start + 1).has_value()) << "the PID's next process";
}

}  // namespace
}  // namespace pidfd_exporter
