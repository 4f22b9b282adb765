"""Pretrained front-ends that turn audio into learned representations (self-supervised speech models)."""
