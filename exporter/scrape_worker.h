// ScrapeWorker: one thread of the HTTP gate's own that turns a request head into a whole HTTP
// answer (the router's ServeWithoutCivetweb), one request at a time, so that a scrape is
// answered without relaying it through CivetWeb (a loopback connection, three more threads
// woken, and the body copied through two sockets: BENCHMARKS.md, section 1). It owns the
// thread, the job slot and the eventfd that says an answer is ready. Submit(), Take() and
// ready_fd() are for the gate thread only; the handler runs on the worker's thread.
#pragma once

#include <condition_variable>
#include <cstdint>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

#include "unique_fd.h"

namespace pidfd_exporter {

class ScrapeWorker {
 public:
  using Handler = std::function<std::string(const std::string& head)>;
  struct Answer {
    uint64_t serial = 0;  // the gate's connection serial the head came with
    std::string text;     // the whole answer: status line, headers, body
  };

  // nullptr with *error when the eventfd cannot be created.
  static std::unique_ptr<ScrapeWorker> Start(Handler handler, std::string* error);
  ~ScrapeWorker();  // lets the running handler finish, then joins
  ScrapeWorker(const ScrapeWorker&) = delete;
  ScrapeWorker& operator=(const ScrapeWorker&) = delete;

  // Readable (EPOLLIN) once an answer is ready; Take() empties it.
  int ready_fd() const { return ready_.get(); }
  // Hands a head to the worker; false while it is still busy with the previous one (its
  // answer not taken yet): the caller then serves the request another way.
  bool Submit(uint64_t serial, std::string head);
  // The finished answer, once; the worker is free for the next head after it.
  std::optional<Answer> Take();

 private:
  explicit ScrapeWorker(Handler handler) : handler_(std::move(handler)) {}
  void Run();

  Handler handler_;
  UniqueFd ready_;
  std::mutex mutex_;
  std::condition_variable wake_;
  bool stopping_ = false;
  bool busy_ = false;             // from Submit() to Take()
  std::optional<Answer> job_;     // submitted, not started: the head in `text`
  std::optional<Answer> answer_;  // finished, not taken
  std::thread thread_;
};

}  // namespace pidfd_exporter
