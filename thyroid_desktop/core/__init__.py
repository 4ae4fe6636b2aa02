"""Qt-free core of Thyroid Review: io -> pipeline (models) -> analysis -> review -> report.
Never imports Qt, thyroid_desktop.ui, thyroid_desktop.cli or training."""
