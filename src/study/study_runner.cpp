#include "study/study_runner.h"

#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <unistd.h>

#include <fmt/format.h>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <csignal>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <map>
#include <set>
#include <thread>

#include "study/study_eta.h"
#include "util/error.h"
#include "util/files.h"

extern char** environ;

namespace fs = std::filesystem;

namespace lnfree::study {
namespace {

using Clock = std::chrono::steady_clock;
std::atomic<int> g_stop_signal{0};

void on_signal(int sig) { g_stop_signal = sig; }

std::string duration_text(double seconds) {
  const auto s = static_cast<long long>(seconds);
  return s >= 3600 ? fmt::format("{}h{:02d}m", s / 3600, (s % 3600) / 60)
                   : fmt::format("{}m{:02d}s", s / 60, s % 60);
}

pid_t spawn_job(const Job& job, const RunnerOptions& options) {
  fs::create_directories(fs::path(job.log_path).parent_path());
  if (job.run_dir.empty())
    fs::create_directories(fs::path(job.done_marker).parent_path());  // its output file
  std::vector<std::string> args = {options.lnfree_binary};
  args.insert(args.end(), job.args.begin(), job.args.end());
  // A training job continues what its folder holds (an interrupted study) or starts.
  if (!job.run_dir.empty()) args.push_back("--resume=auto");
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  // The job's environment: ours, with its thread count.
  std::vector<std::string> env_strings;
  for (char** e = environ; *e != nullptr; ++e)
    if (std::string(*e).rfind("OMP_NUM_THREADS=", 0) != 0) env_strings.emplace_back(*e);
  env_strings.push_back(
      fmt::format("OMP_NUM_THREADS={}", std::max<std::int64_t>(options.threads_per_job, 1)));
  std::vector<char*> envp;
  for (auto& e : env_strings) envp.push_back(e.data());
  envp.push_back(nullptr);

  posix_spawn_file_actions_t actions;
  posix_spawn_file_actions_init(&actions);
  posix_spawn_file_actions_addopen(&actions, STDOUT_FILENO, job.log_path.c_str(),
                                   O_WRONLY | O_CREAT | O_APPEND, 0644);
  posix_spawn_file_actions_adddup2(&actions, STDOUT_FILENO, STDERR_FILENO);
  pid_t pid = 0;
  const int rc = posix_spawn(&pid, argv[0], &actions, nullptr, argv.data(), envp.data());
  posix_spawn_file_actions_destroy(&actions);
  if (rc != 0) fail("study: cannot start {}: {}", options.lnfree_binary, std::strerror(rc));
  return pid;
}

}  // namespace

std::vector<std::string> run_plan(const StudyPlan& plan, const RunnerOptions& options) {
  std::map<std::string, const Job*> by_id;
  for (const auto& job : plan.jobs) by_id[job.id] = &job;
  // Queue priority: a job's cost plus the cost of the jobs waiting on it, so that short jobs that
  // gate expensive ones (stats before the removal runs) go first.
  std::map<std::string, double> priority;
  for (const auto& job : plan.jobs) {
    priority[job.id] += job.cost;
    for (const auto& dep : job.deps) priority[dep] += job.cost;
  }
  std::set<std::string> done, failed;
  auto finished = [](const Job& job) {
    return fs::exists(job.done_marker) || (!job.diverged_marker.empty() && fs::exists(job.diverged_marker));
  };
  for (const auto& job : plan.jobs) {
    if (finished(job)) done.insert(job.id);
  }
  if (!done.empty())
    spdlog::info("study: {} of {} jobs already complete (skipped)", done.size(), plan.jobs.size());

  struct Running {
    const Job* job;
    Clock::time_point start;
  };
  std::map<pid_t, Running> running;
  std::set<std::string> started;
  auto previous_int = std::signal(SIGINT, on_signal);
  auto previous_term = std::signal(SIGTERM, on_signal);
  const auto study_start = Clock::now();
  EtaModel eta_model;  // from the jobs finished in this invocation
  auto last_progress = Clock::now();

  auto progress = [&] {
    std::string names;
    std::map<std::string, double> elapsed;
    for (const auto& [pid, r] : running) {
      elapsed[r.job->id] = std::chrono::duration<double>(Clock::now() - r.start).count();
      names +=
          fmt::format("{}{} ({})", names.empty() ? "" : ", ", r.job->id, duration_text(elapsed[r.job->id]));
    }
    std::set<std::string> settled = done;  // failed jobs (and what waits on them) will not run
    settled.insert(failed.begin(), failed.end());
    const auto left = eta_model.remaining(plan, settled, elapsed, priority, options.parallel);
    const std::string eta = left ? "~" + duration_text(*left) : "measuring";
    spdlog::info("study: {}/{} jobs done, running: {}; elapsed {}, ETA {}", done.size(), plan.jobs.size(),
                 names.empty() ? "none" : names,
                 duration_text(std::chrono::duration<double>(Clock::now() - study_start).count()), eta);
    last_progress = Clock::now();
  };

  while (true) {
    if (g_stop_signal != 0) {
      spdlog::warn("study: signal {}: stopping {} running job(s); re-run the same command to continue",
                   g_stop_signal.load(), running.size());
      for (const auto& [pid, r] : running) ::kill(pid, SIGTERM);
      for (const auto& [pid, r] : running) ::waitpid(pid, nullptr, 0);
      std::signal(SIGINT, previous_int);
      std::signal(SIGTERM, previous_term);
      fail("study stopped by signal {}", g_stop_signal.load());
    }
    // Start the costliest ready jobs.
    std::vector<const Job*> ready;
    for (const auto& job : plan.jobs) {
      if (done.count(job.id) || failed.count(job.id) || started.count(job.id)) continue;
      bool blocked = false;
      for (const auto& dep : job.deps) {
        if (!by_id.count(dep)) fail("study plan: job '{}' depends on unknown job '{}'", job.id, dep);
        if (failed.count(dep)) {
          failed.insert(job.id);
          spdlog::error("study: {} skipped: {} failed", job.id, dep);
          blocked = true;
          break;
        }
        if (!done.count(dep)) blocked = true;
      }
      if (!blocked) ready.push_back(&job);
    }
    std::stable_sort(ready.begin(), ready.end(),
                     [&](const Job* a, const Job* b) { return priority[a->id] > priority[b->id]; });
    for (const Job* job : ready) {
      if (static_cast<std::int64_t>(running.size()) >= options.parallel) break;
      pid_t pid = spawn_job(*job, options);
      running[pid] = {job, Clock::now()};
      started.insert(job->id);
      spdlog::info("study: started {} (log {})", job->id, job->log_path);
    }
    if (running.empty()) break;

    int status = 0;
    pid_t pid = ::waitpid(-1, &status, WNOHANG);
    if (pid <= 0) {
      std::this_thread::sleep_for(std::chrono::milliseconds(200));
      if (Clock::now() - last_progress > std::chrono::seconds(30)) progress();
      continue;
    }
    auto it = running.find(pid);
    if (it == running.end()) continue;
    const Job& job = *it->second.job;
    const double seconds = std::chrono::duration<double>(Clock::now() - it->second.start).count();
    running.erase(it);
    const bool ok = WIFEXITED(status) && WEXITSTATUS(status) == 0;
    if (ok && !fs::exists(job.done_marker)) {
      failed.insert(job.id);
      spdlog::error("study: {} exited 0 but {} is missing; see {}", job.id, job.done_marker, job.log_path);
    } else if (ok || (!job.diverged_marker.empty() && fs::exists(job.diverged_marker))) {
      done.insert(job.id);
      eta_model.observe(job, seconds);
      spdlog::info("study: finished {} in {}{}", job.id, duration_text(seconds),
                   ok ? "" : " (diverged: a result)");
    } else {
      failed.insert(job.id);
      spdlog::error("study: {} failed (exit {}); see {}", job.id,
                    WIFEXITED(status) ? WEXITSTATUS(status) : -1, job.log_path);
    }
    progress();
  }
  std::signal(SIGINT, previous_int);
  std::signal(SIGTERM, previous_term);
  return {failed.begin(), failed.end()};
}

}  // namespace lnfree::study
