"""What a training run prints and writes for a reader: no notices about nothing, numbers in words."""

import logging

from higgs_lora.train.recipe import TrainConfig, train


def test_a_run_prints_no_stock_notices_and_its_card_says_what_ran(data4, tmp_path, capfd):
    out = tmp_path / "run"
    train(
        TrainConfig(
            train_data=str(data4),
            output_dir=str(out),
            base_model="tiny",
            audio_tokenizer="tiny",
            batch_size=2,
            max_steps=2,
            max_tokens_per_batch=4000,
            mixed_precision="no",
            dataloader_num_workers=0,
            report_to="none",
        )
    )
    captured = capfd.readouterr()
    printed = captured.out + captured.err
    assert "max_steps is given" not in printed
    assert "Repo card metadata block" not in printed
    assert "every 500 steps" not in printed and "checkpoints  at the last step only" in printed
    assert "fp32 throughout (no mixed precision)" in printed
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "up to 4,000 padded tokens per device" in card and "batch 2 per device" not in card
    assert "fp32 (no mixed precision)" in card and "precision no" not in card


def test_only_the_known_notices_are_dropped(caplog):
    from higgs_lora.train.summary import quiet_known_notices

    quiet_known_notices()
    quiet_known_notices()  # twice: still one filter
    logger = logging.getLogger("transformers.trainer")
    assert len(logger.filters) == 1
    with caplog.at_level(logging.WARNING, logger="transformers.trainer"):
        logger.propagate, was = True, logger.propagate
        try:
            logger.warning("max_steps is given, it will override any value given in num_train_epochs")
            logger.warning("something else entirely")
        finally:
            logger.propagate = was
    assert [r.getMessage() for r in caplog.records] == ["something else entirely"]


def test_the_quick_test_names_no_billion_step_interval(tmp_path, capsys):
    from higgs_lora.cli import main

    assert main(["train", "--quick_test", "--output_dir", str(tmp_path / "q"), "--report_to", "none"]) == 0
    out = capsys.readouterr().out
    assert "1000000000" not in out and "at the last step only" in out
