"""Checks for chapter 17's exercises (serving), against ``qt.serving``'s and ``qt.watermark``'s conventions: server-sent
events ``data: <json>`` and a blank line, ending with ``data: [DONE]`` (``app.sse``); text held back by
max(len(stop)) - 1 characters and cut before the first stop string (``app.TextStream``); each row's used columns
right-aligned, in order, to the fullest row's count (``Scheduler.compact``); the watermark's z-score
(``watermark.detect``). The references are written out here so that grading needs neither fastapi nor a model."""
import json
import math
import numbers

import torch

from .. import watermark
from .core import CheckFailed


def _show(x, limit: int = 160) -> str:
    text = repr(x)
    return text if len(text) <= limit else text[:limit] + "..."


# -- parse_sse ----------------------------------------------------------------------------------------------------

def _sse(payload) -> str:
    """One event as ``qt.serving.app.sse`` writes it."""
    return f"data: {payload if isinstance(payload, str) else json.dumps(payload)}\n\n"


def _completion_chunk(i: int, text: str, reason=None) -> dict:
    return {"id": "cmpl-17", "object": "text_completion", "created": 1700000000 + i, "model": "tiny",
            "choices": [{"index": 0, "text": text, "logprobs": None, "finish_reason": reason}]}


def _payloads():
    return [_completion_chunk(0, "To"), _completion_chunk(1, " be,"), _completion_chunk(2, " or not"),
            _completion_chunk(3, " \"to\"\n"), _completion_chunk(4, "", "length")]


def _run_parse(fn, chunks, what: str, decode_hint: str, own: bool = False) -> list:
    """Call parse_sse; turn a json.loads failure into a message that names what was decoded (with ``own``, any
    failure but the "data:" prefix and [DONE] gets ``decode_hint``)."""
    try:
        got = fn(chunks)
    except json.JSONDecodeError as exc:
        doc = exc.doc if isinstance(exc.doc, str) else str(exc.doc)
        bare = doc.strip()
        if bare.startswith("data"):
            raise CheckFailed(f"{what}: you called json.loads on {_show(doc, 60)}: strip the \"data:\" field name "
                              "(and the one space after it) first; the payload is what follows it") from None
        if bare == "[DONE]" or bare.endswith("[DONE]"):
            raise CheckFailed(f"{what}: you called json.loads on [DONE]: it is not JSON but the end of the stream; "
                              "when an event's payload is [DONE], return the payloads so far") from None
        if own:
            raise CheckFailed(f"{what}: you called json.loads on {_show(doc, 80)}: {decode_hint}") from None
        if "\ndata:" in doc:
            raise CheckFailed(f"{what}: you called json.loads on {_show(doc, 80)}: this event's payload is written "
                              "over several \"data:\" lines; take the text after \"data:\" on EACH of them and join "
                              "those texts with \"\\n\"") from None
        if bare == "":
            raise CheckFailed(f"{what}: you called json.loads on an empty string: events are separated by a blank "
                              "line (\"\\n\\n\"), so split on it, not on single newlines, and decode only the text "
                              "of an event's data lines (skip the empty text after the last \"\\n\\n\")") from None
        if exc.msg == "Extra data":
            raise CheckFailed(f"{what}: json.loads found more than one payload in {_show(doc, 80)}: a chunk may hold "
                              "several events; split the text at each blank line (\"\\n\\n\") and decode each event "
                              "alone") from None
        raise CheckFailed(f"{what}: you called json.loads on {_show(doc, 80)}, which is not a whole payload: "
                          f"{decode_hint}") from None
    except TypeError as exc:
        if not isinstance(chunks, list):
            raise CheckFailed(f"{what}: raised TypeError ({exc}): chunks may be any iterable, here a generator (as "
                              "a network response is): loop over it with for; do not index it or take its "
                              "len") from None
        raise
    if got is None:
        raise CheckFailed(f"{what}: parse_sse returned None; did you forget to return the list?")
    if not isinstance(got, (list, tuple)):
        raise CheckFailed(f"{what}: parse_sse returned a {type(got).__name__}: return a list of the payloads")
    return list(got)


