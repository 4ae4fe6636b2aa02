"""Calibration and validation: the one :class:`~.calibration.Calibration` value (shipped or a
site's), the one metrics module (AUROC + CI, ECE, the threshold rule), site profiles and the
labelled-folder run. Shared by the app, the CLI, training and the benchmarks."""
