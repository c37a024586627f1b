#include "parallel/connect.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <mutex>
#include <utility>

#include "config/train_config.h"
#include "parallel/launch.h"
#include "parallel/single_communicator.h"
#if LNFREE_HAVE_MPI
#include "parallel/mpi_communicator.h"
#endif
#if LNFREE_HAVE_NCCL
#include "parallel/nccl_communicator.h"
#endif

namespace lnfree::parallel {
namespace {

std::shared_ptr<Communicator> create(const ConnectOptions& options) {
  const LaunchInfo launch = detect_launch();
  if (launch.world_size == 1) return std::make_shared<SingleCommunicator>();
#if LNFREE_HAVE_MPI
  auto mpi = std::make_unique<MpiCommunicator>(launch);
  if (options.memory == Memory::kHost) return mpi;
#if LNFREE_HAVE_NCCL
  if (mpi->rank() == 0)
    for (const char* name : {"NCCL_DEBUG", "NCCL_SOCKET_IFNAME", "NCCL_IB_DISABLE", "NCCL_NET_GDR_LEVEL",
                             "NCCL_P2P_LEVEL", "NCCL_BUFFSIZE", "NCCL_ALGO", "NCCL_PROTO"})
      if (const char* value = std::getenv(name)) spdlog::info("{}={}", name, value);
  return make_nccl_communicator(
      std::move(mpi), options.timeout_s.value_or(static_cast<double>(config::DistConfig{}.timeout_s)));
#else
  fail(
      "launched by {} as {} ranks on device cuda, but this lnfree was built without NCCL; rebuild with CUDA "
      "and NCCL available (cmake -DLNFREE_WITH_NCCL=ON, NCCL_ROOT=...)",
      launch.launcher, launch.world_size);
#endif
#else
  (void)options;
  fail(
      "launched by {} as {} ranks, but this lnfree was built without MPI; install Open MPI (libopenmpi-dev) "
      "and rebuild",
      launch.launcher, launch.world_size);
#endif
}

}  // namespace

std::shared_ptr<Communicator> connect(const ConnectOptions& options) {
  static std::mutex mutex;
  static std::shared_ptr<Communicator> communicator;
  static Memory memory = Memory::kHost;
  std::lock_guard<std::mutex> lock(mutex);
  if (!communicator) {
    communicator = create(options);
    memory = options.memory;
  } else if (memory != options.memory && communicator->world_size() > 1) {
    fail("this process already has a {} communicator; it cannot switch to {} memory", communicator->backend(),
         options.memory == Memory::kCuda ? "CUDA" : "host");
  }
  return communicator;
}

bool built_with_mpi() { return LNFREE_HAVE_MPI != 0; }
bool built_with_nccl() { return LNFREE_HAVE_NCCL != 0; }

}  // namespace lnfree::parallel
