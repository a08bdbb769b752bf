"""Verify a JSONL audit export of the Engagement Ledger with nothing but Python's standard library.

    python verify_export.py trail.jsonl [POSITION:HASH]

Exit 0 when every entry holds (and the digest, if given, is on the chain), else 1 with the
first bad line. `ledger audit verify --export` checks more (each entry's fields against its
stored event, every engagement's versions); this is the core an outsider can read in a minute.
"""

import hashlib
import json
import sys


def sha256(text):
    return hashlib.sha256(text.encode()).hexdigest()


def verify(path, digest=None):
    wanted = digest.split(":")[-1].lower() if digest else None
    seen_digest, count, previous, chain = False, 0, None, "log"
    with open(path, "rb") as lines:
        for number, line in enumerate(lines, start=1):
            try:
                record = json.loads(line)
            except ValueError:
                return f"line {number} is not JSON"
            kind = record.get("record")
            if number == 1:
                if kind != "header":
                    return "line 1 is not the header record"
                chain = record["chain"]  # "log", or "engagement" for one engagement's export
                continue
            if kind == "end":
                if record["entries"] != count or (count and record["last_hash"] != previous):
                    return f"line {number}: the end record does not match the entries"
                if wanted and not seen_digest:
                    return "the digest is not on this export's chain"
                return None
            where = f"line {number} (position {record['position']})"
            stored = record["stored_event"]  # null in a contractor's (redacted) export
            if stored is not None and sha256(stored) != record["event_sha256"]:
                return f"{where}: the stored event does not match its hash"
            prev_field, hash_field = ("prev_hash", "hash") if chain == "log" else (
                "engagement_prev_hash", "engagement_hash")
            for p, h in (("prev_hash", "hash"), ("engagement_prev_hash", "engagement_hash")):
                if sha256(record[p] + record["event_sha256"]) != record[h]:
                    return f"{where}: {h} is not SHA-256({p} + event_sha256)"
            if previous is not None and record[prev_field] != previous:
                return f"{where}: the chain breaks here (a line was changed, dropped or moved)"
            previous = record[hash_field]
            seen_digest = seen_digest or record["hash"] == wanted
            count += 1
    return "there is no end record: the export was cut short"


if __name__ == "__main__":
    try:
        problem = verify(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else None)
    except (KeyError, TypeError, AttributeError) as error:
        problem = f"a record lacks a field or has the wrong kind of value ({error!r})"
    print(problem or "export intact")
    sys.exit(1 if problem else 0)
