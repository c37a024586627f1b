#include "parallel/communicator.h"

#include <fmt/format.h>

#include <algorithm>
#include <utility>

namespace lnfree::parallel {

std::size_t size_of(DataType type) {
  switch (type) {
    case DataType::kFloat32:
      return 4;
    case DataType::kFloat64:
    case DataType::kInt64:
      return 8;
    case DataType::kBFloat16:
      return 2;
    case DataType::kUInt8:
      return 1;
  }
  return 0;
}

const char* name_of(DataType type) {
  switch (type) {
    case DataType::kFloat32:
      return "float32";
    case DataType::kFloat64:
      return "float64";
    case DataType::kBFloat16:
      return "bfloat16";
    case DataType::kInt64:
      return "int64";
    case DataType::kUInt8:
      return "uint8";
  }
  return "?";
}

Communicator::~Communicator() = default;

void Communicator::join(void*) {}

double Communicator::host_allreduce(double value, Reduction op) {
  host_allreduce(&value, 1, DataType::kFloat64, op);
  return value;
}

std::int64_t Communicator::host_allreduce(std::int64_t value, Reduction op) {
  host_allreduce(&value, 1, DataType::kInt64, op);
  return value;
}

std::vector<std::string> Communicator::host_allgather(const std::string& value) {
  const auto world = static_cast<std::size_t>(world_size());
  const auto longest =
      static_cast<std::size_t>(host_allreduce(static_cast<std::int64_t>(value.size()), Reduction::kMax));
  std::string padded = value;
  padded.resize(longest, '\0');
  std::string all(longest * world, '\0');
  if (longest > 0) host_allgather(padded.data(), all.data(), longest);
  std::vector<std::string> out;
  for (std::size_t r = 0; r < world; ++r) {
    std::string s = all.substr(r * longest, longest);
    s.resize(std::min(s.size(), s.find('\0')));
    out.push_back(std::move(s));
  }
  return out;
}

void agree_or_fail(Communicator& comm, const std::string& problem) {
  if (comm.world_size() == 1) {
    if (!problem.empty()) throw CollectiveError(problem);
    return;
  }
  const auto failing =
      comm.host_allreduce(static_cast<std::int64_t>(problem.empty() ? 0 : 1), Reduction::kSum);
  if (failing == 0) return;
  const auto problems = comm.host_allgather(problem);
  // The same problem on every rank (e.g. a bad config) is reported once, without rank numbers.
  if (std::all_of(problems.begin(), problems.end(), [&](const std::string& p) { return p == problems[0]; }))
    throw CollectiveError(problems[0]);
  std::string message;
  for (std::size_t r = 0; r < problems.size(); ++r)
    if (!problems[r].empty())
      message += fmt::format("{}rank {}: {}", message.empty() ? "" : "; ", r, problems[r]);
  throw CollectiveError(message);
}

}  // namespace lnfree::parallel
