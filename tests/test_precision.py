"""Chapter 12: the loss scaler against torch's GradScaler, and the precision switches."""
import copy

import pytest
import torch

from quanta_tissu.precision import LossScaler, autocast, float_range

BAD_STEPS = {3: float("inf"), 4: float("nan"), 40: float("inf"), 41: float("inf"), 120: float("nan")}


def _scaled_runs(steps=200, growth_interval=10, clip=False):
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
    ours_model, theirs_model = model, copy.deepcopy(model)
    ours_opt = torch.optim.AdamW(ours_model.parameters(), lr=1e-2)
    theirs_opt = torch.optim.AdamW(theirs_model.parameters(), lr=1e-2)
    ours = LossScaler(init_scale=2.0**10, growth_interval=growth_interval)
    theirs = torch.amp.GradScaler("cpu", init_scale=2.0**10, growth_interval=growth_interval)
    data = torch.Generator().manual_seed(1)
    history = []
    for step in range(steps):
        x = torch.randn(4, 8, generator=data)
        for m, opt, scaler in ((ours_model, ours_opt, ours), (theirs_model, theirs_opt, theirs)):
            loss = m(x).pow(2).mean()
            scaler.scale(loss).backward()
            if step in BAD_STEPS:  # an overflowed gradient, as fp16 would produce
                m[0].weight.grad[0, 0] = BAD_STEPS[step]
            if clip:
                scaler.unscale_(opt)
                torch.nn.utils.clip_grad_norm_(m.parameters(), 1.0)
            scaler.step(opt)
            scaler.update()
            opt.zero_grad(set_to_none=True)
        history.append((ours.scale_value, theirs.get_scale()))
    return ours_model, theirs_model, history


@pytest.mark.parametrize("clip", [False, True])
def test_loss_scaler_reproduces_grad_scaler(clip):
    ours_model, theirs_model, history = _scaled_runs(clip=clip)
    assert [a for a, _ in history] == [b for _, b in history], "the scales differ from GradScaler's"
    assert len({a for a, _ in history}) > 3, "the scale should both grow and back off in this run"
    for (name, a), b in zip(ours_model.named_parameters(), theirs_model.parameters()):
        assert torch.equal(a, b), f"{name} differs from the GradScaler run"


def test_loss_scaler_skips_overflowed_steps_and_state_round_trips():
    scaler = LossScaler(init_scale=8.0, growth_interval=2)
    p = torch.nn.Parameter(torch.ones(2))
    opt = torch.optim.SGD([p], lr=1.0)
    p.grad = torch.tensor([float("inf"), 1.0])
    assert not scaler.step(opt) and torch.equal(p, torch.ones(2))
    scaler.update()
    assert scaler.scale_value == 4.0
    clone = LossScaler()
    clone.load_state_dict(scaler.state_dict())
    assert clone.state_dict() == scaler.state_dict()
    with pytest.raises(ValueError, match="growth_factor"):
        LossScaler(growth_factor=0.5)


def test_autocast_and_ranges():
    with pytest.raises(ValueError, match="precision must be one of"):
        autocast("fp8")
    with autocast("bf16"):
        y = torch.ones(2, 2) @ torch.ones(2, 2)
    assert y.dtype == torch.bfloat16
    with autocast("fp32"):
        assert (torch.ones(2, 2) @ torch.ones(2, 2)).dtype == torch.float32
    fp16 = float_range(torch.float16)
    assert fp16["max"] == 65504 and fp16["smallest_subnormal"] == 2.0**-24
