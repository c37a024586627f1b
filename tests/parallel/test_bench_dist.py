"""`lnfree bench dist` runs end to end (few steps): both throughput rows and the allreduce table."""
import re

from dist_helpers import LNFREE, MPI_ENV, run


def test_bench_dist_reports_throughput_and_bandwidth(smoke_data):
    result, seconds = run([LNFREE, "bench", "dist", "--steps", "4", "--warmup", "2", "--rounds", "1", "--sizes", "1", "4",
                           "--repeats", "2"], timeout=180, env=MPI_ENV)
    print(result.stdout)
    rows = {m.group(1): float(m.group(2)) for m in re.finditer(r"^(1 rank x 2 threads|2 ranks x 1 thread)\s+(\d+)",
                                                                 result.stdout, re.M)}
    assert len(rows) == 2 and all(v > 0 for v in rows.values()), rows
    sizes = re.findall(r"^\s+(\d+)\s+[\d.]+\s+([\d.]+)\s+([\d.]+)$", result.stdout, re.M)
    assert [s[0] for s in sizes] == ["1", "4"] and all(float(s[1]) > 0 for s in sizes)
