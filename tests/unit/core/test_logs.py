"""Line framing, the log pump and the built-in sinks (cronium.core.logs, cronium.plugins.logs)."""
from __future__ import annotations

import io
import os
import random
import stat

import pytest
from cronium.core.logs import LineFramer, LogBatch, LogPump
from cronium.plugins import logs as logs_plugin
from cronium.plugins.logs import FileSink, TerminalSink, _entries


def frame(chunks, max_line=65536, take_every=None):
    """Feed (stream, bytes) chunks; returns every batch produced, in order."""
    framer = LineFramer(max_line)
    batches = []
    for i, (stream, data) in enumerate(chunks):
        framer.feed(stream, data)
        if take_every and i % take_every == 0:
            batches += framer.take()
    framer.finish()
    return batches + framer.take()


def per_stream(batches):
    out = {"stdout": b"", "stderr": b""}
    for b in batches:
        out[b.stream] += b.raw()
    return out


def lines_of(batches):
    return [(r.seq, r.stream, r.data, r.partial) for b in batches for r in b.records()]


# --- LineFramer ----------------------------------------------------------------------------------

def test_line_split_across_chunks_is_joined():
    batches = frame([("stdout", b"hel"), ("stdout", b"lo wo"), ("stdout", b"rld\nnext\n")])
    assert lines_of(batches) == [(0, "stdout", b"hello world\n", False), (1, "stdout", b"next\n", False)]


def test_consecutive_lines_of_one_stream_share_a_batch():
    batches = frame([("stdout", b"a\nb\n"), ("stdout", b"c\n")])
    assert len(batches) == 1
    assert batches[0].lines == (b"a", b"b", b"c") and batches[0].first_seq == 0 and batches[0].last_seq == 2


def test_one_sequence_across_stdout_and_stderr():
    batches = frame([("stdout", b"out1\n"), ("stderr", b"err1\nerr2\n"), ("stdout", b"out2\n"),
                     ("stderr", b"err3\n")])
    assert lines_of(batches) == [
        (0, "stdout", b"out1\n", False),
        (1, "stderr", b"err1\n", False),
        (2, "stderr", b"err2\n", False),
        (3, "stdout", b"out2\n", False),
        (4, "stderr", b"err3\n", False),
    ]
    assert [b.first_seq for b in batches] == [0, 1, 3, 4]


def test_unfinished_line_of_one_stream_does_not_block_the_other():
    batches = frame([("stdout", b"half"), ("stderr", b"whole\n"), ("stdout", b" done\n")])
    assert lines_of(batches) == [(0, "stderr", b"whole\n", False), (1, "stdout", b"half done\n", False)]


def test_long_line_becomes_partial_fragments_with_exact_concatenation():
    line = bytes(b for b in range(256) if b != 10) * 4 + b"tail"  # 1024 bytes, no newline inside
    batches = frame([("stdout", line[:300]), ("stdout", line[300:] + b"\nshort\n")], max_line=100)
    records = [r for b in batches for r in b.records()]
    fragments = records[:-1]
    assert all(r.partial for r in fragments[:-1])
    assert not fragments[-1].partial and fragments[-1].data.endswith(b"\n")
    assert all(len(r.data.rstrip(b"\n")) <= 100 for r in fragments)
    assert b"".join(r.data for r in fragments) == line + b"\n"
    assert records[-1].data == b"short\n" and not records[-1].partial
    assert [r.seq for r in records] == list(range(len(records)))


def test_long_line_inside_one_chunk_is_fragmented_too():
    batches = frame([("stderr", b"x" * 250 + b"\n" + b"ok\n")], max_line=100)
    records = [r for b in batches for r in b.records()]
    assert [len(r.data) for r in records] == [100, 100, 51, 3]
    assert [r.partial for r in records] == [True, True, False, False]
    assert per_stream(batches)["stderr"] == b"x" * 250 + b"\nok\n"


def test_memory_is_bounded_by_max_line():
    framer = LineFramer(max_line=64)
    rng = random.Random(7)
    for _ in range(500):
        framer.feed(rng.choice(["stdout", "stderr"]), bytes(rng.choice(b"abc\n") if rng.random() < 0.02 else 97
                                                         for _ in range(rng.randint(0, 300))))
        assert all(len(p) <= 64 for p in framer._pending.values())
        framer.take()


