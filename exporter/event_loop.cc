#include "event_loop.h"

#include <sys/eventfd.h>
#include <sys/timerfd.h>
#include <time.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "log.h"

namespace pidfd_exporter {

int64_t MonotonicNanoseconds() {
  timespec now{};
  clock_gettime(CLOCK_MONOTONIC, &now);
  return static_cast<int64_t>(now.tv_sec) * 1000000000 + now.tv_nsec;
}

std::unique_ptr<EventLoop> EventLoop::Create(std::string* error) {
  std::unique_ptr<EventLoop> loop(new EventLoop());
  loop->epoll_fd_.Reset(epoll_create1(EPOLL_CLOEXEC));
  if (!loop->epoll_fd_) {
    *error = std::string("epoll_create1: ") + strerror(errno);
    return nullptr;
  }
  loop->wake_fd_.Reset(eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK));
  if (!loop->wake_fd_) {
    *error = std::string("eventfd: ") + strerror(errno);
    return nullptr;
  }
  EventLoop* raw = loop.get();
  if (!loop->AddFd(loop->wake_fd_.get(), EPOLLIN, [raw](uint32_t) { raw->DrainPosted(); })) {
    *error = std::string("epoll_ctl: ") + strerror(errno);
    return nullptr;
  }
  return loop;
}

EventLoop::~EventLoop() = default;

bool EventLoop::AddFd(int fd, uint32_t events, Callback callback) {
  epoll_event event{};
  event.events = events;
  event.data.u64 = kOwnTokenBit | callbacks_.size();
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &event) != 0) return false;
  callbacks_.push_back(std::move(callback));
  return true;
}

bool EventLoop::AddKeyed(int fd, uint32_t events, uint64_t key, int* error) {
  epoll_event event{};
  event.events = events;
  event.data.u64 = key & ~kOwnTokenBit;
  if (epoll_ctl(epoll_fd_.get(), EPOLL_CTL_ADD, fd, &event) != 0) {
    if (error) *error = errno;
    return false;
  }
  if (hide_reap_events_) {
    key_of_fd_[fd] = event.data.u64;
    keys_reported_.erase(event.data.u64);
  }
  return true;
}

void EventLoop::Remove(int fd) {
  epoll_ctl(epoll_fd_.get(), EPOLL_CTL_DEL, fd, nullptr);
  if (auto found = key_of_fd_.find(fd); found != key_of_fd_.end()) {
    keys_reported_.erase(found->second);
    key_of_fd_.erase(found);
  }
}

bool EventLoop::FilterReapEvent(uint64_t key, uint32_t* events) {
  const bool first_report = keys_reported_.insert(key).second;
  // Exit and reap seen in one report: before 6.9 that is an EPOLLIN (the group has exited).
  if (first_report || !(*events & EPOLLHUP)) {
    *events &= ~static_cast<uint32_t>(EPOLLHUP);
    return *events != 0;
  }
  return false;
}

int EventLoop::AddTimer(std::chrono::milliseconds interval, std::function<void()> callback) {
  UniqueFd timer(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!timer) return -1;
  const int timer_fd = timer.get();
  const int timer_id = static_cast<int>(timers_.size());
  timers_.push_back(std::move(timer));
  if (!RescheduleTimer(timer_id, interval)) return -1;
  const bool added = AddFd(timer_fd, EPOLLIN, [timer_fd, callback = std::move(callback)](uint32_t) {
    uint64_t expirations = 0;
    // Several missed periods collapse into one run: a scan catches up with everything.
    if (read(timer_fd, &expirations, sizeof expirations) == sizeof expirations) callback();
  });
  return added ? timer_id : -1;
}

bool EventLoop::RescheduleTimer(int timer_id, std::chrono::milliseconds interval) {
  if (timer_id < 0 || static_cast<size_t>(timer_id) >= timers_.size()) return false;
  itimerspec spec{};
  const auto milliseconds = interval.count() > 0 ? interval.count() : 1;
  spec.it_interval.tv_sec = milliseconds / 1000;
  spec.it_interval.tv_nsec = (milliseconds % 1000) * 1000000;
  spec.it_value = spec.it_interval;
  return timerfd_settime(timers_[timer_id].get(), 0, &spec, nullptr) == 0;
}

