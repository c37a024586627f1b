#include "model/language_model.h"

#include <fmt/format.h>

#include <cstddef>
#include <cstdint>
#include <utility>

#include "model/fold.h"
#include "model/gpt2.h"

namespace lnfree::model {

torch::Tensor head_writes(const torch::Tensor& z, const torch::Tensor& proj_weight, std::int64_t position) {
  const int64_t H = z.size(1), hd = z.size(3);
  auto at = z.select(2, position);                          // [B, H, hd]
  auto w = proj_weight.view({H, hd, proj_weight.size(1)});  // [H, hd, d]
  return torch::einsum("bhk,hkd->hbd", {at, w});            // [H, B, d]
}

namespace {

// Collects the parts of the final residual at `position` from a forward's traces.
ResidualParts parts_from_traces(const torch::Tensor& embed, const std::vector<BlockTrace>& traces,
                                const std::vector<std::pair<torch::Tensor, torch::Tensor>>& projections,
                                const torch::Tensor& residual, std::int64_t position) {
  ResidualParts out;
  std::vector<torch::Tensor> parts{embed.select(1, position)};
  out.names.push_back("embed");
  const int64_t B = embed.size(0);
  for (std::size_t l = 0; l < traces.size(); ++l) {
    const auto& [weight, bias] = projections[l];
    auto writes = head_writes(traces[l].heads, weight, position);
    for (int64_t h = 0; h < writes.size(0); ++h) {
      parts.push_back(writes[h]);
      out.names.push_back(fmt::format("L{}H{}", l, h));
    }
    parts.push_back(bias.unsqueeze(0).expand({B, bias.size(0)}));
    out.names.push_back(fmt::format("L{}.attn_bias", l));
    parts.push_back(traces[l].mlp_out.select(1, position));
    out.names.push_back(fmt::format("L{}.mlp", l));
  }
  out.parts = torch::stack(parts);
  out.residual = residual.select(1, position);
  return out;
}

class Gpt2Model final : public LanguageModel {
 public:
  explicit Gpt2Model(Gpt2 model) : model_(std::move(model)) { model_->eval(); }
  const Gpt2Shape& shape() const override { return model_->shape(); }
  std::string kind() const override {
    bool any_fake = false;
    for (const auto& [name, ln] : model_->layer_norms())
      any_fake =
          any_fake || ln->is_fake(LnPath::kMain) || (ln->has_value_path() && ln->is_fake(LnPath::kValue));
    const auto& s = model_->shape();
    const std::string norm = s.norm == NormKind::kLayerNorm ? "LayerNorm"
                             : s.norm == NormKind::kRmsNorm ? "RMSNorm"
                                                            : "CRMSNorm";
    const std::string form = s.norm == NormKind::kLayerNorm ? "GPT-2"
                             : s.centre_writes              ? "GPT-2 (Pre-RMSNorm, writes centred in the forward)"
                             : s.norm == NormKind::kRmsNorm ? "GPT-2 layout with RMSNorm"
                                                            : "GPT-2 (Pre-CRMSNorm)";
    if (model_->all_layer_norms_fake()) return form + ", every " + norm + " removed (fixed sigmas)";
    return form + (any_fake ? ", " + norm + "s partly removed" : " with " + norm + "s");
  }
  void to(const torch::Device& device) override { model_->to(device); }
  torch::Device device() const override { return model_->wte->weight.device(); }
  torch::Tensor residual(const torch::Tensor& ids) override {
    torch::NoGradGuard no_grad;
    return model_->residual(ids);
  }
  torch::Tensor logits_from_residual(const torch::Tensor& r) override {
    torch::NoGradGuard no_grad;
    return model_->logits_from_residual(r);
  }
  torch::Tensor target_logit(const torch::Tensor& x, const torch::Tensor& targets) override {
    torch::NoGradGuard no_grad;
    auto logit = (model_->ln_f(x) * model_->unembedding_weight().index_select(0, targets)).sum(-1);
    const auto bias = model_->unembedding_bias();
    return bias.defined() ? logit + bias.index_select(0, targets) : logit;
  }
  torch::Tensor direct_logit(const torch::Tensor& c, const torch::Tensor& r,
                             const torch::Tensor& targets) override {
    torch::NoGradGuard no_grad;
    // ln_f linearised at r: centre the part (LayerNorm only), divide by the scale the full residual
    // gets (its own divisor while ln_f is real, the fixed sigma once it is fake), multiply by
    // gamma; beta (and a vocabulary bias) belong to no part.
    auto& ln = model_->ln_f;
    auto scale = ln->is_fake(LnPath::kMain) ? ln->sigma(LnPath::kMain).expand({r.size(0)})
                                            : per_token_divisor(r, ln->kind(), ln->eps);
    auto centred = ln->kind() == NormKind::kLayerNorm ? c - c.mean(-1, true) : c;
    auto u = model_->unembedding_weight().index_select(0, targets) * ln->weight;  // [N, d]
    return (centred * u).sum(-1) / scale;
  }
  ResidualParts residual_parts(const torch::Tensor& ids, std::int64_t position) override {
    torch::NoGradGuard no_grad;
    auto embed = model_->embed(ids);
    std::vector<BlockTrace> traces;
    auto r = model_->residual(ids, &traces);
    std::vector<std::pair<torch::Tensor, torch::Tensor>> projections;
    for (auto& block : model_->blocks)
      projections.emplace_back(block->attn->c_proj->effective_weight(), block->attn->c_proj->effective_bias());
    return parts_from_traces(embed, traces, projections, r, position);
  }

