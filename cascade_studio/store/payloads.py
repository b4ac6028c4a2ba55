"""Trajectory payloads: the request, the response (without its logprobs) and the logprobs of each
trajectory, ~37 KB of JSON a row with logprobs. They live in `trajectory_payloads`, one row per
trajectory, apart from the narrow `trajectories` row that the inspector filters and sorts on, and
are stored compressed: what needs them reads and inflates them; nothing else walks their pages.

A stored payload is the zlib stream of the JSON text's UTF-8 bytes (it starts with 0x78): the JSON
read back is byte for byte the JSON that was written. A later codec would take another first byte."""

from __future__ import annotations

import sqlite3
import zlib
from collections.abc import Callable, Sequence
from typing import Any

import orjson

PAYLOAD_COLUMNS = ("request", "response", "logprobs")
# An answer's text in the `trajectories` row: plain while short (searchable), compressed past LARGE_TEXT,
# and a long final answer that is the content again is stored once, as SAME_AS_CONTENT (issue 33: an 80
# MB answer was stored twice, uncompressed).
TEXT_COLUMNS = ("content", "final_answer")
LARGE_TEXT = 64 * 1024
SAME_AS_CONTENT = b"\x00same-as-content"
LEVEL = 6  # zlib level: 4.6x on real rows at ~0.9 ms a row (9: 4.7x at 2.7 ms; 1: 3.9x)
MOVE_BATCH = 500  # rows read, compressed and written at once by the migration (~18 MB of JSON)
ZLIB = 0x78
CAN_DROP_COLUMN = sqlite3.sqlite_version_info >= (3, 35, 0)

CREATE = """
CREATE TABLE trajectory_payloads (
    id       INTEGER PRIMARY KEY REFERENCES trajectories(id) ON DELETE CASCADE,
    request  BLOB NOT NULL,   -- compressed JSON (see pack)
    response BLOB,            -- compressed JSON without the logprobs' content ("@logprobs"), or NULL
    logprobs BLOB             -- compressed JSON list of the tokens' logprobs, or NULL
)"""


def pack(text: str | bytes | None) -> bytes | None:
    """The stored form of a JSON text (None stays None)."""
    if text is None:
        return None
    return zlib.compress(text.encode() if isinstance(text, str) else bytes(text), LEVEL)


def unpack(blob: bytes | str | None) -> str | None:
    """The JSON text of a stored payload (None stays None). Text is returned as it is: a row
    written as plain JSON (by hand, or by a tool) still reads."""
    if blob is None or isinstance(blob, str):
        return blob
    if blob[:1] == bytes([ZLIB]):
        return zlib.decompress(blob).decode()
    return bytes(blob).decode()


def pack_text(text: str | None) -> str | bytes | None:
    """An answer's text as the `trajectories` row stores it: compressed when large."""
    if text is None or len(text) <= LARGE_TEXT:
        return text
    return pack(text)


def packed_text_contains(blob: bytes | str | None, needle: str | None) -> bool:
    """Whether a compressed answer (`pack_text`) holds `needle`, ignoring case as LIKE does (SQL
    function `packed_text_contains`: the text search calls it only for the rare compressed rows)."""
    if not needle or not isinstance(blob, bytes | memoryview) or blob[:1] != bytes([ZLIB]):
        return False
    try:
        text = unpack(bytes(blob))
    except (zlib.error, UnicodeDecodeError):
        return False
    return needle.lower() in (text or "").lower()


def pack_answer(final_answer: str | None, content: str | None) -> str | bytes | None:
    """The final answer as stored: a large one that is the content again is not stored a second time."""
    if final_answer is not None and content is not None and len(final_answer) > LARGE_TEXT and final_answer == content:
        return SAME_AS_CONTENT
    return pack_text(final_answer)


def final_answer_sql(table: str = "t") -> str:
    """The SELECT expression that reads a final answer stored once, as its content."""
    return f"CASE WHEN {table}.final_answer = X'{SAME_AS_CONTENT.hex()}' THEN {table}.content ELSE {table}.final_answer END"


def unpacked(names: Sequence[str]) -> Callable[[tuple], tuple]:
    """A function that inflates the payload (and large text) columns of a row of `names` (others pass
    unchanged)."""
    spots = [i for i, n in enumerate(names) if n in PAYLOAD_COLUMNS or n in TEXT_COLUMNS]
    if not spots:
        return lambda row: row

    def inflate(row: tuple) -> tuple:
        out = list(row)
        for i in spots:
            out[i] = unpack(out[i])
        return tuple(out)
    return inflate


def store(conn: sqlite3.Connection, traj_id: int, request: bytes | str, response: bytes | str | None,
          logprobs: bytes | str | None) -> None:
    """Write (or replace) one trajectory's payloads, given as JSON text."""
    conn.execute("INSERT INTO trajectory_payloads (id, request, response, logprobs) VALUES (?, ?, ?, ?) "
                 "ON CONFLICT(id) DO UPDATE SET request = excluded.request, response = excluded.response, "
                 "logprobs = excluded.logprobs", (traj_id, pack(request), pack(response), pack(logprobs)))


def move_payloads(conn: sqlite3.Connection, batch: int | None = None,
                  progress: Callable[[int], None] | None = None) -> int:
    """Schema step 17: copy every trajectory's payloads into `trajectory_payloads`, compressed,
    `batch` rows at a time (memory stays bounded on a workspace of any size), then drop the wide
    columns from `trajectories` (SQLite >= 3.35; before, they are blanked). Runs inside the step's
    one transaction: killed half-way, the workspace stays as it was. Returns the rows moved."""
    batch = batch or MOVE_BATCH
    conn.execute(CREATE)
    last, moved = 0, 0
    while True:
        rows = conn.execute("SELECT id, request, response, logprobs FROM trajectories WHERE id > ? ORDER BY id "
                            "LIMIT ?", (last, batch)).fetchall()
        if not rows:
            break
        conn.executemany("INSERT INTO trajectory_payloads (id, request, response, logprobs) VALUES (?, ?, ?, ?)",
                         [(i, pack(req or "{}"), pack(resp), pack(lp)) for i, req, resp, lp in rows])
        last, moved = rows[-1][0], moved + len(rows)
        if progress is not None:
            progress(moved)
    if CAN_DROP_COLUMN:
        for column in PAYLOAD_COLUMNS:
            conn.execute(f"ALTER TABLE trajectories DROP COLUMN {column}")
    else:  # the columns stay, empty; nothing reads them
        conn.execute("UPDATE trajectories SET request = '{}', response = NULL, logprobs = NULL")
    return moved


def _strip(response: dict[str, Any]) -> dict[str, Any]:
    """The response as stored: its logprobs' content lives in the logprobs payload ("@logprobs")."""
    choices = response.get("choices") or []
    if not choices or not isinstance(choices[0].get("logprobs"), dict) or choices[0]["logprobs"].get("content") is None:
        return response
    first = dict(choices[0])
    first["logprobs"] = {**first["logprobs"], "content": "@logprobs"}
    return {**response, "choices": [first, *choices[1:]]}


def restore_logprobs(response: dict[str, Any], logprobs_json: str | None) -> dict[str, Any]:
    choices = response.get("choices") or []
    if choices and isinstance(choices[0].get("logprobs"), dict) and choices[0]["logprobs"].get("content") == "@logprobs":
        choices[0]["logprobs"]["content"] = orjson.loads(logprobs_json) if logprobs_json else None
    return response
