#include "model/gpt2.h"

#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <utility>
#include <vector>

#include "model/torch_compat.h"
#include "util/error.h"

namespace lnfree::model {

Conv1DImpl::Conv1DImpl(int64_t in, int64_t out, bool centre_output) : centre_output_(centre_output) {
  weight = register_parameter("weight", torch::empty({in, out}));
  bias = register_parameter("bias", torch::zeros({out}));
}

torch::Tensor Conv1DImpl::effective_weight() const {
  return centre_output_ ? weight - weight.mean(1, /*keepdim=*/true) : weight;
}

torch::Tensor Conv1DImpl::effective_bias() const { return centre_output_ ? bias - bias.mean() : bias; }

namespace {
// x·W + b as one GEMM (addmm, as Hugging Face's Conv1D does): the bias is added inside the GEMM,
// and under bf16 autocast the output stays bf16, where matmul + an fp32 bias would promote the
// whole activation to fp32 (twice the memory, and fp32 inputs to everything downstream).
torch::Tensor affine(const torch::Tensor& x, const torch::Tensor& w, const torch::Tensor& b) {
  auto sizes = x.sizes().vec();
  sizes.back() = w.size(1);
  return torch::addmm(b, x.reshape({-1, x.size(-1)}), w).view(sizes);
}
}  // namespace

torch::Tensor Conv1DImpl::forward(const torch::Tensor& x) {
  if (!centre_output_) return affine(x, weight, bias);
  return affine(x, effective_weight(), effective_bias());
}

AttentionImpl::AttentionImpl(const Gpt2Shape& shape)
    : n_head_(shape.n_head), n_embd_(shape.n_embd), dropout_(shape.dropout) {
  c_attn = register_module("c_attn", Conv1D(shape.residual_width(), 3 * shape.n_embd));
  c_proj = register_module("c_proj", Conv1D(shape.n_embd, shape.residual_width(), shape.centre_writes));
#if !LNFREE_HAS_SDPA
  causal_mask_ = torch::ones({shape.n_positions, shape.n_positions}, torch::kBool).triu(1);
#endif
}

torch::Tensor AttentionImpl::forward(const torch::Tensor& x_qk, const torch::Tensor& x_v) {
  const int64_t B = x_qk.size(0), T = x_qk.size(1), d = n_embd_;
  auto y = head_outputs(x_qk, x_v).transpose(1, 2).contiguous().view({B, T, d});
  y = c_proj(y);
  if (is_training() && dropout_ > 0) y = torch::dropout(y, dropout_, true);
  return y;
}

torch::Tensor AttentionImpl::head_outputs(const torch::Tensor& x_qk, const torch::Tensor& x_v) {
  const int64_t B = x_qk.size(0), T = x_qk.size(1), d = n_embd_, hd = n_embd_ / n_head_;
  const auto& W = c_attn->weight;
  const auto& b = c_attn->bias;
  using torch::indexing::Slice;
  torch::Tensor q, k, v;
  if (x_qk.is_same(x_v)) {
    // One matmul for Q, K and V when both paths read the same tensor.
    auto qkv = affine(x_qk, W, b);
    auto parts = qkv.split(d, -1);
    q = parts[0], k = parts[1], v = parts[2];
  } else {
    auto qk = affine(x_qk, W.index({Slice(), Slice(0, 2 * d)}), b.index({Slice(0, 2 * d)}));
    auto parts = qk.split(d, -1);
    q = parts[0], k = parts[1];
    v = affine(x_v, W.index({Slice(), Slice(2 * d, 3 * d)}), b.index({Slice(2 * d, 3 * d)}));
  }
  auto heads = [&](const torch::Tensor& t) { return t.view({B, T, n_head_, hd}).transpose(1, 2); };
  if (causal_mask_.defined() && causal_mask_.device() != q.device())
    causal_mask_ = causal_mask_.to(q.device());
  return causal_attention(heads(q), heads(k), heads(v), dropout_, is_training(), causal_mask_);
}

MlpImpl::MlpImpl(const Gpt2Shape& shape) : dropout_(shape.dropout) {
  c_fc = register_module("c_fc", Conv1D(shape.residual_width(), 4 * shape.n_embd));
  c_proj = register_module("c_proj", Conv1D(4 * shape.n_embd, shape.residual_width(), shape.centre_writes));
}

torch::Tensor MlpImpl::forward(const torch::Tensor& x) {
  auto y = c_proj(torch::gelu(c_fc(x), "tanh"));
  if (is_training() && dropout_ > 0) y = torch::dropout(y, dropout_, true);
  return y;
}

BlockImpl::BlockImpl(const Gpt2Shape& shape) : dropout_(shape.dropout) {
  const int64_t w = shape.residual_width();
  ln_1 = register_module("ln_1", LayerNorm(w, shape.layer_norm_epsilon, /*has_value_path=*/true, shape.norm));
  attn = register_module("attn", Attention(shape));
  ln_2 = register_module("ln_2", LayerNorm(w, shape.layer_norm_epsilon, false, shape.norm));
  mlp = register_module("mlp", Mlp(shape));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x, const LnContext& context, BlockTrace* trace) {
  if (is_training()) ln_1->update_statistics(x);
  // ln_1 is applied once per path: the Q/K path and the V path can be removed separately. While
  // both are real they are the same tensor, and attention then uses one fused Q/K/V matmul.
  auto x_qk = ln_1->forward_path(x, LnPath::kMain, context);
  const bool both_real = !ln_1->is_fake(LnPath::kMain) && !ln_1->is_fake(LnPath::kValue);
  auto x_v = both_real ? x_qk : ln_1->forward_path(x, LnPath::kValue, context);
  if (trace) {
    trace->heads = attn->head_outputs(x_qk, x_v);
    const int64_t B = x.size(0), T = x.size(1);
    auto h = x + attn->c_proj(trace->heads.transpose(1, 2).contiguous().view({B, T, -1}));
    trace->mlp_out = mlp(ln_2->forward_path(h, LnPath::kMain, context));
    return h + trace->mlp_out;
  }
  auto h = x + attn(x_qk, x_v);
  if (is_training()) ln_2->update_statistics(h);
  return h + mlp(ln_2->forward_path(h, LnPath::kMain, context));
}

Gpt2Impl::Gpt2Impl(const Gpt2Shape& shape) : shape_(shape) {
  shape_.validate("model shape");
  const int64_t w = shape.residual_width();
  wte = register_module("wte", torch::nn::Embedding(shape.vocab_size, w));
  wpe = register_module("wpe", torch::nn::Embedding(shape.n_positions, w));
  h = register_module("h", torch::nn::ModuleList());
  for (int64_t i = 0; i < shape.n_layer; ++i) {
    blocks.push_back(Block(shape));
    h->push_back(blocks.back());
  }
  ln_f = register_module("ln_f", LayerNorm(w, shape.layer_norm_epsilon, false, shape.norm));
  if (!shape.tie_word_embeddings)
    lm_head = register_module(
        "lm_head", torch::nn::Linear(torch::nn::LinearOptions(w, shape.vocab_size)
                                         .bias(shape.norm == NormKind::kCrmsNorm)));
  reset_parameters();
}

void Gpt2Impl::reset_parameters() {
  torch::NoGradGuard no_grad;
  const double std = 0.02;
  wte->weight.normal_(0.0, std);
  wpe->weight.normal_(0.0, std);
  const double proj_std = std / std::sqrt(2.0 * static_cast<double>(shape_.n_layer));
  for (auto& block : blocks) {
    block->attn->c_attn->weight.normal_(0.0, std);
    block->attn->c_proj->weight.normal_(0.0, proj_std);
    block->mlp->c_fc->weight.normal_(0.0, std);
    block->mlp->c_proj->weight.normal_(0.0, proj_std);
    for (auto* conv : {&block->attn->c_attn, &block->attn->c_proj, &block->mlp->c_fc, &block->mlp->c_proj})
      (*conv)->bias.zero_();
    for (auto* ln : {&block->ln_1, &block->ln_2}) {
      (*ln)->weight.fill_(1.0);
      (*ln)->bias.zero_();
    }
  }
  ln_f->weight.fill_(1.0);
  ln_f->bias.zero_();
  if (lm_head) {
    lm_head->weight.normal_(0.0, std);
    if (lm_head->bias.defined()) lm_head->bias.zero_();
  }
}

torch::Tensor Gpt2Impl::embed(const torch::Tensor& ids) {
  auto positions = torch::arange(ids.size(1), torch::TensorOptions().dtype(torch::kLong).device(ids.device()));
  auto x = wte(ids) + wpe(positions);
  // Centring the sum row by row equals looking up centred wte and wpe rows, with one O(d) op per
  // token; the tied head keeps reading the raw wte (seed-normalization §1.3).
  return shape_.centre_writes ? x - x.mean(-1, /*keepdim=*/true) : x;
}

torch::Tensor Gpt2Impl::unembedding_weight() const { return lm_head ? lm_head->weight : wte->weight; }

torch::Tensor Gpt2Impl::unembedding_bias() const { return lm_head ? lm_head->bias : torch::Tensor(); }

torch::Tensor Gpt2Impl::residual(const torch::Tensor& ids, std::vector<BlockTrace>* traces) {
  const int64_t T = ids.size(1);
  if (T > shape_.n_positions)
    fail("sequence of {} tokens is longer than the model's context (n_positions = {})", T,
         shape_.n_positions);
  auto x = embed(ids);
  if (is_training() && shape_.dropout > 0) x = torch::dropout(x, shape_.dropout, true);
  LnContext context;
  for (auto& block : blocks)
    if (block->ln_1->flags().eot_special) context.eot_mask = ids.eq(shape_.eot_token);
  if (traces) {
    TORCH_CHECK(!is_training(), "Gpt2: traces are for eval mode");
    traces->assign(blocks.size(), {});
    for (std::size_t i = 0; i < blocks.size(); ++i) x = blocks[i]->forward(x, context, &(*traces)[i]);
    return x;
  }
  for (auto& block : blocks) x = block(x, context);
  return x;
}

torch::Tensor Gpt2Impl::logits_from_residual(const torch::Tensor& r) {
  if (is_training()) ln_f->update_statistics(r);
  auto logits = torch::matmul(ln_f(r), unembedding_weight().t());
  const auto bias = unembedding_bias();
  return bias.defined() ? logits + bias : logits;
}

torch::Tensor Gpt2Impl::forward(const torch::Tensor& ids) { return logits_from_residual(residual(ids)); }

std::vector<std::pair<std::string, LayerNorm>> Gpt2Impl::layer_norms() const {
  std::vector<std::pair<std::string, LayerNorm>> out;
  for (size_t i = 0; i < blocks.size(); ++i) {
    out.emplace_back("h." + std::to_string(i) + ".ln_1", blocks[i]->ln_1);
    out.emplace_back("h." + std::to_string(i) + ".ln_2", blocks[i]->ln_2);
  }
  out.emplace_back("ln_f", ln_f);
  return out;
}

bool Gpt2Impl::all_layer_norms_fake() const {
  for (const auto& [name, ln] : layer_norms())
    if (!ln->all_fake()) return false;
  return true;
}

torch::Tensor Gpt2Impl::loss(const torch::Tensor& windows) {
  using torch::indexing::Slice;
  const int64_t T = windows.size(1) - 1;
  auto inputs = windows.index({Slice(), Slice(0, T)});
  auto targets = windows.index({Slice(), Slice(1, T + 1)});
  auto logits = forward(inputs);
  return torch::nn::functional::cross_entropy(logits.reshape({-1, logits.size(-1)}), targets.reshape({-1}));
}

}  // namespace lnfree::model
