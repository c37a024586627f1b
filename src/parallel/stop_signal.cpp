#include "parallel/stop_signal.h"

namespace lnfree::parallel {
namespace {

constexpr int kSignals[3] = {SIGUSR1, SIGTERM, SIGINT};
volatile std::sig_atomic_t g_received = 0;

void on_signal(int signal) {
  if (g_received != 0) {
    // The second signal: the user means it. Default action now (async-signal-safe calls only).
    std::signal(signal, SIG_DFL);
    std::raise(signal);
    return;
  }
  g_received = signal;
}

}  // namespace

StopSignal::StopSignal() {
  struct sigaction current = {};
  sigaction(SIGTERM, nullptr, &current);
  if (current.sa_handler != on_signal) g_received = 0;  // outermost: a fresh start
  struct sigaction action = {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &action, &previous_[i]);
}

StopSignal::~StopSignal() {
  for (int i = 0; i < 3; ++i) sigaction(kSignals[i], &previous_[i], nullptr);
}

int StopSignal::received() const { return g_received; }

StopAgreement::StopAgreement(Communicator& comm, const StopSignal& signal, std::int64_t every)
    : comm_(comm), signal_(signal), every_(every) {}

int StopAgreement::after_step(std::int64_t done) {
  if (comm_.world_size() == 1) return signal_.received();
  if (done % every_ != 0) return 0;
  return static_cast<int>(
      comm_.host_allreduce(static_cast<std::int64_t>(signal_.received()), Reduction::kMax));
}

}  // namespace lnfree::parallel
