"""What Postgres keeps of the JSON text the data plane records (the body as received): a number's digits
exactly, the last of two equal keys (as the model got it: test_payload.py), any character a JSON string may hold
once it passed the body checks. The HTTP tests read the same text from memory; this is where it meets ``jsonb``."""
from __future__ import annotations

from decimal import Decimal

import sqlalchemy as sa

from audit_support import make_record

LITERALS = ["0.1", "1.10", "1e2", "-0.0", "5e-324", "1.7976931348623157e308", "2.5E-3", "0.30000000000000004",
            "1.2345678901234568e+21", "0.500000000000000000000000", "12345678901234567890", "18446744073709551615",
            "-9223372036854775808"]


def test_the_recorded_text_is_read_back_as_the_caller_wrote_it(clean_db: sa.Engine, database_url: str,
                                                               audit_logs) -> None:
    numbers = make_record(input_json="[" + ", ".join(LITERALS) + "]")
    duplicate = make_record(input_json='{"vehicle": "van", "driver_age": 40, "vehicle": "suv"}')
    text = make_record(input_json='{"s": "\\ud83d\\ude00 Zoë \\" \\\\ \\n"}')
    audit = audit_logs(database_url)
    for record in (numbers, duplicate, text):
        audit.record(record)

    with clean_db.connect() as conn:
        stored = conn.execute(sa.text("select (jsonb_array_elements(input))::text::numeric from inferences "
                                      "where id = :id"), {"id": numbers.id}).scalars().all()
        rows = {str(r.id): r.input for r in conn.execute(sa.text("select id, input from inferences"))}
    assert stored == [Decimal(literal) for literal in LITERALS]
    assert rows[duplicate.id] == {"vehicle": "suv", "driver_age": 40}
    assert rows[text.id] == {"s": "\U0001F600 Zoë \" \\ \n"}
