"""Clinical rules without models: ACR TI-RADS points and levels, sizes and volume."""
