"""What the pymilter benchmark scripts share: reading a message file written by bench/lib/message-file.ts
(the messages back to back, their lengths in FILE.lengths.json) and timing a run after an untimed one."""
import json
import time


def read_messages(path):
    """The messages of the file, and the file's size in bytes."""
    with open(path, 'rb') as f:
        data = f.read()
    with open(path + '.lengths.json') as f:
        lengths = json.load(f)
    messages, offset = [], 0
    for n in lengths:
        messages.append(data[offset:offset + n])
        offset += n
    return messages, len(data)


def timed(run, messages):
    """run(messages) once untimed (as every case of the benchmark), then timed: (seconds, its result)."""
    run(messages)
    start = time.perf_counter()
    result = run(messages)
    return time.perf_counter() - start, result
