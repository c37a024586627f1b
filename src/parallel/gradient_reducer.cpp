#include "parallel/gradient_reducer.h"

#include <torch/csrc/autograd/function.h>
#include <torch/csrc/autograd/function_hook.h>

#include <algorithm>
#include <cstddef>
#include <iterator>
#include <mutex>
#include <utility>

#include "parallel/tensor_collectives.h"

namespace lnfree::parallel {

struct GradientReducer::State {
  struct Bucket {
    torch::Tensor flat;
    std::size_t members = 0;  // parameters in the bucket
    std::size_t waiting = 0;  // members not yet ready in the armed backward
    bool launched = false;
  };

  Communicator* comm = nullptr;
  Launch launch = Launch::kAfterBackward;
  std::vector<Bucket> buckets;
  std::vector<std::size_t> bucket_of;  // per parameter (constructor order)
  std::vector<torch::Tensor> params;   // constructor order
  std::vector<const void*> grad_at;    // where each parameter's gradient view starts in its bucket
  std::vector<bool> ready;             // per parameter, in the armed backward
  std::size_t next = 0;                // lowest bucket not yet launched
  bool armed = false;
  std::mutex mutex;

  void launch_bucket(Bucket& bucket) {
    auto& flat = bucket.flat;
    comm->allreduce(flat.data_ptr(), static_cast<std::size_t>(flat.numel()), data_type_of(flat),
                    Reduction::kAverage, current_stream(flat));
    bucket.launched = true;
  }

  // Launches buckets in index order as far as they are complete (or all of them).
  void launch_in_order(bool all) {
    while (next < buckets.size() && (all || buckets[next].waiting == 0)) launch_bucket(buckets[next++]);
  }

  void mark_ready(std::size_t param) {
    std::lock_guard<std::mutex> lock(mutex);
    if (!armed || ready[param]) return;
    ready[param] = true;
    --buckets[bucket_of[param]].waiting;
    launch_in_order(false);
  }

  // Runs after a parameter's AccumulateGrad node, i.e. once its gradient of this backward is complete.
  class ReadyHook : public torch::autograd::FunctionPostHook {
   public:
    ReadyHook(std::weak_ptr<State> state, std::size_t param) : state_(std::move(state)), param_(param) {}
    torch::autograd::variable_list operator()(const torch::autograd::variable_list& outputs,
                                              const torch::autograd::variable_list&) override {
      if (auto state = state_.lock()) state->mark_ready(param_);
      return outputs;
    }

   private:
    std::weak_ptr<State> state_;
    std::size_t param_;
  };

  // Anything that replaced a .grad (LibTorch 2.x zero_grad() sets gradients to none by default, and
  // AccumulateGrad then allocates a fresh tensor) would silently leave that parameter out of the
  // reduction: its rank would step on its own gradient. Comparing pointers costs nothing on the device.
  void check_gradients_are_bucket_views() const {
    for (std::size_t i = 0; i < params.size(); ++i) {
      const auto& grad = params[i].grad();
      if (!grad.defined() || grad.data_ptr() != grad_at[i])
        fail(
            "gradient buckets: parameter {} (of {}, constructor order) no longer has its gradient in its "
            "bucket "
            "({}): something replaced .grad, e.g. a zero_grad() that sets gradients to none; zero them in "
            "place (AdamW::zero_grad does), or the ranks would step on unreduced gradients",
            i, params.size(), grad.defined() ? "a different tensor" : "it is undefined");
    }
  }

