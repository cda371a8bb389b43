"""Serving the model (chapter 17).

Modules:
- ``scheduler``: continuous batching on chapter 11's KV cache: requests join the running batch between decode
  steps and leave it when they finish; no web framework, no threads of its own beyond what a caller starts.
- ``app``: an OpenAI-compatible HTTP server on FastAPI (``/v1/completions``, ``/v1/chat/completions``,
  ``/generate``, ``/health``, a web page), streaming with server-sent events; fastapi and uvicorn are an optional
  extra (``pip install quanta_tissu[serve]``), imported only here.
Imports inference; nothing else imports this package.
"""
