"""Lesson 07 exercises: the pieces of a NumPy MLP trained with hand-written backprop.

Notation: x the input rows (N × D_in), h = xW + b (N × D_out), dout = ∂L/∂h; z (N, K)
logits and y the labels; θ a parameter, g its gradient. 7.1 the backward of a linear
layer, 7.2 one Adam step, 7.3 the logit gap that label smoothing bounds.
"""

import numpy as np

from lsce_examples import digits_mlp as mlp


class Linear(mlp.Linear):
    """The library's layer h = xW + b (forward, init, params):
    you write its backward."""

    def backward(self, dout: np.ndarray, cache: np.ndarray) -> np.ndarray:
        """Given dout = ∂L/∂h (N × D_out) and the cache x (N × D_in, the forward's
        input), set self.dW = ∂L/∂W (D_in × D_out) and self.db = ∂L/∂b (D_out,), and
        return ∂L/∂x (N × D_in). Use self.W as it is; do not update it here. Each call
        sets the gradients afresh (=, not +=): a second backward replaces them.
        """
        # ∂L/∂W = xᵀ dout;  ∂L/∂b = Σ_i dout_i;  ∂L/∂x = dout Wᵀ
        raise NotImplementedError(
            "Exercise 7.1 (Linear.backward): run `lsce hint 7.1`, then `lsce check 7.1`"
        )


class Adam(mlp.Adam):
    """The library's Adam (its __init__ sets self.params, self.lr, self.beta1,
    self.beta2, self.eps, the zero moments self.m and self.v, and self.t = 0):
    you write its step."""

    def step(self, grads: list[np.ndarray]) -> None:
        """One Adam update of every array in self.params, in place, from its
        gradient in ``grads`` (same order). Matches torch.optim.Adam with the same
        lr, betas and eps. self.t counts the steps, this one included: 1 in the
        first step, n after n steps.
        """
        # t ← t + 1;  m ← β₁ m + (1 − β₁) g;  v ← β₂ v + (1 − β₂) g²   (m, v in place)
        # m̂ = m / (1 − β₁ᵗ);  v̂ = v / (1 − β₂ᵗ);
        #   θ ← θ − lr · m̂ / (√v̂ + eps)   (θ in place)
        raise NotImplementedError(
            "Exercise 7.2 (Adam.step): run `lsce hint 7.2`, then `lsce check 7.2`"
        )


def logit_gap(logits: np.ndarray, labels: np.ndarray) -> np.ndarray:
    """Return z_y − max_{k≠y} z_k for every row of (N, K) logits, shape (N,).

    Positive when the row is classified right, negative when wrong, 0 on a tie. Do not
    modify ``logits``. The result keeps the logits' dtype: float32 in, float32 out.
    """
    # gap_i = z_{i,y_i} − max_{k≠y_i} z_ik
    raise NotImplementedError(
        "Exercise 7.3 (logit_gap): run `lsce hint 7.3`, then `lsce check 7.3`"
    )
