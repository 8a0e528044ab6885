"""The error every model-side refusal raises, in a module that imports nothing.

It lives apart from ``training.models.base`` so that low-level modules such as
``training.device`` can raise it without importing the ``training.models``
package (whose ``__init__`` imports every model, which import those modules
back: a cycle). ``training.models.base`` re-exports it under the same name.
"""

from __future__ import annotations


class ModelError(Exception):
    """A model was asked for something it cannot do; the message says what."""
