// ScrapeWorker: one job at a time, its answer announced on the eventfd, a throwing handler
// answered with a 500, and a destructor that lets a running handler finish.
#include "scrape_worker.h"

#include <gtest/gtest.h>
#include <poll.h>

#include <atomic>
#include <chrono>
#include <stdexcept>
#include <thread>

namespace pidfd_exporter {
namespace {

// Whether the worker's eventfd becomes readable within two seconds.
bool AnswerReady(const ScrapeWorker& worker) {
  pollfd ready{worker.ready_fd(), POLLIN, 0};
  return ::poll(&ready, 1, 2000) == 1;
}

TEST(ScrapeWorkerTest, AnswersOneHeadAtATimeAndSaysWhenReady) {
  std::string error;
  auto worker = ScrapeWorker::Start([](const std::string& head) { return "answer to " + head; }, &error);
  ASSERT_NE(worker, nullptr) << error;
  EXPECT_FALSE(worker->Take().has_value()) << "nothing submitted yet";
  ASSERT_TRUE(worker->Submit(7, "first"));
  EXPECT_FALSE(worker->Submit(8, "second")) << "busy until its answer is taken";
  ASSERT_TRUE(AnswerReady(*worker));
  std::optional<ScrapeWorker::Answer> answer = worker->Take();
  ASSERT_TRUE(answer.has_value());
  EXPECT_EQ(answer->serial, 7u);
  EXPECT_EQ(answer->text, "answer to first");
  pollfd drained{worker->ready_fd(), POLLIN, 0};
  EXPECT_EQ(::poll(&drained, 1, 0), 0) << "Take() empties the eventfd";
  ASSERT_TRUE(worker->Submit(9, "third"));
  ASSERT_TRUE(AnswerReady(*worker));
  EXPECT_EQ(worker->Take()->text, "answer to third");
}

TEST(ScrapeWorkerTest, AThrowingHandlerIsAnswered500) {
  std::string error;
  auto worker = ScrapeWorker::Start(
      [](const std::string&) -> std::string { throw std::runtime_error("boom"); }, &error);
  ASSERT_NE(worker, nullptr) << error;
  ASSERT_TRUE(worker->Submit(1, "head"));
  ASSERT_TRUE(AnswerReady(*worker));
  EXPECT_EQ(worker->Take()->text.rfind("HTTP/1.1 500 ", 0), 0u);
}

TEST(ScrapeWorkerTest, DestructionWaitsForTheRunningHandler) {
  std::atomic<bool> started{false}, finished{false};
  std::string error;
  auto worker = ScrapeWorker::Start(
      [&](const std::string&) {
        started = true;
        std::this_thread::sleep_for(std::chrono::milliseconds(50));  // a handler that takes a while
        finished = true;
        return std::string("late");
      },
      &error);
  ASSERT_NE(worker, nullptr) << error;
  ASSERT_TRUE(worker->Submit(1, "head"));
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(2);
  while (!started && std::chrono::steady_clock::now() < deadline) std::this_thread::yield();
  ASSERT_TRUE(started);
  worker.reset();
  EXPECT_TRUE(finished);
}

}  // namespace
}  // namespace pidfd_exporter