def _compare_payloads(got: list, expected: list, what: str, after_done=()) -> None:
    if got == expected:
        return
    if got and got[-1] == "[DONE]" and got[:-1] == expected:
        raise CheckFailed(f"{what}: your list ends with \"[DONE]\": it is not a payload but the end of the stream; "
                          "stop there without returning it")
    if after_done and got[:len(expected)] == expected and len(got) > len(expected):
        raise CheckFailed(f"{what}: you returned events that came after [DONE] ({_show(got[len(expected):], 80)}): "
                          "[DONE] ends the stream; return at once, ignoring anything after it")
    if [json.dumps(p) for p in expected] == got or [json.dumps(p) for p in expected] == [
            g.strip() if isinstance(g, str) else g for g in got]:
        raise CheckFailed(f"{what}: you returned each payload's JSON text: decode it with json.loads, so that a "
                          "payload is a dict")
    if len(got) < len(expected) and all(g in expected for g in got):
        missing = [p for p in expected if p not in got]
        raise CheckFailed(f"{what}: {len(expected) - len(got)} of {len(expected)} payloads are missing (the first "
                          f"missing: {_show(missing[0], 100)}): an event split across two chunks was lost. Keep the "
                          "unfinished text at the end of a chunk in a buffer, add the next chunk to it, and cut an "
                          "event off only when its blank line (\"\\n\\n\") has arrived")
    for i, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            raise CheckFailed(f"{what}: payload {i} should be {_show(e, 100)}, got {_show(g, 100)}")
    raise CheckFailed(f"{what}: expected {len(expected)} payloads, got {len(got)}: {_show(got)}")


def _cut(text: str, positions) -> list:
    out, start = [], 0
    for p in positions:
        out.append(text[start:p])
        start = p
    out.append(text[start:])
    return out


def check_parse_sse(fn) -> str:
    payloads = _payloads()
    events = [_sse(p) for p in payloads] + [_sse("[DONE]")]
    stream = "".join(events)

    got = _run_parse(fn, list(events), "one event per chunk",
                     "each chunk here is one whole event, \"data: <json>\\n\\n\"")
    _compare_payloads(got, payloads, "one event per chunk")

    got = _run_parse(fn, [stream], "the whole stream in one chunk",
                     "a chunk may hold several events; split the text at each blank line (\"\\n\\n\")")
    _compare_payloads(got, payloads, "the whole stream in one chunk")

    # cut inside "data:", inside the JSON, right after "data: ", between an event's "\n" and its blank line
    first, second = len(events[0]), len(events[0]) + len(events[1])
    cuts = [2, first + 17, first + len(events[1]) - 1, second + 6, second + len(events[2]) + 3,
            len(stream) - len(events[-1]) - len(events[-2]) + 30, len(stream) - 4]
    pieces = _cut(stream, sorted(set(cuts)))
    split_hint = ("an event split across two chunks was decoded in pieces. Keep the unfinished text at the end of "
                  "a chunk in a buffer, add the next chunk to it, and cut an event off only when its blank line "
                  "(\"\\n\\n\") has arrived")
    got = _run_parse(fn, list(pieces), "events split across chunks", split_hint)
    _compare_payloads(got, payloads, "events split across chunks")
    tiny = _cut(stream, range(1, len(stream), 7))  # 7 characters at a time: every event in several chunks
    got = _run_parse(fn, (c for c in tiny), "the stream 7 characters at a time (a generator)", split_hint)
    _compare_payloads(got, payloads, "the stream 7 characters at a time")

    long = {"id": "cmpl-17", "choices": [{"index": 0, "text": "Sigh no more,\nladies", "finish_reason": None}]}
    multi = "".join(f"data: {line}\n" for line in json.dumps(long, indent=1).split("\n")) + "\n"
    got = _run_parse(fn, [events[0], multi, events[1][:9], events[1][9:] + _sse("[DONE]")],
                     "an event whose payload spans several data lines",
                     "an event ends at a blank line (\"\\n\\n\"), not at each \"\\n\": here one event's JSON is "
                     "written over several \"data:\" lines; take each line's text after \"data:\" and join them with "
                     "\"\\n\" before json.loads (splitting on single newlines decodes a part of it)")
    _compare_payloads(got, [payloads[0], long, payloads[1]], "an event whose payload spans several data lines")

    late = _completion_chunk(9, "after the end")
    chunks = [": ping\n\n", "event: completion\nid: 7\n" + events[0], ": ping\n\n" + events[1],
              _sse("[DONE]") + _sse(late)]
    got = _run_parse(fn, chunks, "comments, other fields and an event after [DONE]",
                     "only lines that start with \"data:\" carry data: a comment (\": ping\") and other fields "
                     "(\"event: ...\", \"id: ...\") are ignored, and an event without data lines gives nothing",
                     own=True)
    _compare_payloads(got, payloads[:2], "comments, other fields and an event after [DONE]", after_done=True)

    dropped = [events[0], events[1], events[2][:25]]  # the connection dropped in the middle of an event
    got = _run_parse(fn, dropped, "a stream cut off in the middle of an event, without [DONE]",
                     "the connection dropped in the middle of the last event: an unfinished event (no blank line "
                     "yet) is dropped, not decoded; return the payloads of the complete events")
    _compare_payloads(got, payloads[:2], "a stream cut off in the middle of an event, without [DONE]")
    return (f"{len(payloads)} payloads from whole, merged and split chunks; multi-line data, comments, [DONE] and a "
            "dropped connection handled")


