"""ChatML records for the data-file and sample-layout tests: the design's voice-cloning turns, cut or
given a system prompt as a test needs."""


def audio_part(url):
    return {"type": "audio", "audio_url": url}


def chatml_record(system=None, n_turns=4, target="t.wav"):
    messages = [] if system is None else [{"role": "system", "content": system}]
    messages += [
        {"role": "user", "content": "reference words"},
        {"role": "assistant", "content": audio_part("audio/r.wav")},
        {"role": "user", "content": "target words"},
        {"role": "assistant", "content": audio_part(target)},
    ][:n_turns]
    return {"messages": messages, "speaker": "spk1"}
