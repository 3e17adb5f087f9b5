"""Calibration against published trials: targets and tolerances, replicas, ``vtrial validate``, the fit.

- :mod:`~vtrial.calibration.targets`: the published figures, tolerance rules and the table
  mapping each target to a replica and a simulated statistic;
- :mod:`~vtrial.calibration.replicas`: run the replica protocols of ``protocols/trials``;
- :mod:`~vtrial.calibration.statistics`: the simulated statistics with their CIs;
- :mod:`~vtrial.calibration.validate`: the validation table, CSV and HTML;
- :mod:`~vtrial.calibration.fit`: the fit of the population parameters (``vtrial calibrate``).
"""