# -- safe_pieces --------------------------------------------------------------------------------------------------

def _pieces(tokens_text, stops, hold=None, cut_after=False, first_listed=False, flush=True) -> list:
    """``qt.serving.app.TextStream``'s pieces (the defaults), or a classic mistake's."""
    if hold is None:
        hold = max((len(s) - 1 for s in stops), default=0)
    out, text, sent, stopped = [], "", 0, False
    for piece in tokens_text:
        if stopped:
            out.append("")
            continue
        text += piece
        present = [s for s in stops if s in text]
        if present:
            if first_listed:
                s = present[0]
            else:
                s = min(present, key=text.find)
            cut = text.find(s) + (len(s) if cut_after else 0)
            text, stopped = text[:cut], True
            upto = len(text)
        else:
            upto = len(text) - hold
        upto = max(upto, sent)
        out.append(text[sent:upto])
        sent = upto
    out.append(text[sent:] if flush else "")
    return out


def _text(tokens_text, stops) -> str:
    return "".join(_pieces(tokens_text, stops))


def _check_pieces_case(fn, tokens_text, stops) -> str:
    what = f"safe_pieces({_show(tokens_text, 90)}, {stops!r})"
    try:
        got = fn(list(tokens_text), list(stops))
    except ValueError as exc:
        if not stops and "empty" in str(exc):
            raise CheckFailed(f"{what}: raised ValueError ({exc}): with no stop strings nothing is held back (0 "
                              "characters); max(..., default=0) does not fail on an empty list") from None
        raise
    if got is None:
        raise CheckFailed(f"{what}: returned None; did you forget to return the list of pieces?")
    if not isinstance(got, (list, tuple)) or not all(isinstance(g, str) for g in got):
        raise CheckFailed(f"{what}: return a list of strings (one per token, then the final flush), got "
                          f"{_show(got, 100)}")
    got, n = list(got), len(tokens_text)
    expected = _pieces(tokens_text, stops)
    text = "".join(expected)
    if len(got) == n:
        raise CheckFailed(f"{what}: you returned {n} entries, one per token: add the final flush, a last entry "
                          "with whatever was held back, so that it is not held forever (return len(tokens_text) + 1 "
                          "entries)")
    if len(got) != n + 1:
        raise CheckFailed(f"{what}: expected {n + 1} entries (one per token, then the final flush), got {len(got)}")
    joined = "".join(got)
    if joined != text:
        first_stop = min((s for s in stops if s in "".join(tokens_text)), key="".join(tokens_text).find,
                         default=None)
        if first_stop is not None and joined == text + first_stop:
            raise CheckFailed(f"{what}: your pieces add up to {joined!r}: you cut AFTER the stop string "
                              f"{first_stop!r}; cut before it: the stop string is not sent, the text is {text!r}")
        if joined == "".join(_pieces(tokens_text, stops, first_listed=True)):
            raise CheckFailed(f"{what}: your pieces add up to {joined!r}: you cut at the first stop string in the "
                              "list that occurs, not at the earliest one in the text; cut before the smallest "
                              f"position among all of them: {text!r}")
        for i in range(n):
            so_far = "".join(got[:i + 1])
            if not text.startswith(so_far) and so_far.startswith(text):
                extra = so_far[len(text):]
                if any(s.startswith(extra) for s in stops):
                    raise CheckFailed(f"{what}: after token {i} ({tokens_text[i]!r}) you had sent {so_far!r}, but "
                                      f"{extra!r} was the beginning of a stop string that completed later, and a piece "
                                      "once sent cannot be taken back: hold back the last max(len(s)) - 1 characters "
                                      "of the text until you know they do not start a stop string")
        if joined.startswith(text) and first_stop is not None and joined[len(text):] in "".join(tokens_text):
            raise CheckFailed(f"{what}: your pieces add up to {joined!r}: you went on sending after the stop string "
                              f"{first_stop!r} appeared; the completion ends there, so every later entry (the final "
                              f"flush too) is \"\", and the text is {text!r}")
        if text.startswith(joined):
            raise CheckFailed(f"{what}: your pieces add up to {joined!r}, the text is {text!r}: the held-back end "
                              f"{text[len(joined):]!r} was never sent; the final flush (the last entry) sends whatever "
                              "was held back, or it is held forever")
        raise CheckFailed(f"{what}: your pieces add up to {joined!r}; they should add up to the text cut before the "
                          f"first stop string, {text!r}")
    if got == expected:
        return what
    variants = [
        (_pieces(tokens_text, stops, hold=max((len(s) for s in stops), default=0)),
         "you held back len(stop) characters: len(stop) - 1 suffice (a stop string of length L that has not appeared "
         "yet has at most L - 1 of its characters in the text so far); hold back max(len(s)) - 1, no more: the client "
         "waits for every character you hold"),
        (_pieces(tokens_text, stops, hold=min((len(s) for s in stops), default=1) - 1),
         "you held back min(len(s)) - 1 characters, for the shortest stop string: the longest one may be starting "
         "too; hold back max(len(s)) - 1"),
        (_pieces(tokens_text, stops, hold=0),
         "you held nothing back: a stop string may be starting at the end of the text; hold back its last "
         "max(len(s)) - 1 characters until you know"),
    ]
    for wrong, message in variants:
        if got == wrong:
            raise CheckFailed(f"{what}: {message}. Expected {expected!r}, got {got!r}")
    for i, (g, e) in enumerate(zip(got, expected)):
        if g != e:
            when = "at the final flush" if i == n else f"after token {i} ({tokens_text[i]!r})"
            raise CheckFailed(f"{what}: {when} expected {e!r}, got {g!r}: send everything not sent yet except the "
                              "last max(len(s)) - 1 characters (all of it up to the cut once a stop string appears, "
                              f"then \"\"). Expected {expected!r}, got {got!r}")
    return what


