// The communicator: everything the trainer knows about the other ranks of a data-parallel job.
// Backends (one per process, from connect.h): SingleCommunicator (no launcher, no MPI),
// MpiCommunicator (CPU tensors) and NcclCommunicator (CUDA tensors, one GPU per rank). The trainer
// includes neither mpi.h nor nccl.h, and this header needs neither LibTorch nor CUDA.
//
// Two planes:
//   data plane     collectives on buffers in memory() (gradient buckets, small tensors). The host
//                  backends finish before returning. The NCCL backend enqueues the collective on its
//                  communication stream after the work already queued on `stream` (a cudaStream_t
//                  passed as void*; null = the legacy default stream) and returns at once;
//                  join(stream) makes `stream` wait for everything enqueued so far.
//   control plane  blocking collectives on host memory (flags, metrics, identity checks) on every
//                  backend; the NCCL backend runs them over MPI.
// Every rank must call the same collectives in the same order, as with MPI itself.
#pragma once

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "util/error.h"

namespace lnfree::parallel {

enum class DataType { kFloat32, kFloat64, kBFloat16, kInt64, kUInt8 };
std::size_t size_of(DataType type);
const char* name_of(DataType type);

// kAverage is the sum divided by the world size.
enum class Reduction { kSum, kAverage, kMax, kMin };

enum class Memory { kHost, kCuda };

// An error that every rank raises at the same point of the program (for example a config that
// differs between ranks, found by a collective check). The ranks shut down together, without
// MPI_Abort; any other exception on one rank aborts the whole job (run_guard.h).
class CollectiveError : public Error {
 public:
  using Error::Error;
};

class Communicator {
 public:
  virtual ~Communicator();

  virtual int rank() const = 0;
  virtual int world_size() const = 0;
  // Index among the ranks on this node; the GPU a rank uses on device cuda.
  virtual int local_rank() const = 0;
  virtual int local_size() const = 0;
  // "single", "mpi" or "nccl".
  virtual std::string backend() const = 0;
  // Where data-plane buffers live.
  virtual Memory memory() const = 0;
  // The CUDA device this rank's collectives use (the NCCL backend chose it: cuda_device.h), or -1
  // for host backends; a CUDA run on a host backend makes the same choice itself.
  virtual int cuda_device() const { return -1; }

  // --- data plane (buffers in memory(), in place) ---
  virtual void allreduce(void* data, std::size_t count, DataType type, Reduction op,
                         void* stream = nullptr) = 0;
  virtual void broadcast(void* data, std::size_t count, DataType type, int root, void* stream = nullptr) = 0;
  // recv holds world_size() * count elements: rank r's `count` elements at offset r * count.
  virtual void allgather(const void* send, void* recv, std::size_t count, DataType type,
                         void* stream = nullptr) = 0;
  // Orders `stream` after every data-plane collective enqueued so far (no-op on host backends).
  virtual void join(void* stream);

  // --- control plane (host memory, blocking) ---
  virtual void host_allreduce(void* data, std::size_t count, DataType type, Reduction op) = 0;
  virtual void host_broadcast(void* data, std::size_t bytes, int root) = 0;
  // recv holds world_size() * bytes bytes.
  virtual void host_allgather(const void* send, void* recv, std::size_t bytes) = 0;
  virtual void barrier() = 0;

  // Ends the whole job now with `exit_code` (MPI_Abort); `reason` is logged first.
  [[noreturn]] virtual void abort(int exit_code, const std::string& reason) = 0;
  // Orderly end of communication (MPI_Finalize) once every rank has finished; idempotent.
  virtual void finalize() = 0;

  // --- conveniences over the control plane ---
  double host_allreduce(double value, Reduction op);
  std::int64_t host_allreduce(std::int64_t value, Reduction op);
  // Every rank's string, in rank order.
  std::vector<std::string> host_allgather(const std::string& value);
};

// Every rank passes its own problem (empty = none). If any rank has one, every rank throws the same
// CollectiveError listing each failing rank's problem; otherwise all return. A collective call.
void agree_or_fail(Communicator& comm, const std::string& problem);

}  // namespace lnfree::parallel
