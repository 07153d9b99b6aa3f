"""Data stage: input files -> cloning components -> prompt -> tokens + codes -> batch."""