def check_safe_pieces(fn) -> str:
    cases = [
        (["Hel", "lo", ",", " wor", "ld", "!", "\n", "\n", "USER", ":"], ["\n\n"]),  # a chat reply's blank line
        (["I", " am", "\n", "US", "ED", " to", " it", "."], ["\nUSER:"]),  # a false alarm, then the final flush
        (["Fine", ".", "<|", "end", "|>", " more"], ["<|end|>"]),  # begins in one piece, completes three later
        (["ab", "c\nd###", "e"], ["###", "\n"]),  # two stops in one piece: the earliest, not the first listed
        (["Once", " upon", "", " a", " time"], []),  # no stop strings: nothing held back
        (["", "\n", "\n", "x"], ["\n\n", "THE END"]),  # the stop string at the very start
        (["So", " long", " and", " END", "ING", " well", " END"], ["END.", "\n"]),  # "END" is not "END."
    ]
    for tokens_text, stops in cases:
        _check_pieces_case(fn, tokens_text, stops)
    return f"{len(cases)} streams: the pieces add up to the cut text, held back by max(len(stop)) - 1, then flushed"


# -- compact_columns ----------------------------------------------------------------------------------------------

def _compact(mask: torch.Tensor):
    """``Scheduler.compact``'s bookkeeping: each row's used columns right-aligned to the fullest row's count."""
    end = int(mask.sum(1).max()) if mask.numel() else 0
    new, moves = torch.zeros_like(mask), []
    for r in range(mask.shape[0]):
        cols = mask[r].nonzero().squeeze(1).tolist()
        new[r, end - len(cols):end] = 1
        moves.append(cols)
    return new, moves