def test_raw_reproduces_exact_bytes_including_final_unterminated_line():
    out = b"line one\nline two\nno newline at the end"
    err = b"\xff\xfe binary \x00 bytes\n\xc3\x28 invalid utf-8\n"
    batches = frame([("stdout", out[:5]), ("stderr", err[:7]), ("stdout", out[5:]), ("stderr", err[7:])])
    assert per_stream(batches) == {"stdout": out, "stderr": err}
    last = [b for b in batches if b.stream == "stdout"][-1]
    assert last.terminated is False
    assert list(last.records())[-1].partial is True
    assert list(last.records())[-1].data == b"no newline at the end"


def test_empty_lines_are_kept():
    batches = frame([("stdout", b"\n\na\n\n")])
    assert [r.data for b in batches for r in b.records()] == [b"\n", b"\n", b"a\n", b"\n"]


def test_nothing_dropped_or_reordered_under_random_chunking():
    rng = random.Random(1234)
    for _ in range(150):
        max_line = rng.randint(1, 24)
        chunks = []
        expected = {"stdout": b"", "stderr": b""}
        for _ in range(rng.randint(0, 20)):
            stream = rng.choice(["stdout", "stderr"])
            data = bytes(rng.choice(b"ab\n\xff") for _ in range(rng.randint(0, 60)))
            chunks.append((stream, data))
            expected[stream] += data
        batches = frame(chunks, max_line=max_line, take_every=rng.randint(1, 4))
        assert per_stream(batches) == expected
        seq = 0
        for b in batches:
            assert b.first_seq == seq
            seq = b.last_seq + 1
            assert b"".join(r.data for r in b.records()) == b.raw()


def test_records_of_a_batch():
    batch = LogBatch("stderr", 10, (b"a", b"b", b"frag"), terminated=False)
    assert list(batch.records()) == [
        logs_record(10, "stderr", b"a\n", False),
        logs_record(11, "stderr", b"b\n", False),
        logs_record(12, "stderr", b"frag", True),
    ]
    assert batch.count == 3 and batch.last_seq == 12
    assert list(batch.records())[0].text == "a\n"
    assert LogBatch("stdout", 0, (b"x",), terminated=True).raw() == b"x\n"


def logs_record(seq, stream, data, partial):
    from cronium.core.model import LogRecord

    return LogRecord(seq, stream, data, partial)


# --- LogPump -------------------------------------------------------------------------------------

class ListSink:
    def __init__(self, name):
        self.name = name
        self.batches: list[LogBatch] = []
        self.closed = None

    def write(self, batches):
        self.batches.extend(batches)

    def close(self, ok):
        self.closed = ok


class FailingSink(ListSink):
    def __init__(self, name, fail_on_call=1):
        super().__init__(name)
        self.calls = 0
        self.fail_on_call = fail_on_call

    def write(self, batches):
        self.calls += 1
        if self.calls >= self.fail_on_call:
            raise OSError("disk full")
        super().write(batches)


def run_pump(chunks, sinks, **kwargs):
    pump = LogPump(iter(chunks), sinks, **kwargs)
    pump.start()
    assert pump.join(30), "the pump did not finish"
    assert pump.done.is_set()
    return pump


CHUNKS = [(1, b"a\nb"), (2, b"err\n"), (0, None), (1, b"\nc\n"), (0, None), (2, b"tail")]
EXPECTED = {"stdout": b"a\nb\nc\n", "stderr": b"err\ntail"}


def test_pump_fans_out_to_every_sink():
    one, two = ListSink("one"), ListSink("two")
    pump = run_pump(CHUNKS, [one, two])
    assert per_stream(one.batches) == EXPECTED
    assert lines_of(one.batches) == lines_of(two.batches)
    assert pump.lines == 5
    assert pump.error is None and pump.sink_errors == []
    pump.close_sinks(ok=True)
    assert one.closed is True and two.closed is True


def test_failing_sink_is_dropped_and_the_others_get_everything():
    seen = []
    before, bad, after = ListSink("before"), FailingSink("bad", fail_on_call=2), ListSink("after")
    pump = run_pump(CHUNKS, [before, bad, after], on_sink_error=lambda name, exc: seen.append((name, exc)))
    assert per_stream(before.batches) == EXPECTED
    assert per_stream(after.batches) == EXPECTED
    assert bad.calls == 2  # not called again after it failed
    assert bad not in pump.sinks and before in pump.sinks and after in pump.sinks
    assert [(n, type(e)) for n, e in pump.sink_errors] == [("bad", OSError)]
    assert [n for n, _ in seen] == ["bad"]