 private:
  Gpt2 model_;
};

class FoldedModel final : public LanguageModel {
 public:
  explicit FoldedModel(FoldedGpt2 model) : model_(std::move(model)) {}
  const Gpt2Shape& shape() const override { return model_.shape; }
  std::string kind() const override { return "folded LN-free GPT-2 (no normalisation)"; }
  void to(const torch::Device& device) override { model_.to(device); }
  torch::Device device() const override { return model_.wte.device(); }
  torch::Tensor residual(const torch::Tensor& ids) override {
    torch::NoGradGuard no_grad;
    return model_.residual(ids);
  }
  torch::Tensor logits_from_residual(const torch::Tensor& r) override {
    torch::NoGradGuard no_grad;
    return torch::matmul(r, model_.unembed_weight) + model_.unembed_bias;
  }
  torch::Tensor target_logit(const torch::Tensor& x, const torch::Tensor& targets) override {
    torch::NoGradGuard no_grad;
    return (x * model_.unembed_weight.index_select(1, targets).t()).sum(-1) +
           model_.unembed_bias.index_select(0, targets);
  }
  torch::Tensor direct_logit(const torch::Tensor& c, const torch::Tensor&,
                             const torch::Tensor& targets) override {
    torch::NoGradGuard no_grad;
    return (c * model_.unembed_weight.index_select(1, targets).t()).sum(-1);
  }
  ResidualParts residual_parts(const torch::Tensor& ids, std::int64_t position) override {
    torch::NoGradGuard no_grad;
    const int64_t B = ids.size(0), T = ids.size(1), d = model_.wte.size(1);
    auto embed = model_.wte.index_select(0, ids.reshape({-1})).view({B, T, d}) +
                 model_.wpe.index({torch::indexing::Slice(0, T)});
    std::vector<BlockTrace> traces;
    auto r = model_.residual(ids, &traces);
    std::vector<std::pair<torch::Tensor, torch::Tensor>> projections;
    for (const auto& block : model_.blocks)
      projections.emplace_back(block.attn_proj_weight, block.attn_proj_bias);
    return parts_from_traces(embed, traces, projections, r, position);
  }

 private:
  FoldedGpt2 model_;
};

}  // namespace

std::unique_ptr<LanguageModel> as_language_model(Gpt2 model) {
  return std::make_unique<Gpt2Model>(std::move(model));
}

std::unique_ptr<LanguageModel> as_language_model(FoldedGpt2 model) {
  return std::make_unique<FoldedModel>(std::move(model));
}

}  // namespace lnfree::model
