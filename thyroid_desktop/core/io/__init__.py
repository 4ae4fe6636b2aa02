"""Reading files: any supported file -> UltrasoundImage (frames, calibration, identity);
atomic writes and the user data folder. Imports no model code."""