def _last_used(mask: torch.Tensor) -> int:
    """One past the last column that any row uses (0 if none)."""
    used = mask.any(0).nonzero()
    return int(used.max()) + 1 if len(used) else 0


def _aligned(mask: torch.Tensor, where: str) -> torch.Tensor:
    """A classic mistake's new mask: each row's ones left-aligned, or right-aligned to the last column or to the
    last column in use."""
    out, C, used = torch.zeros_like(mask), mask.shape[1], _last_used(mask)
    for r in range(mask.shape[0]):
        n = int(mask[r].sum())
        if n:
            out[r, {"left": slice(0, n), "columns": slice(C - n, C), "used": slice(used - n, used)}[where]] = 1
    return out


def _check_compact_case(fn, mask: torch.Tensor, what: str) -> None:
    before = mask.clone()
    got = fn(mask)
    if not torch.equal(mask, before):
        raise CheckFailed(f"{what}: you changed mask in place: build a new mask (the caller still needs the old one "
                          "to move the keys and values)")
    if not isinstance(got, tuple) or len(got) != 2:
        raise CheckFailed(f"{what}: return a tuple (new_mask, moves), got {_show(got, 80)}")
    new, moves = got
    want_new, want_moves = _compact(mask)
    slots, C = mask.shape
    end = int(mask.sum(1).max())
    if not isinstance(new, torch.Tensor):
        raise CheckFailed(f"{what}: new_mask should be a tensor, got {type(new).__name__}")
    if new.shape != mask.shape:
        if new.shape == (slots, end):
            raise CheckFailed(f"{what}: new_mask has shape {tuple(new.shape)}: keep the mask's shape "
                              f"{tuple(mask.shape)} (the cache keeps its columns; those from end on are 0, room for "
                              "the next tokens)")
        raise CheckFailed(f"{what}: new_mask should have shape {tuple(mask.shape)}, got {tuple(new.shape)}")
    if new.dtype != mask.dtype:
        raise CheckFailed(f"{what}: new_mask should be {mask.dtype}, like mask, got {new.dtype}")
    try:
        moves = [[int(c) for c in row] for row in moves]
    except (TypeError, ValueError):
        raise CheckFailed(f"{what}: moves should be a list with one list of old column indices per row, got "
                          f"{_show(moves, 100)}") from None
    if len(moves) != slots:
        raise CheckFailed(f"{what}: moves should hold one list per row ({slots}), got {len(moves)}")
    if not torch.equal(new, want_new):
        used = _last_used(mask)
        named = [
            (_aligned(mask, "left"), "you left-aligned the rows: after compacting, the next decode step writes "
                                     f"every row's new token at column end = {end}, so each row's tokens must end "
                                     "just before it: right-align them, to columns end - n .. end - 1"),
            (_aligned(mask, "columns"), f"you right-aligned to the last column ({C}, the total number of columns): "
                                        f"align to end = the fullest row's count ({end}), the fewest columns that hold "
                                        "every row, so that the columns after it are free again"),
            (_aligned(mask, "used"), f"you right-aligned to the last column in use ({used}): align to end = the "
                                     f"fullest row's count ({end}), the fewest columns that hold every row; the "
                                     "holes are what compacting frees"),
        ]
        for value, message in named:
            if torch.equal(new, value):
                raise CheckFailed(f"{what}: {message}")
        if sorted(map(tuple, new.tolist())) == sorted(map(tuple, want_new.tolist())):
            raise CheckFailed(f"{what}: your rows are the right ones in the wrong slots: each row stays in its slot "
                              "(slot r is request r's), only its columns move")
        for r in range(slots):
            if int(mask[r].sum()) == 0 and int(new[r].sum()) != 0:
                raise CheckFailed(f"{what}: row {r} is empty (no tokens) but your new_mask gives it ones: an empty row "
                                  "stays all 0 (beware: x[-0:] is the whole row, not an empty slice; use end - n:end)")
        for r in range(slots):
            if not torch.equal(new[r], want_new[r]):
                raise CheckFailed(f"{what}: row {r} of new_mask should be {want_new[r].tolist()} (its "
                                  f"{int(mask[r].sum())} ones right-aligned to end = {end}), got {new[r].tolist()}")
    for r in range(slots):
        if moves[r] == want_moves[r]:
            continue
        n = len(want_moves[r])
        if n == 0:
            raise CheckFailed(f"{what}: row {r} is empty, so moves[{r}] should be [], got {moves[r]}")
        if sorted(moves[r]) == want_moves[r]:
            raise CheckFailed(f"{what}: moves[{r}] is {moves[r]}, out of order: a row's tokens keep their order "
                              "(the oldest first), so the token at column end - n + j came from the row's j-th used "
                              f"column: {want_moves[r]} (beware: argsort is not stable, and reversing changes the "
                              "order)")
        if moves[r] == list(range(end - n, end)):
            raise CheckFailed(f"{what}: moves[{r}] is {moves[r]}, the NEW columns: moves lists the OLD column each "
                              f"token comes from, {want_moves[r]}")
        raise CheckFailed(f"{what}: moves[{r}] should be {want_moves[r]} (the row's used columns, in order), got "
                          f"{moves[r]}")


