"""The paper's method: Theorem 1, KMEx and the encoder's explanation maps."""
