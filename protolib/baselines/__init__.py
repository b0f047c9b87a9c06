"""The baselines the paper compares with: ProtoPNet."""
