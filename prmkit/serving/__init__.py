"""prmkit's servers and the pieces they share (``prmkit.serve`` is the public entry).

    http.py         JSON errors, bounded request bodies, disconnect watching, request logs
    work.py         the model's one worker thread and its bounded, cancellable job queue
    startup.py      checks before serving (address, device, dtype, files); uvicorn
    openai_api.py   OpenAI's completions and chat: request checks, replies, stream chunks
    text_stream.py  completions' text as it grows, in pieces safe to stream
    policy.py       the policy server: a local causal LM behind the OpenAI API
"""
