#include "model/norm_conversion.h"

#include <algorithm>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "util/error.h"

namespace lnfree::model {
namespace {

using torch::indexing::Slice;

torch::Tensor f64(const torch::Tensor& t) { return t.detach().to(torch::kCPU, torch::kDouble); }

// x - mean(x) along `dim`, in float64, rounded once.
void centre_in_place(torch::Tensor& t, int64_t dim) {
  auto x = f64(t);
  t.copy_((x - x.mean(dim, /*keepdim=*/true)).to(t.scalar_type()));
}

// Copies parameters that exist in both (same name, same shape) and the normalisers' removal state.
void copy_state(Gpt2Impl& from, Gpt2Impl& to) {
  torch::NoGradGuard no_grad;
  auto source = from.named_parameters();
  for (auto& p : to.named_parameters())
    if (source.contains(p.key()) && source[p.key()].sizes() == p.value().sizes())
      p.value().copy_(source[p.key()].detach().to(p.value().device()));
  auto from_norms = from.layer_norms();
  auto to_norms = to.layer_norms();
  for (std::size_t i = 0; i < from_norms.size(); ++i) {
    auto& src = *from_norms[i].second;
    auto& dst = *to_norms[i].second;
    dst.set_flags(src.flags());
    auto buffers = src.named_buffers(/*recurse=*/false);
    for (auto& b : dst.named_buffers(false)) b.value().copy_(buffers[b.key()]);
  }
}

void require_pre_ln_equivalent(const Gpt2Impl& model, const char* what) {
  const auto& s = model.shape();
  if (s.norm == NormKind::kLayerNorm || s.centre_writes) return;
  if (s.norm == NormKind::kCrmsNorm) fail("{}: the model is Pre-CRMSNorm already", what);
  fail(
      "{}: this RMSNorm model is not a Pre-LN model's equivalent (its writes are not centred): it has no "
      "Pre-LN function to preserve",
      what);
}

}  // namespace

std::vector<torch::Tensor> residual_write_tensors(const Gpt2Impl& model) {
  std::vector<torch::Tensor> out{model.wte->weight, model.wpe->weight};
  for (const auto& block : model.blocks)
    for (const auto* proj : {&block->attn->c_proj, &block->mlp->c_proj}) {
      out.push_back((*proj)->weight);  // Conv1D [in, out]: the output axis is the last
      out.push_back((*proj)->bias);
    }
  return out;
}

bool residual_writes_are_centred(const Gpt2Impl& model, double tolerance) {
  torch::NoGradGuard no_grad;
  for (const auto& tensor : residual_write_tensors(model)) {
    const auto w = f64(tensor);
    const double rms = w.square().mean().sqrt().item<double>();
    if (w.mean(-1).abs().max().item<double>() > tolerance * std::max(rms, 1e-30)) return false;
  }
  return true;
}

void centre_residual_writes(Gpt2Impl& model) {
  if (model.shape().tie_word_embeddings)
    fail(
        "cannot centre wte.weight: it is also the unembedding (tied head), and centring it would change "
        "each logit v by -mean(wte[v]) times the sum of ln_f's output, which depends on v (the loss "
        "changes); untie the head first (lnfree convert does: lm_head = the original wte)");
  if (model.shape().centre_writes)
    fail("cannot centre the writes in the weights: this model centres them in its forward already");
  torch::NoGradGuard no_grad;
  for (auto tensor : residual_write_tensors(model)) centre_in_place(tensor, -1);
}

Gpt2 to_pre_rmsnorm(Gpt2Impl& model) {
  require_pre_ln_equivalent(model, "convert to Pre-RMSNorm");
  auto shape = model.shape();
  shape.norm = NormKind::kRmsNorm;
  shape.centre_writes = false;
  shape.tie_word_embeddings = false;
  Gpt2 out(shape);
  copy_state(model, *out);
  torch::NoGradGuard no_grad;
  out->lm_head->weight.copy_(model.unembedding_weight().detach());  // the raw wte: the head reads it
  centre_residual_writes(*out);
  return out;
}

Gpt2 to_pre_crmsnorm(Gpt2Impl& model) {
  for (const auto& [name, ln] : model.layer_norms())
    if (ln->is_fake(LnPath::kMain) || (ln->has_value_path() && ln->is_fake(LnPath::kValue)))
      fail(
          "convert to Pre-CRMSNorm: {} has a removed (fake) path; an LN-free model has no normalisation to "
          "compress (lnfree export --format folded folds it away)",
          name);
  const bool converted = model.shape().norm == NormKind::kRmsNorm && !model.shape().centre_writes &&
                         !model.shape().tie_word_embeddings && residual_writes_are_centred(model);
  Gpt2 rms = converted ? Gpt2(nullptr) : to_pre_rmsnorm(model);
  Gpt2Impl& src = converted ? model : *rms;

  auto shape = src.shape();
  shape.norm = NormKind::kCrmsNorm;
  const int64_t d = shape.n_embd, w = d - 1;
  Gpt2 out(shape);
  torch::NoGradGuard no_grad;
  // Writers: drop the last coordinate (a zero-mean vector's last coordinate is minus the sum of
  // the others).
  auto keep = [&](const torch::Tensor& t) { return f64(t).index({"...", Slice(0, w)}); };
  // Readers ([in, out], in = d): gamma/beta folded in (W <- diag(gamma) W, b <- b + beta W), then
  // row i < d-1 absorbs the dropped coordinate: W'[i] = W[i] - W[d-1].
  auto read = [&](const LayerNormImpl& ln, const torch::Tensor& weight, const torch::Tensor& bias) {
    auto g = f64(ln.weight), beta = f64(ln.bias), W = f64(weight);
    auto folded = g.unsqueeze(1) * W;
    auto b = f64(bias) + torch::matmul(beta, W);
    return std::pair{folded.index({Slice(0, w)}) - folded.index({Slice(w, d)}), b};
  };
  auto set = [](torch::Tensor& dst, const torch::Tensor& value) { dst.copy_(value.to(torch::kFloat)); };
  set(out->wte->weight, keep(src.wte->weight));
  set(out->wpe->weight, keep(src.wpe->weight));
  for (std::size_t i = 0; i < src.blocks.size(); ++i) {
    auto& s = src.blocks[i];
    auto& o = out->blocks[i];
    auto [attn_w, attn_b] = read(*s->ln_1, s->attn->c_attn->weight, s->attn->c_attn->bias);
    set(o->attn->c_attn->weight, attn_w);
    set(o->attn->c_attn->bias, attn_b);
    set(o->attn->c_proj->weight, keep(s->attn->c_proj->weight));
    set(o->attn->c_proj->bias, keep(s->attn->c_proj->bias));
    auto [fc_w, fc_b] = read(*s->ln_2, s->mlp->c_fc->weight, s->mlp->c_fc->bias);
    set(o->mlp->c_fc->weight, fc_w);
    set(o->mlp->c_fc->bias, fc_b);
    set(o->mlp->c_proj->weight, keep(s->mlp->c_proj->weight));
    set(o->mlp->c_proj->bias, keep(s->mlp->c_proj->bias));
  }
  // The head reads ln_f's output like a Conv1D with W = lm_head^T ([d, V]).
  auto [head_w, head_b] = read(*src.ln_f, src.unembedding_weight().t(), torch::zeros({shape.vocab_size}));
  set(out->lm_head->weight, head_w.t());
  set(out->lm_head->bias, head_b);
  for (const auto& [name, ln] : out->layer_norms()) {  // no affine part left: gamma 1, beta 0
    ln->weight.fill_(1.0);
    ln->bias.zero_();
  }
  return out;
}

}  // namespace lnfree::model
