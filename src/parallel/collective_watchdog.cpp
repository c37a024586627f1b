#include "parallel/collective_watchdog.h"

#include <fmt/format.h>

#include <utility>

namespace lnfree::parallel {

using Clock = std::chrono::steady_clock;

CollectiveWatchdog::CollectiveWatchdog(Backend& backend, std::chrono::duration<double> timeout,
                                       std::chrono::milliseconds poll)
    : backend_(backend), timeout_(timeout), poll_(poll) {
  thread_ = std::thread([this] { watch(); });
}

CollectiveWatchdog::~CollectiveWatchdog() { stop(); }

CollectiveWatchdog::Busy::Busy(CollectiveWatchdog& watchdog, const char* what) : watchdog_(watchdog) {
  std::lock_guard<std::mutex> lock(watchdog_.mutex_);
  watchdog_.busy_what_ = what;
  watchdog_.busy_since_ = Clock::now();
}

CollectiveWatchdog::Busy::~Busy() {
  std::lock_guard<std::mutex> lock(watchdog_.mutex_);
  watchdog_.busy_what_ = nullptr;
}

void CollectiveWatchdog::track(void* token, std::string what) {
  std::lock_guard<std::mutex> lock(mutex_);
  pending_.push_back({token, Clock::now(), std::move(what)});
}

void CollectiveWatchdog::communicator_ready() {
  std::lock_guard<std::mutex> lock(mutex_);
  if (!aborting_.load()) queryable_ = true;
}

void CollectiveWatchdog::communicator_gone() {
  // Taking the mutex waits for a query in flight; none starts afterwards.
  std::lock_guard<std::mutex> lock(mutex_);
  queryable_ = false;
}

void CollectiveWatchdog::abort(int exit_code, const std::string& reason) {
  if (aborting_.exchange(true)) {
    // Another thread is aborting: the job ends with its reason.
    std::unique_lock<std::mutex> lock(mutex_);
    wake_.wait(lock, [this] { return aborted_; });
    return;
  }
  backend_.report(reason);
  {
    // No query of the communicator runs while it is aborted, or after.
    std::lock_guard<std::mutex> lock(mutex_);
    queryable_ = false;
    backend_.abort_communicator();
  }
  backend_.abort_job(exit_code, reason);
  {
    std::lock_guard<std::mutex> lock(mutex_);
    aborted_ = true;
  }
  wake_.notify_all();
}

std::optional<std::string> CollectiveWatchdog::overdue(Clock::time_point now) {
  while (!pending_.empty() && backend_.finished(pending_.front().token)) {
    backend_.release(pending_.front().token);
    pending_.pop_front();
  }
  // Work completes in order on the one communication stream: the oldest entry is the one to time.
  if (!pending_.empty() && now - pending_.front().enqueued > timeout_)
    return fmt::format("NCCL {} unfinished after {:.0f} s", pending_.front().what, timeout_.count());
  if (busy_what_ != nullptr && now - busy_since_ > timeout_)
    return fmt::format("{} blocked for {:.0f} s", busy_what_, timeout_.count());
  if (queryable_) {
    if (auto error = backend_.async_error())
      return fmt::format("NCCL reported an asynchronous error: {}", *error);
  }
  return std::nullopt;
}

void CollectiveWatchdog::watch() {
  std::unique_lock<std::mutex> lock(mutex_);
  while (!stopping_) {
    wake_.wait_for(lock, poll_);
    if (stopping_ || aborting_.load()) continue;
    if (auto reason = overdue(Clock::now())) {
      lock.unlock();
      abort(1, *reason + " (a peer rank died or hung; dist.timeout_s sets the limit)");
      lock.lock();
    }
  }
}

void CollectiveWatchdog::stop() {
  {
    std::lock_guard<std::mutex> lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_all();
  if (thread_.joinable()) thread_.join();
  std::lock_guard<std::mutex> lock(mutex_);
  for (auto& p : pending_) backend_.release(p.token);
  pending_.clear();
}

}  // namespace lnfree::parallel
