"""Erasing a user (right to erasure): ``DELETE /v1/users/{id}``, ``genrec users erase``.

One job per module:

* ``erasure`` — deleting the user's rows and recording the erasure, for the route
  and the CLI alike.
* ``sync`` — every server's poll of the recorded erasures (``ErasureSync``), which
  feeds ``app.serving.erased.ErasedUsers`` and drops the users' cached states.
"""

from app.users.erasure import Erased, ErasureError, erase_from_database, erase_users
from app.users.sync import ErasureSync

__all__ = ["Erased", "ErasureError", "ErasureSync", "erase_from_database", "erase_users"]
