#include "parallel/mpi_communicator.h"

#include <mpi.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <climits>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <string>
#include <thread>

namespace lnfree::parallel {
namespace {

bool finalized() {
  int done = 0;
  MPI_Finalized(&done);
  return done != 0;
}

void finalize_at_exit() {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (initialised && !finalized()) MPI_Finalize();
}

// What MPI_Init_thread provided, and the thread that called it: with less than
// MPI_THREAD_MULTIPLE, MPI may be called only from that thread (the NCCL watchdog aborts from its own).
int thread_level = MPI_THREAD_SINGLE;
std::thread::id mpi_thread;

void initialise_once() {
  int initialised = 0;
  MPI_Initialized(&initialised);
  if (initialised) return;
  if (finalized()) fail("MPI was already finalised in this process; it cannot be started again");
  int provided = 0;
  if (MPI_Init_thread(nullptr, nullptr, MPI_THREAD_MULTIPLE, &provided) != MPI_SUCCESS)
    fail("MPI_Init_thread failed");
  thread_level = provided;
  mpi_thread = std::this_thread::get_id();
  if (provided < MPI_THREAD_MULTIPLE)
    spdlog::debug(
        "MPI provides thread level {} (< MPI_THREAD_MULTIPLE): other threads end the job without MPI",
        provided);
  std::atexit(finalize_at_exit);
}

MPI_Datatype mpi_type(DataType type) {
  switch (type) {
    case DataType::kFloat32:
      return MPI_FLOAT;
    case DataType::kFloat64:
      return MPI_DOUBLE;
    case DataType::kInt64:
      return MPI_INT64_T;
    case DataType::kUInt8:
      return MPI_UINT8_T;
    case DataType::kBFloat16:
      break;
  }
  fail("MPI backend: data type {} is not supported (use float32 on the CPU)", name_of(type));
}

MPI_Op mpi_op(Reduction op) {
  switch (op) {
    case Reduction::kSum:
    case Reduction::kAverage:
      return MPI_SUM;
    case Reduction::kMax:
      return MPI_MAX;
    case Reduction::kMin:
      return MPI_MIN;
  }
  return MPI_SUM;
}

// Divides by the world size in place: the sum / W, rounded once (not a multiplication by 1/W).
void divide(void* data, std::size_t count, DataType type, int world) {
  switch (type) {
    case DataType::kFloat32: {
      auto* p = static_cast<float*>(data);
      const auto w = static_cast<float>(world);
      for (std::size_t i = 0; i < count; ++i) p[i] /= w;
      break;
    }
    case DataType::kFloat64: {
      auto* p = static_cast<double*>(data);
      for (std::size_t i = 0; i < count; ++i) p[i] /= world;
      break;
    }
    case DataType::kInt64: {
      auto* p = static_cast<std::int64_t*>(data);
      for (std::size_t i = 0; i < count; ++i) p[i] /= world;
      break;
    }
    default:
      fail("MPI backend: cannot average data of type {}", name_of(type));
  }
}

constexpr std::size_t kMaxCount = INT_MAX;

}  // namespace

MpiCommunicator::MpiCommunicator(const LaunchInfo& launch) {
  initialise_once();
  MPI_Comm_rank(MPI_COMM_WORLD, &rank_);
  MPI_Comm_size(MPI_COMM_WORLD, &world_);
  char name[MPI_MAX_PROCESSOR_NAME] = {};
  int length = 0;
  MPI_Get_processor_name(name, &length);
  host_.assign(name, static_cast<std::size_t>(length));
  if (world_ != launch.world_size || rank_ != launch.rank) {
    fail(
        "launched by {} as rank {} of {}, but MPI sees rank {} of {}: this MPI library could not reach the "
        "launcher's process manager. Under SLURM use srun --mpi=pmix (srun --mpi=list shows the choices) or "
        "mpirun inside the allocation; otherwise start the ranks with this MPI's mpirun",
        launch.launcher, launch.rank, launch.world_size, rank_, world_);
  }
  // Ranks sharing a node (and its GPUs), from MPI rather than the launcher's variables.
  MPI_Comm node;
  MPI_Comm_split_type(MPI_COMM_WORLD, MPI_COMM_TYPE_SHARED, rank_, MPI_INFO_NULL, &node);
  MPI_Comm_rank(node, &local_rank_);
  MPI_Comm_size(node, &local_size_);
  MPI_Comm_free(&node);
  if (local_rank_ != launch.local_rank)
    spdlog::warn("rank {} on {}: the launcher says local rank {}, MPI says {}; using MPI's", rank_, host_,
                 launch.local_rank, local_rank_);
}

void MpiCommunicator::allreduce(void* data, std::size_t count, DataType type, Reduction op, void*) {
  host_allreduce(data, count, type, op);
}

void MpiCommunicator::broadcast(void* data, std::size_t count, DataType type, int root, void*) {
  auto* bytes = static_cast<char*>(data);
  for (std::size_t done = 0; done < count;) {
    const std::size_t n = std::min(kMaxCount, count - done);
    MPI_Bcast(bytes + done * size_of(type), static_cast<int>(n), mpi_type(type), root, MPI_COMM_WORLD);
    done += n;
  }
}

void MpiCommunicator::allgather(const void* send, void* recv, std::size_t count, DataType type, void*) {
  if (count > kMaxCount) fail("MPI allgather: {} elements per rank exceed MPI's int count", count);
  MPI_Allgather(send, static_cast<int>(count), mpi_type(type), recv, static_cast<int>(count), mpi_type(type),
                MPI_COMM_WORLD);
}

void MpiCommunicator::host_allreduce(void* data, std::size_t count, DataType type, Reduction op) {
  auto* bytes = static_cast<char*>(data);
  for (std::size_t done = 0; done < count;) {
    const std::size_t n = std::min(kMaxCount, count - done);
    MPI_Allreduce(MPI_IN_PLACE, bytes + done * size_of(type), static_cast<int>(n), mpi_type(type), mpi_op(op),
                  MPI_COMM_WORLD);
    done += n;
  }
  if (op == Reduction::kAverage) divide(data, count, type, world_);
}

void MpiCommunicator::host_broadcast(void* data, std::size_t bytes, int root) {
  broadcast(data, bytes, DataType::kUInt8, root);
}

void MpiCommunicator::host_allgather(const void* send, void* recv, std::size_t bytes) {
  allgather(send, recv, bytes, DataType::kUInt8);
}

void MpiCommunicator::barrier() { MPI_Barrier(MPI_COMM_WORLD); }

void MpiCommunicator::abort(int exit_code, const std::string& reason) {
  spdlog::critical("rank {} of {} on {}: aborting the job: {}", rank_, world_, host_, reason);
  spdlog::default_logger()->flush();
  // MPI_Abort from another thread needs MPI_THREAD_MULTIPLE; without it the process exits, and the
  // launcher (mpirun, srun) ends the other ranks when one exits non-zero.
  if (thread_level >= MPI_THREAD_MULTIPLE || std::this_thread::get_id() == mpi_thread)
    MPI_Abort(MPI_COMM_WORLD, exit_code);
  std::_Exit(exit_code);  // MPI_Abort does not return; this keeps [[noreturn]] honest
}

void MpiCommunicator::finalize() {
  if (!finalized()) MPI_Finalize();
}

}  // namespace lnfree::parallel
