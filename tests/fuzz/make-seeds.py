#!/usr/bin/env python3
"""make-seeds.py -- regenerates the seed corpora under tests/fuzz/corpus/
for the walproto, pgvalue, config and jsonschema harnesses (pgoutput's come
from tests/data/capture-pgoutput.sh --corpus).

Run from anywhere: python3 tests/fuzz/make-seeds.py.  Sources: the framed
pgoutput seeds, the project's schemas and example config, values the unit
tests use, and (when the Debian package json-schema-test-suite is installed)
a sample of its draft7 schemas and instances.  Files are small by design:
the fuzzer mutates them, so breadth matters more than size."""
import hashlib
import json
import os
import struct
import sys

ROOT = os.path.normpath(os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", ".."))
CORPUS = os.path.join(ROOT, "tests", "fuzz", "corpus")
SUITE = "/usr/share/json-schema-test-suite/tests/draft7"


def write(name, files):
    d = os.path.join(CORPUS, name)
    os.makedirs(d, exist_ok=True)
    for old in os.listdir(d):
        os.unlink(os.path.join(d, old))
    seen = set()
    for label, data in files:
        if isinstance(data, str):
            data = data.encode()
        h = hashlib.sha1(data).hexdigest()
        if h in seen:
            continue
        seen.add(h)
        with open(os.path.join(d, label), "wb") as f:
            f.write(data)
    print(f"{name}: {len(seen)} seeds", file=sys.stderr)


def walproto():
    src = os.path.join(CORPUS, "pgoutput")
    out = []
    lsn = 0x16B3748
    for fn in sorted(os.listdir(src)):
        if fn.endswith("-all"):
            continue
        raw = open(os.path.join(src, fn), "rb").read()[2:]  # drop the 2-byte frame length
        out.append((f"w-{fn}", b"w" + struct.pack(">QQq", lsn, lsn + 0x100, 768_000_000_000_000) + raw))
        lsn += 0x40
    out.append(("k-reply", b"k" + struct.pack(">Qq?", 0x16B3748, 768_000_000_000_000, True)))
    out.append(("k-noreply", b"k" + struct.pack(">Qq?", 0, -1, False)))
    out.append(("w-empty", b"w" + struct.pack(">QQq", 1, 2, 3)))
    out.append(("r-standby", b"r" + bytes(33)))
    return out


PGVALUES = [
    "t", "f", "true", "0", "-32768", "9223372036854775807", "-9223372036854775808", "007",
    "4294967295", "1.5", "1.2345678901234567e+20", "-0", "1e-05", "NaN", "Infinity", "-Infinity",
    "12345678901234567890.123456789", "0b7e4c8a-3f2d-4e1a-9c5b-6d7e8f9a0b1c",
    "tab\there \"q\" back\\slash\n", "caf\u00e9", "a\udcff", "192.168.0.1/32", "(1,2)",
    "2024-05-01 12:00:00", "2024-05-01 12:00:00.123456+02", "2024-05-01 12:00:00.5-03:30",
    "1999-12-31 23:59:60+00", "0001-01-01 00:00:00+00:53:28", "infinity", "-infinity",
    "2024-05-01 12:00:00 BC", "10000-01-01 00:00:00",
    '{"a": [1, 2.5, {"b": null}], "c": "\\u00e9"}', "[]", '"x"', "[[[[[[1]]]]]]", '{"a":1,}',
    "{1,2,NULL,3}", "{{1,2},{3,4}}", '{"a\\"b",NULL,"NULL",""}', "[1:2]={1,2}", "{}",
    '{t,f,"true"}', '{"2024-05-01 12:00:00+00",NULL}', "{NaN,Infinity,-1.5e3}",
    '{"{\\"a\\": 1}","[2]"}', "{{},{}}", "{ 1 , 2 }", "{a b}", "{{{{{{{1}}}}}}}",
]


def pgvalue():
    out = []
    for i, v in enumerate(PGVALUES):
        out.append((f"v{i:02d}", v.encode("utf-8", "surrogateescape")))
    return out


CONFIG_LINES = [
    "window=65535", "feedback_interval=500ms", "feedback_interval=99999999999999999999h",
    "slot_wait=0", "heartbeat=0s", "shutdown_timeout=10m", "log_level=debug", "log_format=json",
    "sink=discard", "slot=my_slot_2", "pg=host=db port=5432 user=hms password=s3cret dbname=ehr",
    "pg=postgresql://hms:s3cret@db:5432/ehr?password=x&sslmode=verify-full",
    "amqp=amqps://hms:pa%40ss@mq:5671/vhost", "bind=incidents.#,a.b", "queue_type=classic",
    "prefetch=100", "delivery_limit=5", "origin=site-a", "apply=public.apply_event",
    "retry_min=1s\nretry_max=500ms", "replication_timeout=0",
]


def config():
    ex = open(os.path.join(ROOT, "deploy", "hms-sync.ini.example"), "rb").read()
    out = [("example.ini", ex)]
    for i, l in enumerate(CONFIG_LINES):
        out.append((f"set{i:02d}", l + "\n"))
        out.append((f"ini{i:02d}", l.replace("=", " = ", 1) + " ; comment\n# c\n"))
    out.append(("bad-section", "[main]\nwindow = 5\n"))
    out.append(("repeat", "window = 5\nwindow = 6\n"))
    out.append(("noeq", "window\n"))
    out.append(("secret", "pg = password=x\n"))
    # A comma in a password leaves a node without a scheme (a fuzz finding).
    out.append(("amqp-comma-in-password", "amqp = amqps://hms:pa,40s@mq:5671/v\n"))
    return out


SAMPLE_EVENT = {
    "specversion": "1.0", "id": "00000000016B3748-0",
    "source": "/hms-ehr/7301234567890123456/ehr/public.incidents",
    "type": "gov.hms.ehr.IncidentCreated.v1", "subject": "42",
    "time": "2024-05-01T12:00:00.000000Z", "datacontenttype": "application/json",
    "dataschema": "https://hms.gov/schemas/ehr/IncidentCreated.v1.json",
    "lsn": "0/16B3748", "txid": 751, "version": 1,
    "updatedat": "2024-05-01T12:00:00.000000Z", "origin": "hms-sync",
    "data": {"id": 42, "occurred_at": "2024-05-01T11:59:00.000000Z", "region": "north",
             "severity": 3, "status": "open", "summary": "caf\u00e9", "reported_by": "a",
             "version": 1, "updated_at": "2024-05-01T12:00:00.000000Z", "origin": None},
}

SCHEMAS = [
    {"type": ["integer", "null"], "minimum": 1, "exclusiveMaximum": 10, "multipleOf": 0.5},
    {"type": "string", "pattern": "^\\d{3}-\\w+\\s*[\\d\\w]$", "minLength": 2, "maxLength": 9},
    {"format": "date-time"}, {"format": "uuid"},
    {"prefixItems": [{"const": 1}], "items": {"type": "string"}, "contains": {"const": "x"},
     "minContains": 1, "maxContains": 2, "uniqueItems": True, "minItems": 1, "maxItems": 4},
    {"properties": {"a": {"$ref": "#/$defs/p"}}, "patternProperties": {"^x-[a-z]+$": True},
     "additionalProperties": False, "required": ["a"], "$defs": {"p": {"enum": [1, "1", None]}}},
    {"propertyNames": {"pattern": "^[a-z]+$"}, "minProperties": 1, "maxProperties": 3,
     "dependentRequired": {"a": ["b"]}, "dependentSchemas": {"b": {"required": ["c"]}}},
    {"allOf": [True], "anyOf": [{"type": "object"}, {"type": "array"}],
     "oneOf": [{"not": {"type": "null"}}, False]},
    {"if": {"type": "object"}, "then": {"required": ["id"]}, "else": {"type": "string"}},
    {"$id": "https://example.com/s", "items": {"$ref": "https://example.com/s#"}},
    {"pattern": "[^\\]a-z]+|(ab)*c?"}, {"pattern": "(?=x)"}, True, False,
]


def jsonschema():
    out = []
    for fn in sorted(os.listdir(os.path.join(ROOT, "schemas"))):
        if fn.endswith(".json"):
            out.append((f"schema-{fn}", open(os.path.join(ROOT, "schemas", fn), "rb").read()))
    out.append(("event-created", json.dumps(SAMPLE_EVENT)))
    bad = dict(SAMPLE_EVENT, id="x", time="2024-13-01T00:00:00Z")
    out.append(("event-bad", json.dumps(bad)))
    out.append(("event-deleted", json.dumps(dict(SAMPLE_EVENT, type="gov.hms.ehr.IncidentDeleted.v1",
        dataschema="https://hms.gov/schemas/ehr/IncidentDeleted.v1.json", data={"id": 42}))))
    for i, s in enumerate(SCHEMAS):
        out.append((f"unit-{i:02d}", json.dumps(s)))
    if os.path.isdir(SUITE):
        n = 0
        for fn in sorted(os.listdir(SUITE)):
            if not fn.endswith(".json"):
                continue
            for gi, group in enumerate(json.load(open(os.path.join(SUITE, fn)))):
                text = json.dumps(group["schema"])
                if len(text) > 2000:
                    continue
                out.append((f"suite-{fn[:-5]}-{gi}", text))
                for ti, t in enumerate(group["tests"][:2]):
                    out.append((f"suite-{fn[:-5]}-{gi}-{ti}", json.dumps(t["data"])))
                n += 1
    return out


def rowtext():
    # Rows as PostgreSQL 15's record_out printed them: an incident, every
    # quoting rule, NULL next to the empty string.
    return [
        ("incident", '(6f1c1a7e-8d3e-4c55-9b0e-2a1d3c4b5a69,"2026-12-05 02:04:07.123456+00",'
                     'north,3,open,"Fall, ward 4",,7,"2026-12-05 02:04:07.5+00",hms-ehr)'),
        ("quoting", '("a,b",,"","x""y","back\\\\slash"," sp","(p)",plain,"new\nline","{1,2}",\u00e9)'),
        ("one-null", "()"),
        ("one-empty", '("")'),
    ]


if __name__ == "__main__":
    write("walproto", walproto())
    write("pgvalue", pgvalue())
    write("config", config())
    write("jsonschema", jsonschema())
    write("rowtext", rowtext())
