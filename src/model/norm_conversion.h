// Exact rewrites of a Pre-LN GPT-2 into the forms of Jiang et al.'s "Pre-RMSNorm and Pre-CRMSNorm
// Transformers" (seed-normalization §1, docs/normalization.md). Every reader of the residual
// stream goes through a LayerNorm, which sees only C x (C = I - 11^T/d): centring every write to
// the stream changes nothing that is read, and then each LayerNorm sees a zero-mean input, on which
// it equals an RMSNorm with the same eps. All arithmetic is float64, rounded to fp32 once.
#pragma once

#include <vector>

#include "model/gpt2.h"

namespace lnfree::model {

// Centres every write to the residual stream in place, in float64: wte and wpe rows, both c_proj
// weights along their output axis and their biases. Refuses a tied head (wte is then also the
// unembedding, and centring it changes logit v by -mean(wte[v]) * sum(ln_f output): not a constant
// per position, so the loss changes) and a model that centres its writes in the forward already.
void centre_residual_writes(Gpt2Impl& model);

// Pre-LN -> Pre-RMSNorm: an untied copy (lm_head = the original wte) with every write centred and
// every LayerNorm an RMSNorm with the same gamma, beta, eps, removal state and sigmas. Takes a
// LayerNorm model, or an RMSNorm model that centres its writes in the forward (run.norm), whose
// centring it bakes into the weights.
Gpt2 to_pre_rmsnorm(Gpt2Impl& model);

// Pre-LN -> Pre-CRMSNorm (inference only): after to_pre_rmsnorm, gamma/beta folded into the readers
// (c_attn, c_fc, the head, which gets a vocabulary bias), the last coordinate dropped from every
// writer and absorbed by the readers (x_d = -sum of the others), normalisers CRMSNorm without an
// affine part (gamma 1, beta 0) on a stream of width n_embd - 1. Refuses a model with a removed
// (fake) path: an LN-free model has nothing left to compress (fold it: lnfree export --format folded).
// Also takes a Pre-RMSNorm model whose writes are centred (a conversion's output).
Gpt2 to_pre_crmsnorm(Gpt2Impl& model);

// Every parameter that writes to the residual stream, d along its last axis: wte, wpe, and each
// block's attention and MLP c_proj weight ([in, out]) and bias.
std::vector<torch::Tensor> residual_write_tensors(const Gpt2Impl& model);

// True when every write to the residual stream (wte, wpe, both c_proj weights along their output
// axis, their biases) has a mean over d of at most `tolerance` times the tensor's RMS, as after
// centre_residual_writes (fp32 rounding leaves ~1e-8).
bool residual_writes_are_centred(const Gpt2Impl& model, double tolerance = 1e-6);

}  // namespace lnfree::model
