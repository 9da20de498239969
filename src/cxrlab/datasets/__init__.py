"""Readers of each source layout (NIH, VinDr-CXR) and the phantom generator, all into the two tables."""
