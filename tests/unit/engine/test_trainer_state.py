"""Trainer state helpers: the loss scaler across AMP settings."""

import torch

from scrnet.engine.trainer import load_scaler_state


def test_resume_with_another_amp_setting_gets_a_fresh_scaler():
    enabled = torch.amp.GradScaler("cpu", enabled=True)
    disabled = torch.amp.GradScaler("cpu", enabled=False)
    assert load_scaler_state(enabled, disabled.state_dict(), "fp16").startswith("the checkpoint was trained without")
    assert load_scaler_state(disabled, enabled.state_dict(), "bf16").startswith("the checkpoint was trained with")
    other = torch.amp.GradScaler("cpu", init_scale=8.0)
    assert load_scaler_state(enabled, other.state_dict(), "fp16") is None and enabled.get_scale() == 8.0
    assert load_scaler_state(disabled, {}, "none") is None
