"""Analysis of an LN-removal scaling study: tokens needed per model size and their scaling with N.

Run it as `/usr/bin/python3 -m analysis STUDY_DIR`; docs/tokens-needed.md defines every number it
reports. Modules, one job each:

- `study`: the study folder (study.json, runs/<size>/{control,speed-*}/run.h5)
- `runlog`: one run.h5 (docs/run-log.md, schema version 1)
- `tokens_needed`: the gap to the control, T_delta per run, and the per-size table
- `scaling_fit`: the power-law fit tokens = a * N^b, its bootstrap interval and the verdict
- `plots`: loss curves, the log-log scaling plot and sigma trajectories (PNG and SVG)
- `report`: summary.json, the CSV tables and the printed table
"""
