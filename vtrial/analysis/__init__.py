"""Endpoints of a virtual trial on numpy and scipy.special: from the run's tables to ``summary.json``.

lifelines estimators, recomputed (``tests/test_analysis.py`` compares them with lifelines and
scipy.stats), so that a run imports neither lifelines nor scipy.stats.

- :mod:`~vtrial.analysis.proportions`: exact Poisson rates, Clopper–Pearson, Newcombe, Fisher;
- :mod:`~vtrial.analysis.survival`: Kaplan–Meier, cumulative incidence, RMST, log-rank, Cox,
  Andersen–Gill;
- :mod:`~vtrial.analysis.summary`: the summary dict and its JSON;
- :mod:`~vtrial.analysis.prediction`: prediction intervals over parameter draws (the ``uncertainty`` block);
- :mod:`~vtrial.analysis.run`: the run folder (read tables and protocol, write atomically).
"""

from vtrial.analysis.run import (
    analyse_run,
    analysis_settings,
    read_protocol,
    read_table,
    summarise_run,
    write_summary,
)
from vtrial.analysis.summary import cox_comparison, summarise, to_json

__all__ = [
    "analyse_run",
    "analysis_settings",
    "cox_comparison",
    "read_protocol",
    "read_table",
    "summarise",
    "summarise_run",
    "to_json",
    "write_summary",
]
