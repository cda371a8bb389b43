"""Moving weights between the course's models and other implementations.

- ``numpy_gpt``: chapter 05's NumPy block into chapter 06's PyTorch ``Block`` (chapter 05).
- ``hf_gpt2``: Hugging Face ``GPT2LMHeadModel`` <-> the course's ``GPT`` (chapter 06).
- ``hf_peft``: peft LoRA adapter folders <-> the course's LoRA adapters (chapter 15).
- ``onnx_export``: the course's GPT as one ONNX file, with or without its KV cache, run by onnxruntime (chapter 17).
The models never import this package; it imports them. transformers is imported only inside
the functions that need it.
"""
