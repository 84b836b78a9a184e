// EventLoop: one epoll instance and the thread that runs it. It dispatches readiness of
// long-lived fds (timers, signals, the proc connector) to their callbacks, and readiness of
// keyed fds (pidfds) to one keyed handler, without knowing what a process is. Everything
// except Post() and Stop() must be called on the loop thread (or before Run()); Post()
// and Stop() may be called from any thread. Callbacks must not throw.
#pragma once

#include <sys/epoll.h>

#include <chrono>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <unordered_map>
#include <unordered_set>
#include <vector>

#include "unique_fd.h"

namespace pidfd_exporter {

// CLOCK_MONOTONIC in nanoseconds: the clock of ArmTimerAt() deadlines and of the kernel's
// connector stamps, the one clock every exit, reap and hold in the exporter is measured on.
int64_t MonotonicNanoseconds();

class EventLoop {
 public:
  using Callback = std::function<void(uint32_t events)>;
  using KeyedHandler = std::function<void(uint64_t key, uint32_t events)>;

  // nullptr with *error when epoll or eventfd cannot be created.
  static std::unique_ptr<EventLoop> Create(std::string* error);
  ~EventLoop();

  // A long-lived fd; its callback runs for every readiness report. The fd stays owned by
  // the caller and must outlive the registration (or be removed with Remove()).
  bool AddFd(int fd, uint32_t events, Callback callback);
  // A keyed fd (a pidfd): readiness goes to the keyed handler with `key`. Keys must stay
  // below 2^63 (the upper half is the loop's own).
  bool AddKeyed(int fd, uint32_t events, uint64_t key, int* error = nullptr);
  void Remove(int fd);
  void SetKeyedHandler(KeyedHandler handler) { keyed_handler_ = std::move(handler); }
  // For --debug.disable-kernel-features=reap_events on Linux 6.9+: keyed fds report as on
  // 5.3-6.8, where a pidfd wakes at exit but not at the reap. EPOLLHUP is stripped, and a
  // report with EPOLLHUP for a key that already had one (the reap's wake-up) is dropped.
  void HideReapEvents() { hide_reap_events_ = true; }

  // A periodic CLOCK_MONOTONIC timer; the callback gets the expiration count. Returns an
  // id for RescheduleTimer, or -1.
  int AddTimer(std::chrono::milliseconds interval, std::function<void()> callback);
  bool RescheduleTimer(int timer_id, std::chrono::milliseconds interval);
  // A one-shot CLOCK_MONOTONIC timer, disarmed until ArmTimerAt(): for work due at a
  // deadline that moves (the reap checks of exporter/reap_watch.h). Returns an id or -1.
  int AddDeadlineTimer(std::function<void()> callback);
  // Fires the deadline timer once at `monotonic_ns` (absolute; a time already past fires
  // at the next dispatch round). Arming again replaces the previous deadline.
  bool ArmTimerAt(int timer_id, int64_t monotonic_ns);
  bool DisarmTimer(int timer_id);

  // Runs `task` on the loop thread soon. Thread-safe.
  void Post(std::function<void()> task);
  // Makes Run() return after the current dispatch round. Thread-safe.
  void Stop();
  // Dispatches until Stop().
  void Run();
  // CLOCK_MONOTONIC (ns) when the current dispatch round's epoll_wait returned: the time
  // the kernel's reports were seen, however long earlier handlers in the round took.
  int64_t WakeMonotonicNanoseconds() const { return wake_monotonic_ns_; }

 private:
  EventLoop() = default;
  void DrainPosted();

  static constexpr uint64_t kOwnTokenBit = 1ull << 63;
  UniqueFd epoll_fd_;
  UniqueFd wake_fd_;                // eventfd: Post() and Stop() wake epoll_wait through it
  std::deque<Callback> callbacks_;  // by token index; a deque so adding never moves a running callback (token
                                    // = kOwnTokenBit | index)
  std::vector<UniqueFd> timers_;
  KeyedHandler keyed_handler_;
  std::mutex posted_mutex_;
  std::vector<std::function<void()>> posted_;
  bool stop_requested_ = false;  // guarded by posted_mutex_
  int64_t wake_monotonic_ns_ = 0;
  bool hide_reap_events_ = false;
  std::unordered_map<int, uint64_t> key_of_fd_;  // only while hiding reap events
  std::unordered_set<uint64_t> keys_reported_;   // keys that had a report (hiding reap events)
  // Whether a keyed report reaches the handler when reap events are hidden; strips EPOLLHUP.
  bool FilterReapEvent(uint64_t key, uint32_t* events);
};

}  // namespace pidfd_exporter