def test_broken_stream_keeps_what_arrived():
    def chunks():
        yield 1, b"first\nsecond"
        raise ConnectionResetError("engine went away")

    sink = ListSink("s")
    pump = LogPump(chunks(), [sink])
    pump.start()
    assert pump.join(30)
    assert isinstance(pump.error, ConnectionResetError)
    assert per_stream(sink.batches)["stdout"] == b"first\nsecond"


def test_close_errors_are_recorded():
    class BadClose(ListSink):
        def close(self, ok):
            raise RuntimeError("cannot close")

    good, bad = ListSink("good"), BadClose("badclose")
    pump = run_pump([(1, b"x\n")], [bad, good])
    pump.close_sinks(ok=False)
    assert good.closed is False
    assert [n for n, _ in pump.sink_errors] == ["badclose"]


def test_pump_respects_max_line():
    sink = ListSink("s")
    run_pump([(1, b"y" * 50 + b"\n")], [sink], max_line=20)
    assert [len(r.data) for b in sink.batches for r in b.records()] == [20, 20, 11]


# --- built-in sinks ------------------------------------------------------------------------------

def test_file_sink_writes_exact_bytes_with_mode_0600(tmp_path):
    out = b"one\n\xff\xfe\x00binary\nunterminated"
    err = b"warning\n"
    batches = frame([("stdout", out[:6]), ("stderr", err), ("stdout", out[6:])], max_line=4)
    path = tmp_path / "logs" / "exec_0123456789abcdef.log"
    sink = FileSink(path)
    sink.write(batches[:1])
    sink.write(batches[1:])
    sink.close(ok=True)
    assert path.read_bytes() == b"".join(b.raw() for b in batches)
    assert sorted(path.read_bytes()) == sorted(out + err)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600


class FakeTTY(io.BytesIO):
    def isatty(self):
        return True


def test_terminal_sink_keeps_stderr_separate():
    out, err = io.BytesIO(), io.BytesIO()
    sink = TerminalSink(out=out, err=err)
    sink.write(frame([("stdout", b"to out\n"), ("stderr", b"to err\n"), ("stdout", b"more\n")]))
    sink.close(ok=True)
    assert out.getvalue() == b"to out\nmore\n"
    assert err.getvalue() == b"to err\n"


def test_terminal_sink_colours_stderr_only_on_a_tty():
    out, err = io.BytesIO(), FakeTTY()
    sink = TerminalSink(out=out, err=err)
    sink.write(frame([("stdout", b"plain\n"), ("stderr", b"bad\n")]))
    assert out.getvalue() == b"plain\n"
    assert err.getvalue().startswith(b"\x1b[31m") and b"bad\n" in err.getvalue()


# --- Redis stream entries (pure) -----------------------------------------------------------------

@pytest.mark.parametrize("terminated", [True, False])
def test_entries_split_big_batches_into_whole_lines(terminated):
    limit = logs_plugin.REDIS_ENTRY_BYTES
    lines = tuple(bytes([65 + i % 26]) * 999 for i in range(1500))  # ~1.5 MB in 1000-byte lines
    batch = LogBatch("stdout", 42, lines, terminated)
    entries = list(_entries(batch))
    assert len(entries) >= 3
    assert b"".join(data for _, data, _ in entries) == batch.raw()
    expected_seq = 42
    for i, (seq, data, partial) in enumerate(entries):
        assert seq == expected_seq
        expected_seq += data.count(b"\n") + (1 if partial else 0)
        assert len(data) <= limit + 1000
        last = i == len(entries) - 1
        assert partial == (last and not terminated)
        assert data.endswith(b"\n") != partial
    assert expected_seq == batch.last_seq + 1


def test_entries_small_batch_is_one_entry():
    batch = LogBatch("stderr", 3, (b"a", b"b"), terminated=True)
    assert list(_entries(batch)) == [(3, b"a\nb\n", False)]
    fragment = LogBatch("stdout", 9, (b"frag",), terminated=False)
    assert list(_entries(fragment)) == [(9, b"frag", True)]
