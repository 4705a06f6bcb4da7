"""Sharing weights: the published folder, the model card, the Hub upload."""
