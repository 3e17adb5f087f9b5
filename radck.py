import subprocess, sys, json, pandas as pd, numpy as np, os
out = sys.argv[1]
def run(name, n):
    d = f"{out}/{name}"
    subprocess.run([sys.executable, "-m", "vtrial.cli", "run", f"protocols/trials/{name}.toml", "--patients", str(n), "--out", d, "--force", "--quiet", "--jobs", "1"], check=True)
    return d
d = run("nilsson2007", 2000)
m = pd.read_parquet(f"{d}/markers.parquet"); p = pd.read_parquet(f"{d}/patients.parquet")
m = m.merge(p[["patient_id","arm"]], on="patient_id") if "arm" not in m else m
for arm, g in m.groupby("arm"):
    w0 = g[g.week==0].set_index("patient_id")["bsap_ug_l"]; w16 = g[g.week==16].set_index("patient_id")["bsap_ug_l"]
    both = w0.index.intersection(w16.index)
    print(arm, "BSAP median change wk16 %.1f%%" % (100*np.median(w16[both]/w0[both]-1)), "baseline median %.0f" % w0.median())
d = run("alsympca", 2000)
s = json.load(open(f"{d}/summary.json"))
for a, v in s["arms"].items(): print(a, "median OS", round(v["median_overall_survival_months"],1), "median TTFSRE", v["median_time_to_first_sre_months"])
for c in s["comparisons"]: print(c["arm"], "vs", c["reference"], "OS HR", round(c["overall_survival"]["hazard_ratio"],3), "SRE HR", round(c["time_to_first_sre"]["hazard_ratio"],3))
