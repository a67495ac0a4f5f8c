#!/usr/bin/env python3
"""Queries over a `tubelet events --jsonl` file for Tests/System/inside.sh; exit 0 when the query holds.

  events.py FILE wait-start [--timeout S]                      an action start arrives
  events.py FILE wait-daemon TYPE [--after N] [--updated CAMERA] [--timeout S]
  events.py FILE wait-end-between LOW HIGH [--after N] [--timeout S]
        an end by score at >= LOW arrives after line N, and no end by score after line N is at >= HIGH
  events.py FILE wait-open [--timeout S]                       some action is open (started, not ended)
  events.py FILE open                                          prints the open actions' event ids
  events.py FILE ended-stopping ID...                          each ID has an end with reason stopping
"""
import argparse
import json
import sys
import time


def read(path, after=0):
    lines = []
    with open(path) as f:
        for number, line in enumerate(f, 1):
            if number <= after or not line.endswith("\n"):
                continue
            try:
                lines.append(json.loads(line))
            except ValueError:
                pass
    return lines


def actions(lines):
    return [e["message"] for e in lines if e.get("topic", "").endswith(".action")]


def open_ids(lines):
    started, ended = [], set()
    for m in actions(lines):
        if m["type"] == "start":
            started.append(m["event_id"])
        elif m["type"] == "end":
            ended.add(m["event_id"])
    return [i for i in started if i not in ended]


def wait(predicate, timeout):
    deadline = time.time() + timeout
    while True:
        result = predicate()
        if result is not None:
            return result
        if time.time() >= deadline:
            return False
        time.sleep(0.25)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("file")
    parser.add_argument("query")
    parser.add_argument("values", nargs="*")
    parser.add_argument("--after", type=int, default=0)
    parser.add_argument("--timeout", type=float, default=0)
    parser.add_argument("--updated")
    a = parser.parse_args()

    if a.query == "wait-start":
        ok = wait(lambda: True if any(m["type"] == "start" for m in actions(read(a.file))) else None, a.timeout)
    elif a.query == "wait-daemon":
        def found():
            for e in read(a.file, a.after):
                m = e["message"]
                if e["topic"] == "tubelet.daemon" and m.get("type") == a.values[0]:
                    return a.updated is None or a.updated in m.get("updated", [])
            return None
        ok = wait(found, a.timeout)
    elif a.query == "wait-end-between":
        low, high = float(a.values[0]), float(a.values[1])

        def found():
            ends = [m for m in actions(read(a.file, a.after)) if m["type"] == "end" and m.get("reason") == "score"]
            if any(m["score"] >= high for m in ends):
                print(f"an end by score at {max(m['score'] for m in ends):.3f} >= {high}", file=sys.stderr)
                return False
            return True if any(m["score"] >= low for m in ends) else None
        ok = wait(found, a.timeout)
    elif a.query == "wait-open":
        ok = wait(lambda: True if open_ids(read(a.file)) else None, a.timeout)
    elif a.query == "open":
        print(" ".join(open_ids(read(a.file))))
        ok = True
    elif a.query == "ended-stopping":
        ends = {m["event_id"]: m.get("reason") for m in actions(read(a.file)) if m["type"] == "end"}
        missing = [i for i in a.values if ends.get(i) != "stopping"]
        if missing:
            print(f"no end (reason stopping) for {missing}", file=sys.stderr)
        ok = not missing
    else:
        parser.error(f"unknown query {a.query}")
    sys.exit(0 if ok else 1)


if __name__ == "__main__":
    main()
