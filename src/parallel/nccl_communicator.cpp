#include "parallel/nccl_communicator.h"

#include <cuda_runtime_api.h>
#include <nccl.h>
#include <spdlog/spdlog.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <optional>
#include <string>
#include <utility>

#include "parallel/collective_watchdog.h"
#include "parallel/cuda_device.h"

namespace lnfree::parallel {
namespace {

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

// The watchdog's view of the communicator (collective_watchdog.h says what each call must do).
class NcclWatchdogBackend : public CollectiveWatchdog::Backend {
 public:
  NcclWatchdogBackend(MpiCommunicator& host, int device) : host_(host), device_(device) {}

  void set_comm(ncclComm_t comm) { comm_.store(comm); }

  bool finished(void* token) override {
    select_device();
    return cudaEventQuery(static_cast<cudaEvent_t>(token)) == cudaSuccess;
  }
  void release(void* token) override { cudaEventDestroy(static_cast<cudaEvent_t>(token)); }
  std::optional<std::string> async_error() override {
    ncclResult_t async = ncclSuccess;
    const ncclComm_t comm = comm_.load();
    if (comm == nullptr || ncclCommGetAsyncError(comm, &async) != ncclSuccess || async == ncclSuccess ||
        async == ncclInProgress)
      return std::nullopt;
    return std::string(ncclGetErrorString(async));
  }
  void report(const std::string& reason) override {
    spdlog::critical("rank {} of {} on {}: NCCL watchdog: {}; aborting the communicator, then the job",
                     host_.rank(), host_.world_size(), host_.host(), reason);
    spdlog::default_logger()->flush();
  }
  void abort_communicator() override {
    if (const ncclComm_t comm = comm_.exchange(nullptr)) ncclCommAbort(comm);
  }
  void abort_job(int exit_code, const std::string& reason) override { host_.abort(exit_code, reason); }

  // The communicator, unless an abort took it.
  ncclComm_t comm() const { return comm_.load(); }

 private:
  // The watchdog thread's CUDA calls go to the rank's device.
  void select_device() {
    if (!device_selected_) cudaSetDevice(device_), device_selected_ = true;
  }

  MpiCommunicator& host_;
  int device_;
  bool device_selected_ = false;  // on the watchdog thread
  std::atomic<ncclComm_t> comm_{nullptr};
};

// This rank's device and its identity ("host busid") for the one-GPU-per-rank check.
int select_device(MpiCommunicator& host) {
  int devices = 0;
  const cudaError_t counted = cudaGetDeviceCount(&devices);
  DeviceChoice choice;
  if (counted != cudaSuccess)
    choice.problem = fmt::format("{}: cannot list CUDA devices ({}: {})", host.host(),
                                 cudaGetErrorName(counted), cudaGetErrorString(counted));
  else
    choice = choose_cuda_device(host.host(), host.local_rank(), host.local_size(), devices,
                                std::getenv("CUDA_VISIBLE_DEVICES"));
  agree_or_fail(host, choice.problem);
  check_cuda(cudaSetDevice(choice.device), "cudaSetDevice");
  char bus[64] = {};
  check_cuda(cudaDeviceGetPCIBusId(bus, sizeof(bus), choice.device), "cudaDeviceGetPCIBusId");
  const std::string problem = shared_devices(host.host_allgather(fmt::format("{} {}", host.host(), bus)));
  if (!problem.empty()) fail("{}", problem);  // every rank computed the same list
  return choice.device;
}

class NcclCommunicator : public Communicator {
 public:
  NcclCommunicator(std::unique_ptr<MpiCommunicator> host, double timeout_s)
      : host_(std::move(host)),
        device_(select_device(*host_)),
        backend_(*host_, device_),
        watchdog_(backend_, std::chrono::duration<double>(timeout_s)) {
    check_cuda(cudaStreamCreateWithFlags(&stream_, cudaStreamNonBlocking), "cudaStreamCreate");
    try {
      ncclUniqueId id{};
      if (host_->rank() == 0) check(ncclGetUniqueId(&id), "ncclGetUniqueId");
      host_->host_broadcast(&id, sizeof(id), 0);
      ncclComm_t comm = nullptr;
      {
        CollectiveWatchdog::Busy busy(watchdog_, "ncclCommInitRank");
        check(ncclCommInitRank(&comm, host_->world_size(), id, host_->rank()), "ncclCommInitRank");
      }
      backend_.set_comm(comm);
      watchdog_.communicator_ready();
    } catch (...) {
      watchdog_.stop();
      cudaStreamDestroy(stream_);
      throw;
    }
    int version = 0;
    ncclGetVersion(&version);
    if (host_->rank() == 0)
      spdlog::info("NCCL {} communicator: {} ranks, one GPU each (rank 0: device {})", version,
                   host_->world_size(), device_);
  }

