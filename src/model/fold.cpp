#include "model/fold.h"

#include <cstddef>
#include <cstdint>
#include <utility>

#include "model/torch_compat.h"
#include "util/error.h"

namespace lnfree::model {
namespace {

using torch::indexing::Slice;

// C diag(g) W for a former LayerNorm: scale W's rows by g, then remove each column's mean over the
// rows. A former RMSNorm does not centre: diag(g) W.
torch::Tensor fold_weight(const torch::Tensor& g, const torch::Tensor& w, NormKind kind) {
  auto scaled = g.unsqueeze(1) * w;
  return kind == NormKind::kLayerNorm ? scaled - scaled.mean(0, true) : scaled;
}

}  // namespace

FoldedGpt2 fold_layer_norms(Gpt2Impl& model) {
  for (const auto& [name, ln] : model.layer_norms()) {
    if (!ln->all_fake())
      fail("cannot fold {}: it still has a real path (every LN must be removed first)", name);
    auto flags = ln->flags();
    if (flags.eot_special || flags.bos_special)
      fail("cannot fold {}: its position-0/EOT special sigma is still on", name);
  }
  if (model.shape().norm == NormKind::kCrmsNorm)
    fail("cannot fold a CRMSNorm model: its stream is n_embd - 1 wide (fold the LN-free model it came from)");
  torch::NoGradGuard no_grad;
  const int64_t d = model.shape().n_embd;
  const NormKind kind = model.shape().norm;
  FoldedGpt2 folded;
  folded.n_head = model.shape().n_head;
  folded.shape = model.shape();
  // The writers as the forward uses them (centred when the model centres its writes), so that the
  // folded stream is the model's; the readers of a former RMSNorm then need no centring.
  auto centred_rows = [&](const torch::Tensor& w) {
    return model.shape().centre_writes ? w - w.mean(1, true) : w.detach().clone();
  };
  folded.wte = centred_rows(model.wte->weight);
  folded.wpe = centred_rows(model.wpe->weight);
  for (auto& block : model.blocks) {
    auto& ln1 = block->ln_1;
    auto& ln2 = block->ln_2;
    auto g_qk = ln1->weight / ln1->sigma(LnPath::kMain);
    auto g_v = ln1->weight / ln1->sigma(LnPath::kValue);
    const auto& W = block->attn->c_attn->weight;
    const auto& b = block->attn->c_attn->bias;
    auto w_qk = W.index({Slice(), Slice(0, 2 * d)}), w_v = W.index({Slice(), Slice(2 * d, 3 * d)});
    FoldedGpt2::Block f;
    f.c_attn_weight = torch::cat({fold_weight(g_qk, w_qk, kind), fold_weight(g_v, w_v, kind)}, 1);
    f.c_attn_bias = torch::matmul(ln1->bias, W) + b;
    f.attn_proj_weight = block->attn->c_proj->effective_weight().detach().clone();
    f.attn_proj_bias = block->attn->c_proj->effective_bias().detach().clone();
    auto g2 = ln2->weight / ln2->sigma(LnPath::kMain);
    f.c_fc_weight = fold_weight(g2, block->mlp->c_fc->weight, kind);
    f.c_fc_bias = torch::matmul(ln2->bias, block->mlp->c_fc->weight) + block->mlp->c_fc->bias;
    f.mlp_proj_weight = block->mlp->c_proj->effective_weight().detach().clone();
    f.mlp_proj_bias = block->mlp->c_proj->effective_bias().detach().clone();
    folded.blocks.push_back(std::move(f));
  }
  auto g_f = model.ln_f->weight / model.ln_f->sigma(LnPath::kMain);
  auto w_e_t = model.unembedding_weight().t();  // the raw wte when tied, lm_head when untied
  folded.unembed_weight = fold_weight(g_f, w_e_t, kind);
  folded.unembed_bias = torch::matmul(model.ln_f->bias, w_e_t);
  return folded;
}

torch::Tensor FoldedGpt2::forward(const torch::Tensor& ids) const {
  return torch::matmul(residual(ids), unembed_weight) + unembed_bias;
}

torch::Tensor FoldedGpt2::residual(const torch::Tensor& ids, std::vector<BlockTrace>* traces) const {
  const int64_t B = ids.size(0), T = ids.size(1), d = wte.size(1), hd = d / n_head;
  if (T > wpe.size(0))
    fail("sequence of {} tokens is longer than the model's context (n_positions = {})", T, wpe.size(0));
  auto x = wte.index_select(0, ids.reshape({-1})).view({B, T, d}) + wpe.index({Slice(0, T)});
  auto mask = torch::ones({T, T}, torch::TensorOptions().dtype(torch::kBool).device(ids.device())).triu(1);
  auto heads = [&](const torch::Tensor& t) { return t.view({B, T, n_head, hd}).transpose(1, 2); };
  if (traces) traces->assign(blocks.size(), {});
  for (std::size_t i = 0; i < blocks.size(); ++i) {
    const auto& f = blocks[i];
    auto qkv = torch::matmul(x, f.c_attn_weight) + f.c_attn_bias;
    auto parts = qkv.split(d, -1);
    auto z = causal_attention(heads(parts[0]), heads(parts[1]), heads(parts[2]), 0.0, false, mask);
    auto y = z.transpose(1, 2).contiguous().view({B, T, d});
    x = x + torch::matmul(y, f.attn_proj_weight) + f.attn_proj_bias;
    auto m = torch::matmul(torch::gelu(torch::matmul(x, f.c_fc_weight) + f.c_fc_bias, "tanh"), f.mlp_proj_weight) +
             f.mlp_proj_bias;
    x = x + m;
    if (traces) (*traces)[i] = {z, m};
  }
  return x;
}

void FoldedGpt2::to(const torch::Device& device) {
  for (auto* t : {&wte, &wpe, &unembed_weight, &unembed_bias}) *t = t->to(device);
  for (auto& b : blocks)
    for (auto* t : {&b.c_attn_weight, &b.c_attn_bias, &b.attn_proj_weight, &b.attn_proj_bias, &b.c_fc_weight,
                    &b.c_fc_bias, &b.mlp_proj_weight, &b.mlp_proj_bias})
      *t = t->to(device);
}

}  // namespace lnfree::model
