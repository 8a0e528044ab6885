"""Request and recommendation ids: the formats clients see, unique, fresh after fork."""

from __future__ import annotations

import os
import re
import uuid

from app.core.ids import RandomIdPool, hex_id, uuid4_str


def test_uuid4_str_is_a_version_4_rfc_uuid_in_canonical_form() -> None:
    for _ in range(2000):  # several pool refills (256 ids per draw)
        text = uuid4_str()
        parsed = uuid.UUID(text)
        assert parsed.version == 4
        assert parsed.variant == uuid.RFC_4122
        assert str(parsed) == text


def test_hex_id_is_32_lowercase_hex_digits() -> None:
    assert re.fullmatch(r"[0-9a-f]{32}", hex_id())


def test_ids_do_not_repeat_across_refills() -> None:
    ids = {hex_id() for _ in range(5000)} | {uuid4_str().replace("-", "") for _ in range(5000)}
    assert len(ids) == 10000


def test_pool_cuts_each_draw_into_distinct_slices() -> None:
    pool = RandomIdPool(ids_per_draw=4)
    taken = [pool.take() for _ in range(12)]  # three draws
    assert all(len(t) == 16 for t in taken)
    assert len(set(taken)) == 12


def test_forked_child_draws_its_own_ids() -> None:
    hex_id()  # the parent's pool now holds undrawn bytes
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: report its next id and leave without running pytest's exit
        os.write(write, hex_id().encode())
        os._exit(0)
    os.close(write)
    child_id = os.read(read, 64).decode()
    os.waitpid(pid, 0)
    assert re.fullmatch(r"[0-9a-f]{32}", child_id)
    assert child_id != hex_id()  # the parent's next id was not handed to the child
