"""Chapter 17 exercises: reading a server-sent event stream, streaming text safely past stop strings, compacting
a continuous batch's KV cache, and testing text for a watermark.

Fill in each function, then check your work from the course folder:

    python -m quanta_tissu.grade 17

Use the standard library and torch only (no quanta_tissu, no fastapi, no openai): the point is to write the ideas
yourself.

Conventions (``qt.serving``'s and OpenAI's): a streamed completion is a series of server-sent events, each one
``data: <json>`` followed by a blank line, and the stream ends with ``data: [DONE]``. The server holds back text
that may be the beginning of a stop string and cuts the text before the first stop string. The scheduler's KV
cache has one row per request and one column per position written; a row's mask is 1 on the columns it uses.
"""
import json
import math

import torch


def parse_sse(chunks) -> list:
    """The JSON payloads of a server-sent event stream, in order -> a list (of dicts, for OpenAI's chunks).

    chunks: an iterable of strings, the stream's text as it arrives from the network. The network does not respect
    events: one event may be split across two (or more) chunks, anywhere, even inside "data:", and one chunk may
    hold several events.

    The stream's format (the server writes ``f"data: {json.dumps(payload)}\\n\\n"`` for each payload):
    - an event is one or more lines, each ending with "\\n", followed by a blank line: events are separated by
      "\\n\\n", and an event is complete only once its blank line has arrived;
    - a line starting with "data:" carries data: its text is what follows "data:", without the one space after it
      (if there is one). An event may hold several data lines (a long payload written over several lines); its
      payload is their texts joined with "\\n", then decoded with json.loads;
    - other lines (a comment such as ": ping", or a field such as "event: ..." or "id: ...") are ignored, and an
      event without data lines gives nothing;
    - an event whose payload is the text [DONE] ends the stream: it is not JSON; return what you have, and ignore
      anything after it.
    If the chunks run out before [DONE] (the connection dropped), return the payloads of the complete events: an
    unfinished event at the end is dropped, not decoded."""
    raise NotImplementedError


def safe_pieces(tokens_text: list, stops: list) -> list:
    """The text pieces a server may send as tokens arrive -> a list of len(tokens_text) + 1 strings.

    tokens_text: the text of each new token, in order (strings, perhaps several characters, perhaps empty).
    stops: the stop strings (non-empty; the list may be empty). The completion's text is everything the tokens
    produced, cut just BEFORE the first stop string to appear in it (the stop string itself is never sent).

    Entry i is what the server sends after token i arrives (perhaps ""); the last entry is the final flush, sent
    when the completion ends. Rules (``qt.serving.app.TextStream``'s):
    - after token i, let text be the concatenation of tokens_text[:i + 1]. If any stop string occurs in text, cut
      text before the earliest occurrence of any of them (the smallest position, whatever their order in stops),
      send everything not sent yet up to the cut, and stop: every later entry, the final flush included, is "".
    - otherwise a stop string may be starting at the end of text: hold back exactly its last
      max(len(s) for s in stops) - 1 characters (0 when stops is empty) and send everything before them that was
      not sent yet. Hold back no more: a stop string of length L that has not appeared has at most L - 1 of its
      characters in the text so far, and whatever the client is not sent, it waits for.
    - the final flush sends whatever was held back and not sent yet ("" after a stop).
    So "".join(result) is the completion's text, and nothing sent is ever the beginning of a stop string that
    completes later (a piece once sent cannot be taken back)."""
    raise NotImplementedError


def compact_columns(mask: torch.Tensor):
    """Squeeze the holes out of a KV cache's columns -> (new_mask, moves).

    mask: (slots, columns) int64 of 0/1, one row per slot of the cache, one column per position written so far; 1
    where the row's request uses the column (its tokens, in order from left to right), 0 for a hole (a column
    written while the request was not there, or by a request that has left). Do not modify it.

    Let n_r be row r's number of ones and end = max over the rows of n_r (0 if every row is empty): the fewest
    columns that hold the fullest row. After compacting, the cache's length is end and the next decode step writes
    every row's new token at column end, so each row's tokens must end just before it: right-aligned.
    - new_mask: (slots, columns) int64, the same shape as mask; row r has ones at columns end - n_r .. end - 1 and
      zeros everywhere else (an empty row is all zeros).
    - moves: a list with one list per row: the old column of each of row r's tokens, in order, so that the token now
      at column end - n_r + j came from column moves[r][j]. Increasing; [] for an empty row.
    Keys were rotated by their positions when written and positions come from the mask, so moving a row's columns
    together (in order) changes nothing the model computes."""
    raise NotImplementedError


def watermark_z(ids: list, greenlist, gamma: float) -> float:
    """The z-score of a green-list watermark (Kirchenbauer et al. 2023) in a sequence of token ids -> a float.

    ids: the generated token ids (ints, at least two; no prompt). greenlist(prev_id) returns the set of green ids
    for the token that FOLLOWS prev_id: the previous token seeds the list. gamma: the fraction of the vocabulary
    that is green (0 < gamma < 1).
    Token t (t >= 1) is scored: it is green if ids[t] is in greenlist(ids[t - 1]). The first token has no
    previous token and is not scored, so T = len(ids) - 1 tokens are scored. With green the number of scored green
    tokens:

        z = (green - gamma * T) / sqrt(T * gamma * (1 - gamma))

    Human text lands in the green list about gamma of the time (z near 0); watermarked text far more often."""
    raise NotImplementedError