  void reset() {
    armed = false;
    next = 0;
    std::fill(ready.begin(), ready.end(), false);
    for (auto& b : buckets) b.waiting = b.members, b.launched = false;
  }
};

GradientReducer::GradientReducer(std::vector<torch::Tensor> params, Communicator& comm,
                                 std::int64_t bucket_bytes, Launch launch)
    : state_(std::make_shared<State>()) {
  if (bucket_bytes < 1)
    fail("gradient buckets: expected a bucket size of at least 1 byte, got {}", bucket_bytes);
  auto& s = *state_;
  s.comm = &comm;
  s.launch = launch;
  s.bucket_of.assign(params.size(), 0);
  s.grad_at.assign(params.size(), nullptr);
  s.ready.assign(params.size(), false);
  const bool cuda = comm.memory() == Memory::kCuda;
  for (std::size_t i = 0; i < params.size(); ++i) {
    const auto& p = params[i];
    if (!p.requires_grad() || !p.is_contiguous() || p.is_cuda() != cuda)
      fail(
          "gradient buckets: parameter {} must require a gradient, be contiguous and live on {} for the {} "
          "backend",
          i, cuda ? "CUDA" : "the CPU", comm.backend());
  }

  // Assignment: reverse order, one open bucket per dtype.
  struct Open {
    torch::ScalarType type;
    std::size_t bucket;
    std::int64_t bytes;
  };
  std::vector<Open> open;
  std::vector<std::vector<std::size_t>> members;
  for (std::size_t k = params.size(); k-- > 0;) {
    const auto& p = params[k];
    const std::int64_t bytes = p.numel() * static_cast<std::int64_t>(p.element_size());
    auto it =
        std::find_if(open.begin(), open.end(), [&](const Open& o) { return o.type == p.scalar_type(); });
    if (it != open.end() && it->bytes + bytes > bucket_bytes && it->bytes > 0) {
      open.erase(it);
      it = open.end();
    }
    if (it == open.end()) {
      open.push_back({p.scalar_type(), members.size(), 0});
      members.emplace_back();
      it = std::prev(open.end());
    }
    it->bytes += bytes;
    members[it->bucket].push_back(k);
    s.bucket_of[k] = it->bucket;
  }

  // Flat buffers; every gradient becomes a view into its bucket.
  torch::NoGradGuard no_grad;
  for (const auto& list : members) {
    std::int64_t numel = 0;
    for (auto k : list) numel += params[k].numel();
    State::Bucket bucket;
    bucket.flat = torch::zeros({numel}, params[list.front()].options().requires_grad(false));
    bucket.members = list.size();
    std::int64_t offset = 0;
    for (auto k : list) {
      auto& p = params[k];
      auto view = bucket.flat.narrow(0, offset, p.numel()).view(p.sizes());
      if (p.grad().defined()) view.copy_(p.grad());
      p.mutable_grad() = view;
      offset += p.numel();
      s.grad_at[k] = view.data_ptr();
    }
    s.buckets.push_back(std::move(bucket));
  }
  s.params = params;
  s.reset();

  if (launch == Launch::kDuringBackward) {
    for (std::size_t i = 0; i < params.size(); ++i) {
      auto accumulator = torch::autograd::impl::grad_accumulator(params[i]);
      const auto key = accumulator->add_post_hook(std::make_unique<State::ReadyHook>(state_, i));
      hooks_.emplace_back(std::move(accumulator), key);
    }
  }
}

GradientReducer::GradientReducer() : state_(std::make_shared<State>()) {}

std::unique_ptr<GradientReducer> GradientReducer::for_training(std::vector<torch::Tensor> params,
                                                               Communicator& comm,
                                                               std::int64_t bucket_bytes) {
  if (comm.world_size() == 1) return std::unique_ptr<GradientReducer>(new GradientReducer());
  const auto launch = comm.memory() == Memory::kCuda ? Launch::kDuringBackward : Launch::kAfterBackward;
  return std::make_unique<GradientReducer>(std::move(params), comm, bucket_bytes, launch);
}

GradientReducer::~GradientReducer() {
  for (auto& [node, key] : hooks_) node->del_post_hook(key);
}

void GradientReducer::arm() {
  std::lock_guard<std::mutex> lock(state_->mutex);
  state_->reset();
  state_->armed = true;
}

void GradientReducer::finish() {
  auto& s = *state_;
  std::lock_guard<std::mutex> lock(s.mutex);
  s.check_gradients_are_bucket_views();
  s.launch_in_order(/*all=*/true);
  if (!s.buckets.empty()) s.comm->join(current_stream(s.buckets.front().flat));
  s.reset();
}

std::size_t GradientReducer::bucket_count() const { return state_->buckets.size(); }

std::vector<std::int64_t> GradientReducer::bucket_sizes() const {
  std::vector<std::int64_t> sizes;
  for (const auto& b : state_->buckets) sizes.push_back(b.flat.numel());
  return sizes;
}

}  // namespace lnfree::parallel
