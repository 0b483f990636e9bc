"""Losses over ``(B, T, C)`` network outputs (spikes or readout membranes)."""

from __future__ import annotations

import jax.numpy as jnp
import optax

__all__ = ["rate_cross_entropy", "max_membrane_cross_entropy", "mean_membrane_cross_entropy", "membrane_mse",
           "accuracy"]


def rate_cross_entropy(spikes, labels):
    """Cross-entropy of the spike counts used as logits."""
    return optax.softmax_cross_entropy_with_integer_labels(spikes.sum(axis=1), labels).mean()


def max_membrane_cross_entropy(v, labels):
    """Cross-entropy of each output's maximum membrane over time."""
    return optax.softmax_cross_entropy_with_integer_labels(v.max(axis=1), labels).mean()


def mean_membrane_cross_entropy(v, labels):
    """Cross-entropy of each output's mean membrane over time."""
    return optax.softmax_cross_entropy_with_integer_labels(v.mean(axis=1), labels).mean()


def membrane_mse(v, targets):
    """Mean squared error between membranes and targets of the same shape."""
    return jnp.mean((v - targets) ** 2)


def accuracy(scores, labels):
    """Fraction of samples whose arg-max score (over the last axis) is the label."""
    return jnp.mean(jnp.argmax(scores, axis=-1) == labels)
