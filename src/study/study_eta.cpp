#include "study/study_eta.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>

namespace lnfree::study {

std::string job_model(const Job& job) { return job.id.substr(0, job.id.find('/')); }

double EtaModel::overhead() const {
  // Until a short job was timed: the start-up of a LibTorch process (toolchain.md: ~1 s).
  return overhead_count_ == 0 ? 1.0 : overhead_sum_ / static_cast<double>(overhead_count_);
}

void EtaModel::observe(const Job& job, double seconds) {
  if (job.cost <= 0) {
    overhead_sum_ += seconds;
    ++overhead_count_;
    return;
  }
  const double working = std::max(seconds - overhead(), 0.1 * seconds);
  per_model_[job_model(job)].cost += job.cost;
  per_model_[job_model(job)].seconds += working;
  all_.cost += job.cost;
  all_.seconds += working;
}

std::optional<double> EtaModel::predict(const Job& job) const {
  if (job.cost <= 0) return overhead();
  auto it = per_model_.find(job_model(job));
  const Rate& rate = it != per_model_.end() ? it->second : all_;
  if (rate.cost <= 0) return std::nullopt;
  return overhead() + job.cost * rate.seconds / rate.cost;
}

std::optional<double> EtaModel::remaining(const StudyPlan& plan, const std::set<std::string>& done,
                                          const std::map<std::string, double>& running,
                                          const std::map<std::string, double>& priority,
                                          std::int64_t parallel) const {
  if (all_.cost <= 0) return std::nullopt;
  // Simulated clock: slot free times; finish time of every job scheduled so far.
  std::vector<double> slots(static_cast<std::size_t>(std::max<std::int64_t>(parallel, 1)), 0.0);
  std::map<std::string, double> finish;
  for (const auto& id : done) finish[id] = 0;
  for (const auto& job : plan.jobs) {
    auto it = running.find(job.id);
    if (it == running.end() || done.count(job.id)) continue;
    const double left = std::max(0.0, *predict(job) - it->second);
    auto& free_at = *std::min_element(slots.begin(), slots.end());
    free_at = left;
    finish[job.id] = left;
  }
  std::vector<const Job*> queue;
  for (const auto& job : plan.jobs)
    if (!finish.count(job.id)) queue.push_back(&job);
  while (!queue.empty()) {
    // The ready job the runner would pick: all deps scheduled, highest priority; it starts when
    // both a slot and its last dependency are free.
    const Job* pick = nullptr;
    double ready_at = 0;
    for (const Job* job : queue) {
      bool ready = true;
      double deps_done = 0;
      for (const auto& dep : job->deps) {
        auto f = finish.find(dep);
        if (f == finish.end()) {
          ready = false;
          break;
        }
        deps_done = std::max(deps_done, f->second);
      }
      if (!ready) continue;
      auto p = [&](const Job* j) {
        auto it = priority.find(j->id);
        return it == priority.end() ? 0.0 : it->second;
      };
      if (pick == nullptr || deps_done < ready_at || (deps_done == ready_at && p(job) > p(pick))) {
        pick = job;
        ready_at = deps_done;
      }
    }
    if (pick == nullptr) break;  // a dependency outside the plan: the runner reports it
    auto& free_at = *std::min_element(slots.begin(), slots.end());
    const double start = std::max(free_at, ready_at);
    auto seconds = predict(*pick);
    free_at = start + seconds.value_or(0.0);
    finish[pick->id] = free_at;
    queue.erase(std::find(queue.begin(), queue.end(), pick));
  }
  double end = 0;
  for (double t : slots) end = std::max(end, t);
  return end;
}

}  // namespace lnfree::study
