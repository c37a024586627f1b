#include "dist/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <mutex>
#include <thread>

namespace lnfree::dist {
namespace {

using Clock = std::chrono::steady_clock;

void check_cuda(cudaError_t status, const char* what) {
  if (status != cudaSuccess)
    fail("{}: CUDA error {}: {}", what, cudaGetErrorName(status), cudaGetErrorString(status));
}

ncclDataType_t nccl_type(DataType type) {
  switch (type) {
    case DataType::kFloat32:
      return ncclFloat32;
    case DataType::kFloat64:
      return ncclFloat64;
    case DataType::kBFloat16:
      return ncclBfloat16;
    case DataType::kInt64:
      return ncclInt64;
    case DataType::kUInt8:
      return ncclUint8;
  }
  return ncclFloat32;
}

ncclRedOp_t nccl_op(Reduction op) {
  switch (op) {
    case Reduction::kSum:
      return ncclSum;
    case Reduction::kAverage:
      return ncclAvg;
    case Reduction::kMax:
      return ncclMax;
    case Reduction::kMin:
      return ncclMin;
  }
  return ncclSum;
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<MpiCommunicator> host, double timeout_s)
      : host_(std::move(host)), timeout_(std::chrono::duration<double>(timeout_s)) {
    int devices = 0;
    const cudaError_t counted = cudaGetDeviceCount(&devices);
    std::string problem;
    if (counted != cudaSuccess) {
      problem = fmt::format("{}: cannot list CUDA devices ({}: {})", host_->host(), cudaGetErrorName(counted),
                            cudaGetErrorString(counted));
    } else if (host_->local_size() > devices) {
      const char* visible = std::getenv("CUDA_VISIBLE_DEVICES");
      problem = fmt::format(
          "{}: {} ranks were started on this node but device cuda sees {} GPU(s) (CUDA_VISIBLE_DEVICES={}); "
          "start at most {} rank(s) per node (mpirun --npernode {}, srun --ntasks-per-node={})",
          host_->host(), host_->local_size(), devices, visible ? visible : "unset", devices, devices,
          devices);
    }
    agree_or_fail(*host_, problem);
    device_ = host_->local_rank();
    check_cuda(cudaSetDevice(device_), "cudaSetDevice");
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    watchdog_ = std::thread([this] { watch(); });
    try {
      ncclUniqueId id{};
      if (host_->rank() == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
      host_->host_broadcast(&id, sizeof(id), 0);
      Busy busy(*this, "ncclCommInitRank");
      check(ncclCommInitRank(&comm_, host_->world_size(), id, host_->rank()), "ncclCommInitRank");
      ready_.store(true, std::memory_order_release);
    } catch (...) {
      stop_watchdog();
      cudaStreamDestroy(stream_);
      throw;
    }
    int version = 0;
    ncclGetVersion(&version);
    if (host_->rank() == 0)
      spdlog::info("NCCL {} communicator: {} ranks, GPU {} on each rank's node-local index", version,
                   host_->world_size(), device_);
  }

  ~NcclCommunicator() override {
    stop_watchdog();
    if (comm_ != nullptr) {
      cudaStreamSynchronize(stream_);
      ncclCommDestroy(comm_);
    }
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  int rank() const override { return host_->rank(); }
  int world_size() const override { return host_->world_size(); }
  int local_rank() const override { return host_->local_rank(); }
  int local_size() const override { return host_->local_size(); }
  std::string backend() const override { return "nccl"; }
  Memory memory() const override { return Memory::kCuda; }

  void allreduce(void* data, std::size_t count, DataType type, Reduction op, void* stream) override {
    after(stream);
    {
      Busy busy(*this, "ncclAllReduce");
      check(ncclAllReduce(data, data, count, nccl_type(type), nccl_op(op), comm_, stream_), "ncclAllReduce");
    }
    track("allreduce", count * size_of(type));
  }

  void broadcast(void* data, std::size_t count, DataType type, int root, void* stream) override {
    after(stream);
    {
      Busy busy(*this, "ncclBroadcast");
      check(ncclBroadcast(data, data, count, nccl_type(type), root, comm_, stream_), "ncclBroadcast");
    }
    track("broadcast", count * size_of(type));
  }

  void allgather(const void* send, void* recv, std::size_t count, DataType type, void* stream) override {
    after(stream);
    {
      Busy busy(*this, "ncclAllGather");
      check(ncclAllGather(send, recv, count, nccl_type(type), comm_, stream_), "ncclAllGather");
    }
    track("allgather", count * size_of(type));
  }

  void join(void* stream) override {
    cudaEvent_t done;
    check_cuda(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventRecord(done, stream_), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(static_cast<cudaStream_t>(stream), done, 0), "cudaStreamWaitEvent");
    cudaEventDestroy(done);
  }

  void host_allreduce(void* data, std::size_t count, DataType type, Reduction op) override {
    host_->host_allreduce(data, count, type, op);
  }
  void host_broadcast(void* data, std::size_t bytes, int root) override {
    host_->host_broadcast(data, bytes, root);
  }
  void host_allgather(const void* send, void* recv, std::size_t bytes) override {
    host_->host_allgather(send, recv, bytes);
  }
  void barrier() override { host_->barrier(); }

  [[noreturn]] void abort(int exit_code, const std::string& reason) override {
    if (comm_ != nullptr) ncclCommAbort(comm_);
    host_->abort(exit_code, reason);
    std::_Exit(exit_code);  // not reached: MPI_Abort ends the process
  }

  void finalize() override {
    stop_watchdog();
    if (comm_ != nullptr) {
      check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
      ready_.store(false);
      ncclCommDestroy(comm_);
      comm_ = nullptr;
    }
    host_->finalize();
  }

  using Communicator::host_allgather;
  using Communicator::host_allreduce;

 private:
  struct Pending {
    cudaEvent_t done;
    Clock::time_point enqueued;
    std::string what;
  };

  // Marks a blocking host-side NCCL call, so that the watchdog sees a call that never returns.
  struct Busy {
    Busy(NcclCommunicator& c, const char* what) : comm(c) {
      std::lock_guard<std::mutex> lock(comm.mutex_);
      comm.busy_what_ = what;
      comm.busy_since_ = Clock::now();
    }
    ~Busy() {
      std::lock_guard<std::mutex> lock(comm.mutex_);
      comm.busy_what_ = nullptr;
    }
    NcclCommunicator& comm;
  };

  void check(ncclResult_t result, const char* what) {
    if (result == ncclSuccess) return;
    const char* detail = comm_ != nullptr ? ncclGetLastError(comm_) : "";
    fail("rank {}: {} failed: {} {}", host_->rank(), what, ncclGetErrorString(result), detail ? detail : "");
  }

  // The communication stream waits for the work already queued on the caller's stream.
  void after(void* stream) {
    cudaEvent_t ready;
    check_cuda(cudaEventCreateWithFlags(&ready, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventRecord(ready, static_cast<cudaStream_t>(stream)), "cudaEventRecord");
    check_cuda(cudaStreamWaitEvent(stream_, ready, 0), "cudaStreamWaitEvent");
    cudaEventDestroy(ready);
  }

  void track(const char* what, std::size_t bytes) {
    Pending pending{nullptr, Clock::now(), fmt::format("{} of {} bytes", what, bytes)};
    check_cuda(cudaEventCreateWithFlags(&pending.done, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventRecord(pending.done, stream_), "cudaEventRecord");
    std::lock_guard<std::mutex> lock(mutex_);
    pending_.push_back(std::move(pending));
  }

  void watch() {
    cudaSetDevice(device_);
    std::unique_lock<std::mutex> lock(mutex_);
    while (!stopping_) {
      wake_.wait_for(lock, std::chrono::milliseconds(100));
      while (!pending_.empty() && cudaEventQuery(pending_.front().done) == cudaSuccess) {
        cudaEventDestroy(pending_.front().done);
        pending_.pop_front();
      }
      const auto now = Clock::now();
      std::string reason;
      if (!pending_.empty() && now - pending_.front().enqueued > timeout_)
        reason = fmt::format("NCCL {} unfinished after {:.0f} s", pending_.front().what, timeout_.count());
      if (busy_what_ != nullptr && now - busy_since_ > timeout_)
        reason = fmt::format("{} blocked for {:.0f} s", busy_what_, timeout_.count());
      ncclResult_t async = ncclSuccess;
      if (ready_.load(std::memory_order_acquire) && ncclCommGetAsyncError(comm_, &async) == ncclSuccess &&
          async != ncclSuccess && async != ncclInProgress)
        reason = fmt::format("NCCL reported an asynchronous error: {}", ncclGetErrorString(async));
      if (!reason.empty()) {
        lock.unlock();
        abort(1, reason + " (a peer rank died or hung; dist.timeout_s sets the limit)");
      }
    }
  }

  void stop_watchdog() {
    {
      std::lock_guard<std::mutex> lock(mutex_);
      stopping_ = true;
    }
    wake_.notify_all();
    if (watchdog_.joinable()) watchdog_.join();
  }

  std::unique_ptr<MpiCommunicator> host_;
  std::chrono::duration<double> timeout_;
  int device_ = 0;
  ncclComm_t comm_ = nullptr;
  std::atomic<bool> ready_{false};  // comm_ is initialised (the watchdog may query it)
  cudaStream_t stream_ = nullptr;

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> pending_;
  const char* busy_what_ = nullptr;
  Clock::time_point busy_since_;
  bool stopping_ = false;
  std::thread watchdog_;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<MpiCommunicator> host,
                                                     double timeout_s) {
  return std::make_unique<NcclCommunicator>(std::move(host), timeout_s);
}

}  // namespace lnfree::dist
