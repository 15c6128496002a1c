"""The bottom layer: typed values every other layer shares, and atomic file io."""
