"""gpu-check's step timer: peak memory over the timed steps."""


def test_train_peak_is_over_the_steps_whatever_the_logs_do(monkeypatch):
    """gpu-check's step timer resets CUDA's peak counter once, when training begins, and reads it after
    every step; training's memory log in between must not reset it (it did at every log)."""
    from fake_cuda_memory import FakeCudaMemory

    from higgs_lora.bench.timing import step_timer
    from higgs_lora.train.metrics import memory_gb

    cuda = FakeCudaMemory().install(monkeypatch)
    cuda.allocate(2**30)  # model and optimizer state, resident
    timer = step_timer("cuda")
    timer.on_train_begin(None, None, None)
    for activations in (5, 2):  # GiB each step holds at its peak, freed after backward
        timer.on_step_begin()
        cuda.allocate(activations * 2**30)
        cuda.free(activations * 2**30)
        timer.on_step_end()
        memory_gb("cuda")  # Trainer logs every step (logging_steps=1)
    assert cuda.resets == 1  # gpu-check's own, at train begin
    assert timer.peak_gb == 6.0  # step 1's peak, not what stayed resident after the last log (1 GiB)
