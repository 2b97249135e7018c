"""The records the fast LSCE paths pass around, shared by NumPy, torch and Triton
(lesson 09).

Every field holds one number per row: NumPy arrays in :mod:`lsce_scratch.fast`, tensors
in :mod:`lsce_scratch.nn`. m is a row's most likely class (its first maximum) and
rest = Σ_k≠m exp(z_k − z_max) the sum of the softmax's other terms, so that log Σ_k
exp(z_k) = z_max + log(1 + rest) and p = exp(z − z_max) / (1 + rest).
"""

from __future__ import annotations

from typing import Generic, NamedTuple, TypeVar

# np.ndarray or torch.Tensor: one entry per row
Rows = TypeVar("Rows")


class SoftmaxStats(NamedTuple, Generic[Rows]):
    """What the gradient needs of each row's softmax; a forward pass saves it."""

    z_max: Rows  # the row maxima
    argmax: Rows  # m, where they are
    rest: Rows  # Σ_{k≠m} exp(z_k − z_max)


class SoftmaxState(NamedTuple, Generic[Rows]):
    """The online-softmax state of each row over the classes read so far.

    ``gap`` and ``mass`` carry the smoothing term for a vector of class weights a (w, or
    r for probability targets); with a = 1 they count the classes.
    """

    z_max: Rows  # running max of the logits
    argmax: Rows  # where it is (first occurrence)
    rest: Rows  # Σ_{k≠argmax} exp(z_k − z_max)
    gap: Rows  # Σ_k a_k (z_max − z_k) ≥ 0
    mass: Rows  # Σ_k a_k

    @property
    def stats(self) -> SoftmaxStats[Rows]:
        return SoftmaxStats(self.z_max, self.argmax, self.rest)


class RowLosses(NamedTuple, Generic[Rows]):
    """What a forward pass over some rows gives: their losses and softmax statistics."""

    loss: Rows  # ℓ_i, 0 on ignored rows
    z_max: Rows
    argmax: Rows
    rest: Rows

    @property
    def stats(self) -> SoftmaxStats[Rows]:
        return SoftmaxStats(self.z_max, self.argmax, self.rest)