int EventLoop::AddDeadlineTimer(std::function<void()> callback) {
  UniqueFd timer(timerfd_create(CLOCK_MONOTONIC, TFD_CLOEXEC | TFD_NONBLOCK));
  if (!timer) return -1;
  const int timer_fd = timer.get();
  const bool added = AddFd(timer_fd, EPOLLIN, [timer_fd, callback = std::move(callback)](uint32_t) {
    uint64_t expirations = 0;
    // EAGAIN when re-armed or disarmed after it fired but before this round ran: nothing due.
    if (read(timer_fd, &expirations, sizeof expirations) == sizeof expirations) callback();
  });
  if (!added) return -1;
  timers_.push_back(std::move(timer));
  return static_cast<int>(timers_.size()) - 1;
}

bool EventLoop::ArmTimerAt(int timer_id, int64_t monotonic_ns) {
  if (timer_id < 0 || static_cast<size_t>(timer_id) >= timers_.size()) return false;
  itimerspec spec{};
  // it_value 0 would disarm: a deadline at or before the epoch of CLOCK_MONOTONIC is "now".
  const int64_t deadline = monotonic_ns > 0 ? monotonic_ns : 1;
  spec.it_value.tv_sec = deadline / 1000000000;
  spec.it_value.tv_nsec = deadline % 1000000000;
  return timerfd_settime(timers_[timer_id].get(), TFD_TIMER_ABSTIME, &spec, nullptr) == 0;
}

bool EventLoop::DisarmTimer(int timer_id) {
  if (timer_id < 0 || static_cast<size_t>(timer_id) >= timers_.size()) return false;
  itimerspec spec{};
  return timerfd_settime(timers_[timer_id].get(), 0, &spec, nullptr) == 0;
}

void EventLoop::Post(std::function<void()> task) {
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    posted_.push_back(std::move(task));
  }
  const uint64_t one = 1;
  (void)!write(wake_fd_.get(), &one, sizeof one);
}

void EventLoop::Stop() {
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    stop_requested_ = true;
  }
  const uint64_t one = 1;
  (void)!write(wake_fd_.get(), &one, sizeof one);
}

void EventLoop::DrainPosted() {
  uint64_t count = 0;
  (void)!read(wake_fd_.get(), &count, sizeof count);
  std::vector<std::function<void()>> tasks;
  {
    std::lock_guard<std::mutex> lock(posted_mutex_);
    tasks.swap(posted_);
  }
  for (auto& task : tasks) task();
}

void EventLoop::Run() {
  constexpr int kBatch = 256;
  epoll_event events[kBatch];
  for (;;) {
    {
      std::lock_guard<std::mutex> lock(posted_mutex_);
      if (stop_requested_) return;
    }
    const int ready = epoll_wait(epoll_fd_.get(), events, kBatch, -1);
    timespec woke{};
    clock_gettime(CLOCK_MONOTONIC, &woke);
    wake_monotonic_ns_ = static_cast<int64_t>(woke.tv_sec) * 1000000000 + woke.tv_nsec;
    if (ready < 0) {
      if (errno == EINTR) continue;
      LogError("epoll_wait failed", {{"err", strerror(errno)}});
      return;
    }
    for (int i = 0; i < ready; ++i) {
      const uint64_t token = events[i].data.u64;
      if (token & kOwnTokenBit) {
        const size_t index = token & ~kOwnTokenBit;
        if (index < callbacks_.size() && callbacks_[index]) callbacks_[index](events[i].events);
      } else if (keyed_handler_) {
        uint32_t keyed_events = events[i].events;
        if (hide_reap_events_ && !FilterReapEvent(token, &keyed_events)) continue;
        keyed_handler_(token, keyed_events);
      }
    }
  }
}

}  // namespace pidfd_exporter
