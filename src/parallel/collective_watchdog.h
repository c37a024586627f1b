// The NCCL backend's watchdog, with neither NCCL nor CUDA in it, so that a fake backend tests it on
// the CPU (tests/parallel/collective_watchdog_test.cpp).
//
// From its own thread it aborts the job when tracked device work stays unfinished for longer than
// the timeout, when a blocking host-side call marked with busy() does (a peer that never joined, a
// shutdown that hangs), or when the backend reports an asynchronous error. Without it a dead peer
// would leave every other rank waiting forever on the GPU.
//
// Abort, from whichever thread gets there first (a second caller waits for the job to end):
//   1. the reason is reported (logged and flushed) before anything that may hang;
//   2. the communicator is aborted (ncclCommAbort), which makes blocked collectives return;
//   3. the job is ended (MPI_Abort).
// Every backend query runs under one mutex with the communicator abort, and none runs once the abort
// has begun or the communicator is gone: NCCL does not allow ncclCommGetAsyncError concurrently
// with ncclCommAbort or ncclCommDestroy on the same communicator.
#pragma once

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <mutex>
#include <optional>
#include <string>
#include <thread>

namespace lnfree::parallel {

class CollectiveWatchdog {
 public:
  // What the watchdog needs of a communicator. All calls but report() and abort_job() come with the
  // watchdog's backend mutex held.
  class Backend {
   public:
    virtual ~Backend() = default;
    // Whether the work behind `token` (from track()) has finished; cudaEventQuery.
    virtual bool finished(void* token) = 0;
    // The token is no longer needed; cudaEventDestroy.
    virtual void release(void* token) = 0;
    // An asynchronous error of the communicator, if it reports one (ncclCommGetAsyncError). Called
    // only between communicator_ready() and communicator_gone().
    virtual std::optional<std::string> async_error() = 0;
    // Logs why the job is aborting; must not block on the communicator.
    virtual void report(const std::string& reason) = 0;
    // Makes blocked collectives return (ncclCommAbort). Called at most once.
    virtual void abort_communicator() = 0;
    // Ends the job (MPI_Abort); does not return in production.
    virtual void abort_job(int exit_code, const std::string& reason) = 0;
  };

  // Starts the watch thread; it wakes every `poll`.
  CollectiveWatchdog(Backend& backend, std::chrono::duration<double> timeout,
                     std::chrono::milliseconds poll = std::chrono::milliseconds(100));
  ~CollectiveWatchdog();
  CollectiveWatchdog(const CollectiveWatchdog&) = delete;
  CollectiveWatchdog& operator=(const CollectiveWatchdog&) = delete;

  // Marks a blocking host-side call for as long as the guard lives.
  class Busy {
   public:
    Busy(CollectiveWatchdog& watchdog, const char* what);
    ~Busy();
    Busy(const Busy&) = delete;
    Busy& operator=(const Busy&) = delete;

   private:
    CollectiveWatchdog& watchdog_;
  };

  // Watches device work enqueued now, described by `what` in the abort reason.
  void track(void* token, std::string what);
  // From here on the backend may be asked for asynchronous errors, until communicator_gone().
  void communicator_ready();
  // Returns once no query of the communicator runs or will run: call before destroying it.
  void communicator_gone();
  // Aborts as described above; returns only if the backend's abort_job() does (tests).
  void abort(int exit_code, const std::string& reason);
  // Stops the watch thread (the destructor does too); tracked tokens are released.
  void stop();

 private:
  struct Pending {
    void* token;
    std::chrono::steady_clock::time_point enqueued;
    std::string what;
  };

  void watch();
  std::optional<std::string> overdue(std::chrono::steady_clock::time_point now);

  Backend& backend_;
  std::chrono::duration<double> timeout_;
  std::chrono::milliseconds poll_;

  std::mutex mutex_;  // everything below, and every backend call but report() and abort_job()
  std::condition_variable wake_;
  std::deque<Pending> pending_;
  const char* busy_what_ = nullptr;
  std::chrono::steady_clock::time_point busy_since_;
  bool queryable_ = false;  // between communicator_ready() and communicator_gone() or an abort
  bool stopping_ = false;
  bool aborted_ = false;  // the abort has run to its end (only tests get past abort_job)
  std::atomic<bool> aborting_{false};
  std::thread thread_;
};

}  // namespace lnfree::parallel
