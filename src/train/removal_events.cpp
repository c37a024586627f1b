#include "train/removal_events.h"

#include <cstddef>

namespace lnfree::train {
namespace {

model::LayerNorm& ln_of(model::Gpt2& model, std::int64_t layer, bool first) {
  auto& block = model->blocks.at(static_cast<std::size_t>(layer));
  return first ? block->ln_1 : block->ln_2;
}

}  // namespace

void apply_removal_event(model::Gpt2& model, const config::RemovalEvent& event) {
  using config::RemovalKind;
  const std::int64_t n_layer = model->shape().n_layer;
  auto layers = [&](auto&& fn) {
    if (event.layer == config::kWholeModel)
      for (std::int64_t i = 0; i < n_layer; ++i) fn(i);
    else
      fn(event.layer);
  };
  switch (event.kind) {
    case RemovalKind::kLn2:
      layers([&](std::int64_t i) { ln_of(model, i, false)->remove(model::LnPath::kMain); });
      break;
    case RemovalKind::kLn1Qk:
      layers([&](std::int64_t i) { ln_of(model, i, true)->remove(model::LnPath::kMain); });
      break;
    case RemovalKind::kLn1V:
      layers([&](std::int64_t i) { ln_of(model, i, true)->remove(model::LnPath::kValue); });
      break;
    case RemovalKind::kLnf:
      model->ln_f->remove(model::LnPath::kMain);
      break;
    case RemovalKind::kEot:  // only ln_1's V path has the EOT divisor
      layers([&](std::int64_t i) { ln_of(model, i, true)->disable_eot_special(); });
      break;
    case RemovalKind::kBos:  // every LN has the position-0 divisor: the layer's two, and ln_f
      layers([&](std::int64_t i) {
        ln_of(model, i, true)->disable_bos_special();
        ln_of(model, i, false)->disable_bos_special();
      });
      if (event.layer == config::kWholeModel || event.layer == n_layer - 1)
        model->ln_f->disable_bos_special();
      break;
  }
}

void RemovalEvents::apply_at(std::int64_t step, std::int64_t tokens, model::Gpt2& model,
                             runlog::RunLog* log) {
  for (const auto& event : schedule_.events_at(step)) {
    apply_removal_event(model, event);
    if (log)
      log->append_event({step, tokens, std::string(config::removal_kind_name(event.kind)), event.layer});
    recent_.push_back(config::describe(event));
    if (recent_.size() > kRecent) recent_.pop_front();
  }
}

std::string RemovalEvents::recent() const {
  std::string lines;
  for (const auto& e : recent_) lines += "\n  " + e;
  return lines.empty() ? " none" : lines;
}

}  // namespace lnfree::train
