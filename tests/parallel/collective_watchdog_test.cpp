// The NCCL backend's watchdog against a fake backend (no GPU): what aborts the job, in which order,
// and that no communicator query overlaps the communicator abort or follows it.
#include "parallel/collective_watchdog.h"

#include <gtest/gtest.h>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

namespace lp = lnfree::parallel;
using namespace std::chrono_literals;

namespace {

// Records every call in order. A token is "finished" when its flag is set. While abort_communicator
// runs (it takes 50 ms, as ncclCommAbort may), any async_error() call counts as an overlap.
class FakeBackend : public lp::CollectiveWatchdog::Backend {
 public:
  std::mutex mutex;
  std::vector<std::string> calls;
  std::atomic<int> queries{0};
  std::atomic<int> overlaps{0};
  std::atomic<int> queries_after_abort{0};
  std::atomic<bool> in_abort{false};
  std::atomic<bool> abort_done{false};
  std::atomic<int> communicator_aborts{0};
  std::atomic<int> job_aborts{0};
  std::optional<std::string> error;  // what async_error() reports
  std::string job_reason;

  bool finished(void* token) override { return static_cast<std::atomic<bool>*>(token)->load(); }
  void release(void*) override { record("release"); }
  std::optional<std::string> async_error() override {
    ++queries;
    if (in_abort) ++overlaps;
    if (abort_done) ++queries_after_abort;
    std::lock_guard<std::mutex> lock(mutex);
    return error;
  }
  void report(const std::string& reason) override { record("report: " + reason); }
  void abort_communicator() override {
    record("abort_communicator");
    ++communicator_aborts;
    in_abort = true;
    std::this_thread::sleep_for(50ms);
    in_abort = false;
    abort_done = true;
  }
  void abort_job(int code, const std::string& reason) override {
    record("abort_job " + std::to_string(code));
    ++job_aborts;
    std::lock_guard<std::mutex> lock(mutex);
    job_reason = reason;
  }

  void record(const std::string& call) {
    std::lock_guard<std::mutex> lock(mutex);
    calls.push_back(call);
  }
  std::vector<std::string> snapshot() {
    std::lock_guard<std::mutex> lock(mutex);
    return calls;
  }
  bool wait_for_job_abort(std::chrono::milliseconds limit) {
    const auto until = std::chrono::steady_clock::now() + limit;
    while (job_aborts == 0 && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(1ms);
    return job_aborts > 0;
  }
};

}  // namespace

TEST(CollectiveWatchdog, AnAbortReportsFirstAndNoQueryOverlapsOrFollowsTheCommunicatorAbort) {
  FakeBackend backend;
  lp::CollectiveWatchdog watchdog(backend, 10s, 1ms);  // polls every millisecond
  watchdog.communicator_ready();
  while (backend.queries < 20) std::this_thread::sleep_for(1ms);
  watchdog.abort(7, "rank 1 failed");
  std::this_thread::sleep_for(30ms);  // the watchdog keeps polling
  const auto calls = backend.snapshot();
  ASSERT_EQ(calls.size(), 3u);
  EXPECT_EQ(calls[0], "report: rank 1 failed");  // logged before anything that may hang
  EXPECT_EQ(calls[1], "abort_communicator");
  EXPECT_EQ(calls[2], "abort_job 7");
  EXPECT_EQ(backend.overlaps, 0) << "ncclCommGetAsyncError ran during ncclCommAbort";
  EXPECT_EQ(backend.queries_after_abort, 0) << "the aborted communicator was queried";
  std::printf("%d async-error queries before the abort, %d during, %d after\n", backend.queries.load(),
              backend.overlaps.load(), backend.queries_after_abort.load());
}

TEST(CollectiveWatchdog, TwoThreadsAbortingAbortOnce) {
  FakeBackend backend;
  backend.error = "unhandled system error";  // the watchdog aborts on its own at its first poll
  lp::CollectiveWatchdog watchdog(backend, 10s, 1ms);
  watchdog.communicator_ready();
  watchdog.abort(2, "the trainer failed");  // and the main thread aborts too, at about the same time
  ASSERT_TRUE(backend.wait_for_job_abort(1s));
  std::this_thread::sleep_for(80ms);
  EXPECT_EQ(backend.communicator_aborts, 1);
  EXPECT_EQ(backend.job_aborts, 1);
}

TEST(CollectiveWatchdog, WorkUnfinishedPastTheTimeoutAbortsNamingIt) {
  FakeBackend backend;
  std::atomic<bool> done{true}, never{false};
  lp::CollectiveWatchdog watchdog(backend, 30ms, 1ms);
  watchdog.track(&done, "allreduce of 64 bytes");
  watchdog.track(&never, "allreduce of 4096 bytes");
  ASSERT_TRUE(backend.wait_for_job_abort(2s));
  std::lock_guard<std::mutex> lock(backend.mutex);
  EXPECT_NE(backend.job_reason.find("NCCL allreduce of 4096 bytes unfinished after"), std::string::npos)
      << backend.job_reason;
  EXPECT_NE(backend.job_reason.find("dist.timeout_s"), std::string::npos) << backend.job_reason;
  EXPECT_EQ(backend.calls.front(), "release");  // the finished one was released on the way
}

TEST(CollectiveWatchdog, ABlockedShutdownStepIsGuarded) {
  // What finalize() does while the watchdog still runs: a peer that died makes it block.
  FakeBackend backend;
  lp::CollectiveWatchdog watchdog(backend, 30ms, 1ms);
  watchdog.communicator_ready();
  {
    lp::CollectiveWatchdog::Busy busy(watchdog, "ncclCommFinalize");
    ASSERT_TRUE(backend.wait_for_job_abort(2s));
  }
  std::lock_guard<std::mutex> lock(backend.mutex);
  EXPECT_NE(backend.job_reason.find("ncclCommFinalize blocked for"), std::string::npos) << backend.job_reason;
}

TEST(CollectiveWatchdog, AnAsynchronousErrorAbortsAndNothingAbortsAHealthyRun) {
  FakeBackend backend;
  {
    std::atomic<bool> done{false};
    lp::CollectiveWatchdog watchdog(backend, 10s, 1ms);
    watchdog.communicator_ready();
    watchdog.track(&done, "allreduce of 8 bytes");
    std::this_thread::sleep_for(30ms);
    done = true;
    std::this_thread::sleep_for(30ms);
    watchdog.communicator_gone();
    const int queries = backend.queries;
    std::this_thread::sleep_for(20ms);
    EXPECT_EQ(backend.queries, queries) << "queried after communicator_gone()";
  }
  EXPECT_EQ(backend.job_aborts, 0);
  EXPECT_EQ(backend.snapshot(), std::vector<std::string>{"release"});

  FakeBackend failing;
  failing.error = "remote process exited or there was a network error";
  lp::CollectiveWatchdog watchdog(failing, 10s, 1ms);
  EXPECT_FALSE(failing.wait_for_job_abort(30ms)) << "queried before communicator_ready()";
  watchdog.communicator_ready();
  ASSERT_TRUE(failing.wait_for_job_abort(2s));
  std::lock_guard<std::mutex> lock(failing.mutex);
  EXPECT_NE(failing.job_reason.find("asynchronous error: remote process exited"), std::string::npos);
}
