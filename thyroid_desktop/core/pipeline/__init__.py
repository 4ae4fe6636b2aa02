"""The analysis steps as functions of (image, frame, box): scan area, scope, detection,
crop, estimate, Grad-CAM map, TI-RADS suggestions. Called through core.analysis."""
