// train_config_markdown(): the run config's part of docs/config.md. The tables come from the field
// lists in train_config.h (keys, types, defaults, allowed names, help); the prose between them is
// written here, next to nothing else, so that the page is regenerated rather than edited.
#include <fmt/format.h>

#include <string>
#include <string_view>
#include <type_traits>

#include "config/fields.h"
#include "config/removal_kind.h"
#include "config/train_config.h"

namespace lnfree::config {
namespace {

constexpr const char* kIntro =
    R"(A training run is described by one TOML file. Its fields are declared once, with their defaults and
help, in `src/config/train_config.h`; this page is generated from those declarations. The LN-removal
events come from `src/config/removal_schedule.h`.

```
lnfree config   --config configs/gpt2-small.toml [--set k=v ...] [--hash] [--skip-data]   # validate as train does (model, data, schedule; --skip-data: the config alone, not the model, token files or device), print resolved config
lnfree schedule --config configs/gpt2-small.toml [--set k=v ...] [--n-layer N]  # print removal events
lnfree config   --doc                                                            # print this page
```

## Files

| file | what |
|---|---|
| `configs/gpt2-small.toml`, `gpt2-medium.toml`, `gpt2-large.toml`, `gpt2-xl.toml` | LN removal as in the paper's `gpt2_aux`, `gpt2-medium_fasttune_aux`, `gpt2-large_aux` and `gpt2-xl_aux` configs (reference spec §3.3, the bold rows) |
| `configs/gpt2-*-vanilla.toml` | the vanilla controls: `mode = "finetune"`, same data, steps and LR schedule, no removal, no aux loss |
| `configs/models/*.toml` | model shapes (`[model]` table, below), named by `run.init` |
| `configs/study/*.toml` | scaling studies (below) |

The paper configs read the training tokens from `data/tokens/openwebtext/manifest.json` and evaluate on
its `val` split. You prepare that folder yourself from OpenWebText as JSON Lines (plain or
`*.jsonl.zst|gz|xz`, docs/data.md), holding out 0.05% as the reference does (spec §5.2):

```
lnfree prepare --source jsonl:data/raw/openwebtext --val-fraction 0.0005 --out data/tokens/openwebtext
```

Prepare's default `--val-fraction` (0.05) suits the small bundled corpora; on OpenWebText it would
hold out ~450M tokens, and the paper's evaluation protocol below would then cost ~3x the training. `run.init = "gpt2"` names the shape in
`configs/models/`. Fine-tuning needs the pretrained weights, so point it at a Hugging Face folder:
`--set run.init=PATH/TO/gpt2`.

### Choices in the paper configs

- **Steps.** Small and medium run the reference's `max_steps`: 300 and 500. The released large and XL
  models are the step-600 and step-800 checkpoints of 1200-step cosine schedules. So those configs
  set `data.steps = 600` or `800` and `optim.cosine_steps = 1200`. Every step that runs then gets the
  reference's learning rate. To train the full schedule, use `--set data.steps=1200`.
- **Batch.** `micro_batch` times the reference's accumulation count is the sequences per step:
  32×16, 22×23, 28×18 and 18×28. `tokens_per_step` is that number times 1024. On several GPUs the
  accumulation count shrinks. The micro-batch is per GPU, and the reference sized it for an
  A100 80 GB (small, medium) or a B200 (large, XL). Lower it with `--set data.micro_batch=N` if
  `tokens_per_step / 1024` stays a multiple of `N × world size`.
- **Evaluation.** The reference's protocol (spec §5.3): every 100 steps at batch 4 over the whole
  OWT test split (`max_windows = 0`), which the 0.05% split above makes ~4.4M tokens (~4,300
  windows). That is 3, 5, 6 and 8 passes for small, medium, large and XL, ~8.5% of the training
  tokens and ~3% of the training compute (forward only). The pass after the last step is already a
  full one, so `final_sets` stays empty.
- **Momentum.** Small and medium use 0.9. Large uses 0.9^(28/32) and XL uses 0.9^(18/32), written out
  in full.
- **Schedule.** Starts and gaps for ln2, ln1qk, ln1v and lnf, plus `eot` with gap 0. The eot event is a
  no-op because `ln.eot_special = false`; it is kept so the event list mirrors the reference's. `bos`
  is absent, as in the paper's runs (`EXP_CORRECT_BOS=0`).
- **Optimiser and model.** `decay = "paper"`, weight decay 0.01, clip 1.0, `seq_len = 1024`,
  `dropout = 0.1` (HF GPT-2's dropout, active in the reference's fine-tuning, spec §2), and
  `precision = "bf16"`.
- **Small vanilla.** It uses the non-aux `gpt2` config's batch (40×12 = 491,520 tokens, warmup 20).
  The paper's controls presumably used it (spec §3.3). For medium, large and XL, the non-aux config
  equals the aux one apart from λ.

## Sections and fields

An absent field takes its default. A field whose default is *required* must be given (in the file
or by `--set`). A field whose type lists names takes one of them, as a TOML string.
)";

constexpr const char* kScheduleRules = R"(```toml
[schedule.ln2]
start = 20
gap = 2
```

| `gap` | events |
|---|---|
| absent | one whole-model event at `start`, covering every layer at once. This is the only form allowed for `lnf`. |
| 0 | one event per layer, all at `start` |
| g > 0 | layer k at `start + k·g`, for k = 0 … n_layer−1 |

- **When events fire.** An event at step S fires before the first micro-batch of optimizer step S. The
  update that takes the step count from S to S+1 is the first one computed with that path fake.
- **Order.** Events are ordered by step, then by the reference's remover order (ln2 ln1qk ln1v lnf eot
  bos), then by layer.
- **Rules.** `pretrain` and `finetune` must have no `[schedule]`. `remove-ln` must have ln2, ln1qk, ln1v
  and lnf. The order between kinds is free, as in the reference.
- **Refusals.** A schedule is refused, with a message naming the event, if any event falls at or after
  `data.steps` (it would never fire and the model would not end LN-free). It is also refused if the
  same (kind, layer) is removed twice.
- **Removal window.** This is the span from the first to the last ln2/ln1qk/ln1v/lnf event. eot and
  bos only end special divisors, so they are not counted. The paper configs give [20, 104], [20, 188],
  [30, 534] and [50, 722].
)";

constexpr const char* kOverrides = R"(## Overrides: `--set section.key=value`

Every command that reads a config accepts `--set` as often as needed. Overrides apply in order, after
the file and before validation, so the last one wins. Each value is read as the field's declared
type:

| type | accepted | examples |
|---|---|---|
| int | TOML integer | `data.steps=400`, `data.tokens_per_step=524_288` |
| float | TOML integer or float | `optim.lr=3e-4`, `optim.grad_clip=1` |
| bool | `true` / `false` | `ln.eot_special=true` |
| string | the text verbatim, or a quoted TOML string | `run.init=/models/gpt2`, `run.init="a b"` |
| string: names | one of the names, verbatim or quoted | `run.device=cuda`, `optim.on_divergence="rollback"` |
| list of strings | comma-separated, or a TOML array | `eval.sets=a/manifest.json:val,b/manifest.json:val`, `eval.sets=[]`, `eval.sets=` (empty) |

Schedule entries:

| override | effect |
|---|---|
| `schedule.KIND.start=N` | sets the start; creates `[schedule.KIND]` (gap absent) if it was missing |
| `schedule.KIND.gap=N` or `schedule.KIND.gap=none` | sets or clears the gap; the kind must already exist |
| `schedule.KIND=none` | removes the kind |

Any of these is an error that names the config file, the `--set` text and the field: an unknown
section or key (the message lists the known ones), a value of the wrong type, or a malformed
assignment.

## Errors

Errors always name the file (with a line number when the problem is in the file), the field, and
what was expected:

```
configs/x.toml:12: [optim] unknown key 'lrr' (known: {optim_keys})
configs/x.toml:3: field 'run.device': expected one of {devices}, got string "gpu"
configs/x.toml:4: field 'data.steps': expected an integer, got float 300.0
configs/x.toml: [run] missing field 'mode': expected one of {modes}
configs/x.toml: field 'optim.lr': expected a finite number >= optim.min_lr = 0.0003, got 0.0001
configs/x.toml: [schedule.ln1v]: event 'ln1v layer 8 at step 308' is outside the run: expected a step in 0 .. 299 (data.steps = 300), so it would never fire
```

## Resolved config and hash

`to_canonical_toml` writes the *resolved* config:

- every section and field, in declaration order, with defaults written out and overrides applied;
- `[schedule.KIND]` subtables after `[ln]`;
- floats in their shortest round-trip form;
- no comments.

This text is saved with every run, and `lnfree config` prints it. Parsing it gives back the same
config. The config hash (`lnfree config --hash`) is the SHA-256 of that text, in hex. Two files that
differ only in formatting, comments, key order, or in spelling out a default get the same hash. Runs
use the hash to find cached results, and ranks use it to check that they all run the same config.
)";

std::string schedule_markdown() {
  std::string kinds;
  for (auto name : kRemovalKindNames) kinds += (kinds.empty() ? "`" : ", `") + std::string(name) + "`";
  return fmt::format(
      "### `[schedule]`\n\nOne subtable `[schedule.KIND]` per kind of removal event (spec §3.1); an absent "
      "kind never happens. The kinds are {} (in that order: ln_2, ln_1's Q/K path, ln_1's V path, ln_f, and "
      "the ends of the EOT and position-0 special divisors).\n\n{}\n{}",
      kinds, fields_markdown<RemovalGroupConfig>(RemovalGroupConfig{}), kScheduleRules);
}

}  // namespace

std::string train_config_markdown() {
  const TrainConfig defaults;
  std::string out = kIntro;
  TrainConfig::plain_sections(defaults, [&](const char* name, const auto& section, const char* help) {
    out += fmt::format("\n### `[{}]`\n\n", name);
    if (*help != '\0') out += std::string(help) + "\n\n";
    out += fields_markdown<std::decay_t<decltype(section)>>(section);
    if (std::string_view(name) == "ln") out += "\n" + schedule_markdown();
  });
  out += "\n" + fmt::format(fmt::runtime(kOverrides),
                            fmt::arg("optim_keys", known_keys<OptimConfig>(defaults.optim)),
                            fmt::arg("devices", enum_name_list<Device>()),
                            fmt::arg("modes", enum_name_list<RunMode>()));
  return out;
}

}  // namespace lnfree::config
