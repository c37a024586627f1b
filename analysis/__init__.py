"""Analysis of an LN-removal scaling study: recovery tokens and tokens needed per model size, averaged
over seeds, and their scaling with N.

Run it as `/usr/bin/python3 -m analysis STUDY_DIR`; docs/tokens-needed.md defines every number it
reports. Modules, one job each:

- `study`: the study folder (study.json, runs/<size>/seed-<v>/{control,speed-*}/run.h5, or the
  single-seed runs/<size>/{control,speed-*}/run.h5)
- `runlog`: one run.h5 (docs/run-log.md, schema version 1)
- `recovery`: the fit gap(t) = g_inf + A exp(-(t - t_free)/tau) of one run, its plateau and R
- `tokens_needed`: per run the gap to its control, T_delta and the recovery fit; per seed the minima
  over the speeds
- `replicates`: per size the mean over seeds with a between-seed interval
- `delta_sanity`: whether delta clears every size's plateau by more than its noise
- `scaling_fit`: the power law tokens = a * N^b, its seed-and-scatter bootstrap interval, the verdict
- `plots`: loss and gap curves with the fits, the scaling plots and sigma trajectories (PNG and SVG)
- `report`: summary.json, the CSV tables and the printed table
"""
