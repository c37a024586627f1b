#include "parallel/single_communicator.h"

#include <spdlog/spdlog.h>

#include <cstdlib>
#include <cstring>
#include <string>

namespace lnfree::parallel {

namespace {
void check_root(int root) {
  if (root != 0) fail("broadcast: root rank {} does not exist in a single-process run", root);
}
}  // namespace

void SingleCommunicator::broadcast(void*, std::size_t, DataType, int root, void*) { check_root(root); }

void SingleCommunicator::allgather(const void* send, void* recv, std::size_t count, DataType type, void*) {
  if (send != recv) std::memmove(recv, send, count * size_of(type));
}

void SingleCommunicator::host_broadcast(void*, std::size_t, int root) { check_root(root); }

void SingleCommunicator::host_allgather(const void* send, void* recv, std::size_t bytes) {
  if (send != recv) std::memmove(recv, send, bytes);
}

void SingleCommunicator::abort(int exit_code, const std::string& reason) {
  spdlog::critical("aborting: {}", reason);
  std::_Exit(exit_code);
}

}  // namespace lnfree::parallel
