"""Site calibration and validation: profiles, the labelled-folder run and its figures."""
