"""Which passes a set of proxies needs (docs/method.md section 8).

:func:`plan_passes` turns the captures the asked proxies require into a :class:`PassPlan`; the
engine runs it and the passes of :mod:`.passes` fill the captures.
"""
import math
from typing import Dict, FrozenSet, NamedTuple

from .context import MAIN_PASS_CAPTURES

#: Captures that get a pass of their own, in this order, when the main pass could not fill
#: them (more than one chunk, or a model the weight-scale probe cannot take over).
FOLLOW_UPS = ('w_hessian_grad', 'hessian_grad', 'relu_codes')


class PassPlan(NamedTuple):
    """The passes for one batch.

    Attributes:
        main (frozenset[str]): captures of the gradient passes (the main pass and its
            follow-ups).
        synflow (bool): whether the synflow pass runs.
        refused (dict[str, str]): captures this batch cannot give, with the reason.
        num_images (int): images in the batch.
    """
    main: FrozenSet[str]
    synflow: bool
    refused: Dict[str, str]
    num_images: int

    def apart(self, chunk: int) -> FrozenSet[str]:
        """Captures of a main pass of their own over two halves of the batch.

        zico needs the gradients of at least two chunks; a one-chunk batch gets its own pass,
        so that asking for zico never changes the other proxies' values.
        """
        if 'grad_moments' in self.main and chunk >= self.num_images:
            return frozenset({'grad_moments'})
        return frozenset()

    def apart_chunk(self) -> int:
        """Chunk size of the pass of :meth:`apart`: half the batch."""
        return math.ceil(self.num_images / 2)

    def shared(self, chunk: int) -> FrozenSet[str]:
        """Captures of the shared main pass at chunk size ``chunk``."""
        return self.main - self.apart(chunk)

    def follow_ups(self):
        """The captures of :data:`FOLLOW_UPS` this plan needs, in their order."""
        return [c for c in FOLLOW_UPS if c in self.main]


def plan_passes(requires, num_images: int) -> PassPlan:
    """The :class:`PassPlan` that fills the captures ``requires`` for ``num_images`` images."""
    requires = set(requires)
    refused = {}
    if 'grad_moments' in requires and num_images < 2:
        refused['grad_moments'] = (f'zico needs gradients of at least 2 chunks, the batch '
                                   f'has {num_images} image(s)')
        requires.discard('grad_moments')
    return PassPlan(
        main=frozenset(requires & set(MAIN_PASS_CAPTURES)),
        synflow='synflow' in requires,
        refused=refused,
        num_images=num_images)
