#include "dist/stop_signal.h"

#include <csignal>

namespace lnfree::dist {
namespace {

volatile std::sig_atomic_t g_received = 0;
struct sigaction g_previous_usr1, g_previous_term;

void on_signal(int signal) { g_received = signal; }

}  // namespace

StopSignal::StopSignal() {
  g_received = 0;
  struct sigaction action = {};
  action.sa_handler = on_signal;
  sigemptyset(&action.sa_mask);
  action.sa_flags = SA_RESTART;
  sigaction(SIGUSR1, &action, &g_previous_usr1);
  sigaction(SIGTERM, &action, &g_previous_term);
}

StopSignal::~StopSignal() {
  sigaction(SIGUSR1, &g_previous_usr1, nullptr);
  sigaction(SIGTERM, &g_previous_term, nullptr);
}

int StopSignal::received() const { return g_received; }

}  // namespace lnfree::dist
