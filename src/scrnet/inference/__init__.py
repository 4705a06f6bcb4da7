"""Prediction on images and videos, and the public Segmenter."""
