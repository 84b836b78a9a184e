#include "scrape_worker.h"

#include <pthread.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

namespace pidfd_exporter {

std::unique_ptr<ScrapeWorker> ScrapeWorker::Start(Handler handler, std::string* error) {
  std::unique_ptr<ScrapeWorker> worker(new ScrapeWorker(std::move(handler)));
  worker->ready_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!worker->ready_.valid()) {
    *error = std::string("scrape worker: eventfd: ") + std::strerror(errno);
    return nullptr;
  }
  worker->thread_ = std::thread([raw = worker.get()] {
    pthread_setname_np(pthread_self(), "scrape");
    raw->Run();
  });
  return worker;
}

ScrapeWorker::~ScrapeWorker() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

bool ScrapeWorker::Submit(uint64_t serial, std::string head) {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    if (busy_ || stopping_) return false;
    busy_ = true;
    job_ = Answer{serial, std::move(head)};
  }
  wake_.notify_one();
  return true;
}

std::optional<ScrapeWorker::Answer> ScrapeWorker::Take() {
  uint64_t count = 0;
  (void)!::read(ready_.get(), &count, sizeof count);
  std::lock_guard<std::mutex> lock(mutex_);
  if (!answer_) return std::nullopt;
  std::optional<Answer> taken = std::move(answer_);
  answer_.reset();
  busy_ = false;
  return taken;
}

void ScrapeWorker::Run() {
  std::unique_lock<std::mutex> lock(mutex_);
  for (;;) {
    wake_.wait(lock, [this] { return stopping_ || job_.has_value(); });
    if (stopping_) return;
    Answer job = std::move(*job_);
    job_.reset();
    lock.unlock();
    std::string text;
    try {
      text = handler_(job.text);
    } catch (...) {
      // The router answers its own failures; nothing may leave this thread as an exception.
      text = "HTTP/1.1 500 Internal Server Error\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
    }
    lock.lock();
    answer_ = Answer{job.serial, std::move(text)};
    const uint64_t one = 1;
    (void)!::write(ready_.get(), &one, sizeof one);
  }
}

}  // namespace pidfd_exporter