def check_compact_columns(fn) -> str:
    holes = torch.tensor([[1, 1, 0, 0, 1, 1, 1, 0, 0, 0],   # 5 tokens
                          [0, 0, 0, 0, 0, 1, 0, 1, 1, 0],   # 3 tokens
                          [0, 0, 0, 0, 0, 0, 0, 0, 0, 0],   # an empty slot
                          [0, 1, 1, 0, 1, 0, 0, 1, 1, 1]])  # 6 tokens, the fullest: end = 6
    _check_compact_case(fn, holes, "compact_columns(a (4, 10) mask with holes and an empty row)")
    _check_compact_case(fn, torch.zeros(3, 5, dtype=torch.long), "compact_columns(every row empty)")
    done = torch.tensor([[0, 0, 1, 1, 0, 0], [1, 1, 1, 1, 0, 0], [0, 1, 1, 1, 0, 0]])
    _check_compact_case(fn, done, "compact_columns(a mask already compact: nothing moves)")
    g = torch.Generator().manual_seed(17)
    for i in range(4):
        mask = (torch.rand(5, 12, generator=g) < 0.4).long()
        mask[i % 5] = 0  # an empty row in each
        _check_compact_case(fn, mask, f"compact_columns(random (5, 12) mask {i})")
    return "right-aligned to the fullest row, order kept, empty rows empty; 7 masks"


# -- watermark_z --------------------------------------------------------------------------------------------------

def _number(got, name: str) -> float:
    if got is None:
        raise CheckFailed(f"{name} returned None; did you forget to return it?")
    if isinstance(got, torch.Tensor):
        if got.numel() != 1:
            raise CheckFailed(f"{name} returned a tensor of shape {tuple(got.shape)}: return one number, z")
        got = got.item()
    if isinstance(got, tuple):
        raise CheckFailed(f"{name} returned a tuple of {len(got)}: return z alone")
    if not isinstance(got, numbers.Real):
        raise CheckFailed(f"{name} should return a float, got {type(got).__name__}")
    return float(got)


def _greenlist(wm: watermark.Watermark):
    def greenlist(prev_id):
        if prev_id is None:
            raise CheckFailed("you called greenlist(None): the first token has no previous token, so it is not "
                              "scored; score tokens 1 .. len(ids) - 1, each with greenlist(ids[t - 1])")
        return set(wm.green_ids((int(prev_id),)).tolist())
    return greenlist


def _watermarked(wm: watermark.Watermark, n: int, p_green: float, seed: int) -> list:
    g = torch.Generator().manual_seed(seed)
    ids = [int(torch.randint(wm.vocab_size, (1,), generator=g))]
    for _ in range(n - 1):
        if float(torch.rand(1, generator=g)) < p_green:
            green = wm.green_ids((ids[-1],))
            ids.append(int(green[torch.randint(len(green), (1,), generator=g)]))
        else:
            ids.append(int(torch.randint(wm.vocab_size, (1,), generator=g)))
    return ids


