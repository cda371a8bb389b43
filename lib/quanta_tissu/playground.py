"""An interactive sampler for JupyterLab (chapter 10): a prompt box, the knobs as sliders, streamed output.

Does: ``sampling_playground(model, tokenizer)`` returns an ipywidgets box; pressing "Generate" streams a
completion with ``qt.stream`` into its output area. It draws one sample at construction, so the page of a
book built from the notebook shows an example even though no kernel runs there.
Does not: import ipywidgets until called (an optional dependency: ``pip install quanta_tissu[widgets]``).
"""
from __future__ import annotations


def sampling_playground(model, tokenizer, prompt: str = "ROMEO:\n", max_new_tokens: int = 120, seed: int = 0):
    import ipywidgets as w

    from .inference import stream

    box = w.Textarea(value=prompt, description="prompt", layout=w.Layout(width="100%", height="4em"))
    sliders = dict(
        temperature=w.FloatSlider(value=0.8, min=0.0, max=2.0, step=0.05, description="temperature"),
        top_k=w.IntSlider(value=0, min=0, max=tokenizer.vocab_size, description="top-k"),
        top_p=w.FloatSlider(value=1.0, min=0.05, max=1.0, step=0.05, description="top-p"),
        min_p=w.FloatSlider(value=0.0, min=0.0, max=0.5, step=0.01, description="min-p"),
    )
    button = w.Button(description="Generate", button_style="primary")
    out = w.HTML()
    limit = model.cfg.block_size

    def run(_=None):
        text = box.value or "\n"
        n = min(max_new_tokens, limit - len(tokenizer.encode(text)[-limit:]))
        knobs = {k: s.value for k, s in sliders.items()}
        pieces = []
        for piece in stream(model, text[-limit:], n, tokenizer, seed=seed, **knobs):
            pieces.append(piece)
            out.value = f"<pre>{_escape(text + ''.join(pieces))}</pre>"

    button.on_click(run)
    run()  # a first sample, stored with the notebook
    return w.VBox([box, w.HBox(list(sliders.values())[:2]), w.HBox(list(sliders.values())[2:] + [button]), out])


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")
