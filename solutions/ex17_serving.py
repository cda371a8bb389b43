"""Chapter 17 exercises, solved."""
import json
import math

import torch


def parse_sse(chunks) -> list:
    payloads, buffer = [], ""
    for chunk in chunks:
        buffer += chunk  # an event may be split across chunks: keep the unfinished tail for the next one
        while "\n\n" in buffer:  # a blank line ends an event
            event, buffer = buffer.split("\n\n", 1)
            data = [line[5:].removeprefix(" ") for line in event.split("\n") if line.startswith("data:")]
            if not data:  # a comment (": ping") or fields without data
                continue
            text = "\n".join(data)
            if text == "[DONE]":  # the end of the stream, not JSON
                return payloads
            payloads.append(json.loads(text))
    return payloads  # the stream ended without [DONE]: an unfinished event in the buffer is dropped


def safe_pieces(tokens_text: list, stops: list) -> list:
    hold = max((len(s) - 1 for s in stops), default=0)  # a stop string's first L - 1 characters may be arriving
    pieces, text, sent, stopped = [], "", 0, False
    for piece in tokens_text:
        if stopped:
            pieces.append("")
            continue
        text += piece
        hits = [text.find(s) for s in stops if s in text]
        if hits:  # cut before the earliest stop string, send what is left of the text, and stop
            text, stopped = text[:min(hits)], True
            upto = len(text)
        else:
            upto = len(text) - hold
        upto = max(upto, sent)
        pieces.append(text[sent:upto])
        sent = upto
    pieces.append(text[sent:])  # the final flush: whatever was held back ("" after a stop)
    return pieces


def compact_columns(mask: torch.Tensor):
    counts = mask.sum(1)  # (slots,): each row's tokens
    end = int(counts.max()) if mask.numel() else 0
    new_mask, moves = torch.zeros_like(mask), []
    for r in range(mask.shape[0]):
        cols = mask[r].nonzero().squeeze(1).tolist()  # the row's columns, left to right
        n = len(cols)
        new_mask[r, end - n:end] = 1  # right-aligned to end (an empty slice when n = 0)
        moves.append(cols)
    return new_mask, moves


def watermark_z(ids: list, greenlist, gamma: float) -> float:
    T = len(ids) - 1  # the first token has no previous token: not scored
    green = sum(ids[t] in greenlist(ids[t - 1]) for t in range(1, len(ids)))
    return (green - gamma * T) / math.sqrt(T * gamma * (1 - gamma))