def _z(green, T, gamma):
    return (green - gamma * T) / math.sqrt(T * gamma * (1 - gamma))


def check_watermark_z(fn) -> str:
    msgs = []
    for vocab, gamma, n, p_green, seed in ((40, 0.25, 30, 0.6, 1), (50, 0.25, 24, 0.0, 2), (32, 0.5, 20, 0.8, 3)):
        wm = watermark.Watermark(vocab_size=vocab, gamma=gamma, hashing_key=15485863 + seed)
        ids = _watermarked(wm, n, p_green, seed)
        gl = _greenlist(wm)
        expected = watermark.detect(torch.tensor(ids), wm).z
        what = f"watermark_z({n} ids, gamma={gamma})"
        got = _number(fn(list(ids), gl, gamma), "watermark_z")
        if abs(got - expected) <= 1e-6 * max(1.0, abs(expected)):
            msgs.append(f"{expected:+.2f}")
            continue
        T = n - 1
        green = sum(ids[t] in gl(ids[t - 1]) for t in range(1, n))
        wrap = green + (ids[0] in gl(ids[-1]))  # ids[t - 1] with t = 0 is ids[-1]
        same = sum(ids[t] in gl(ids[t]) for t in range(1, n))
        first = ("you scored the first token too (T = len(ids)): it has no previous token, so nothing chose its list "
                 "(and ids[t - 1] with t = 0 is ids[-1], the LAST token, in Python); score tokens 1 .. len(ids) - 1, "
                 "T = len(ids) - 1")
        wrong = [
            (_z(wrap, n, gamma), first),
            (_z(green, n, gamma), first),
            (_z(sum(ids[t] in gl(ids[t + 1]) for t in range(n - 1)), T, gamma),
             "you picked the green list with the NEXT token, greenlist(ids[t + 1]): the previous token chooses the "
             "list, so token t is green if ids[t] is in greenlist(ids[t - 1])"),
            (_z(same, T, gamma), "you picked the green list with the token itself, greenlist(ids[t]): the PREVIOUS "
                                 "token chooses the list, so token t is green if ids[t] is in greenlist(ids[t - 1])"),
            (_z(same + (ids[0] in gl(ids[0])), n, gamma),
             "you picked the green list with the token itself, greenlist(ids[t]), and scored the first token: token t "
             "(t >= 1) is green if ids[t] is in greenlist(ids[t - 1])"),
            ((green - gamma * T) / (T * gamma * (1 - gamma)), "you forgot the square root: divide by the standard "
                                                              "deviation sqrt(T gamma (1 - gamma)), not the variance"),
            ((green - (1 - gamma) * T) / math.sqrt(T * gamma * (1 - gamma)),
             "gamma and 1 - gamma are swapped: by chance a fraction gamma of the tokens is green, so the expected "
             "count is gamma * T"),
            ((green / T - gamma) / math.sqrt(gamma * (1 - gamma)), "you used the fraction green / T without "
                                                                   "multiplying by sqrt(T): z grows with the length "
                                                                   "of the text; use the count, (green - gamma T) / "
                                                                   "sqrt(T gamma (1 - gamma))"),
            ((gamma * T - green) / math.sqrt(T * gamma * (1 - gamma)), "the sign is flipped: z = (green - gamma T) / "
                                                                        "..., positive when there are MORE green "
                                                                        "tokens than chance gives"),
        ]
        for value, message in wrong:
            if abs(got - value) <= 1e-6 * max(1.0, abs(value)):
                raise CheckFailed(f"{what}: {message} (expected z = {expected:.4f}, got {got:.4f})")
        raise CheckFailed(f"{what}: expected z = {expected:.6f} ({green} green of T = {T} scored), got {got:.6f}")
    return "z = " + ", ".join(msgs) + " as qt.watermark.detect (watermarked, human-like, gamma 0.5)"


CHECKS = {
    "parse_sse": check_parse_sse,
    "safe_pieces": check_safe_pieces,
    "compact_columns": check_compact_columns,
    "watermark_z": check_watermark_z,
}
