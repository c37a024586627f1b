// Keeps large tensor buffers in the process's heap instead of fresh mmap()s (glibc only).
//
// glibc serves every allocation above its mmap threshold (at most 32 MiB by default) with a new
// mmap() and returns it with munmap() on free, so each training step's large buffers (the logits of
// a micro-batch: 8 x 128 x 50257 floats = 206 MB on the tiny model) arrive as fresh pages that the
// kernel faults in and zeroes again. On the 2-core CI machine that kernel work was as large as the
// training's own (user 21 s, sys 17 s for 10 tiny-model steps) and the step ran 5x slower: 552 vs
// 2878 tokens/s, `lnfree train --config configs/tiny/pretrain.toml --set data.steps=10`, Debian 12
// glibc 2.36, identical losses. Raising the mmap threshold and disabling heap trimming keeps freed
// buffers for reuse; peak resident memory is unchanged, it is only not returned between steps.
#pragma once

namespace lnfree {

// Call first in main(), before any large allocation. Returns false where glibc refused (or the C
// library is not glibc); the process then runs as before.
bool keep_large_allocations_in_the_heap();

}  // namespace lnfree
