"""Data, losses, optimiser and training utilities of the FSANet reproduction."""
