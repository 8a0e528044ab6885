"""The errors every model-side refusal raises, in a module that imports nothing.

They live apart from ``training.models.base`` so that low-level modules such as
``training.device`` can raise them without importing the ``training.models``
package (whose ``__init__`` imports every model, which import those modules
back: a cycle). ``training.models.base`` re-exports them under the same names.
"""

from __future__ import annotations


class ModelError(Exception):
    """A model was asked for something it cannot do; the message says what."""


class UnsuitableData(ModelError):
    """The training data has a property the model cannot learn from, whatever its settings.

    All ratings equal (a model of rating levels needs two), no positive
    interaction, every user with every item (no negative to rank against),
    implicit data for a model of explicit ratings. ``Model.check_data`` raises
    it before any fit and ``fit`` raises it through the same code; ``genrec
    tune`` leaves such a model out of the search instead of sampling it again
    (a failure that depends on the settings, a diverging loss, stays a plain
    ``ModelError``). The message says which property, as any ``ModelError``'s.
    """