  ~NcclCommunicator() override {
    shut_down();
    if (stream_ != nullptr) cudaStreamDestroy(stream_);
  }

  int rank() const override { return host_->rank(); }
  int world_size() const override { return host_->world_size(); }
  int local_rank() const override { return host_->local_rank(); }
  int local_size() const override { return host_->local_size(); }
  std::string backend() const override { return "nccl"; }
  Memory memory() const override { return Memory::kCuda; }
  int cuda_device() const override { return device_; }

  void allreduce(void* data, std::size_t count, DataType type, Reduction op, void* stream) override {
    after(stream);
    {
      CollectiveWatchdog::Busy busy(watchdog_, "ncclAllReduce");
      check(ncclAllReduce(data, data, count, nccl_type(type), nccl_op(op), comm(), stream_), "ncclAllReduce");
    }
    track("allreduce", count * size_of(type));
  }

  void broadcast(void* data, std::size_t count, DataType type, int root, void* stream) override {
    after(stream);
    {
      CollectiveWatchdog::Busy busy(watchdog_, "ncclBroadcast");
      check(ncclBroadcast(data, data, count, nccl_type(type), root, comm(), stream_), "ncclBroadcast");
    }
    track("broadcast", count * size_of(type));
  }

  void allgather(const void* send, void* recv, std::size_t count, DataType type, void* stream) override {
    after(stream);
    {
      CollectiveWatchdog::Busy busy(watchdog_, "ncclAllGather");
      check(ncclAllGather(send, recv, count, nccl_type(type), comm(), stream_), "ncclAllGather");
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
    watchdog_.abort(exit_code, reason);
    std::_Exit(exit_code);  // not reached: MPI_Abort ends the process
  }

  void finalize() override {
    shut_down();
    host_->finalize();
  }

  using Communicator::host_allgather;
  using Communicator::host_allreduce;

 private:
  ncclComm_t comm() const {
    const ncclComm_t c = backend_.comm();
    if (c == nullptr) fail("rank {}: the NCCL communicator was aborted or finalised", host_->rank());
    return c;
  }

  // Waits for the communication stream, flushes and destroys the communicator, with the watchdog
  // still running: a peer that died makes any of these hang, and the watchdog then aborts the job.
  void shut_down() {
    if (const ncclComm_t c = backend_.comm()) {
      {
        CollectiveWatchdog::Busy busy(watchdog_, "shutdown: waiting for the communication stream");
        check_cuda(cudaStreamSynchronize(stream_), "cudaStreamSynchronize");
      }
      {
        CollectiveWatchdog::Busy busy(watchdog_, "ncclCommFinalize");
        check(ncclCommFinalize(c), "ncclCommFinalize");
      }
      watchdog_.communicator_gone();
      backend_.set_comm(nullptr);
      ncclCommDestroy(c);
    }
    watchdog_.stop();
  }

  void check(ncclResult_t result, const char* what) {
    if (result == ncclSuccess) return;
    const ncclComm_t c = backend_.comm();
    const char* detail = c != nullptr ? ncclGetLastError(c) : "";
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
    cudaEvent_t done;
    check_cuda(cudaEventCreateWithFlags(&done, cudaEventDisableTiming), "cudaEventCreate");
    check_cuda(cudaEventRecord(done, stream_), "cudaEventRecord");
    watchdog_.track(done, fmt::format("{} of {} bytes", what, bytes));
  }

  // Declaration order is construction order: the device is chosen before the watchdog starts.
  std::unique_ptr<MpiCommunicator> host_;
  int device_;
  NcclWatchdogBackend backend_;
  CollectiveWatchdog watchdog_;
  cudaStream_t stream_ = nullptr;
};

}  // namespace

std::unique_ptr<Communicator> make_nccl_communicator(std::unique_ptr<MpiCommunicator> host,
                                                     double timeout_s) {
  return std::make_unique<NcclCommunicator>(std::move(host), timeout_s);
}

}  // namespace lnfree::parallel
