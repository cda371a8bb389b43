"""Chapter 16: DPO (qt.dpo) against trl 1.16's DPOTrainer (its loss, its logged rewards and one SGD step on the same
weights), log-probabilities of ragged batches padded on either side against each row alone, the start (policy ==
reference), the direction of the gradient, the course Trainer's loss_fn seam, and clear errors."""
import copy
import math

import pytest
import torch

from quanta_tissu import dpo
from quanta_tissu.gpt import GPT, GPTConfig
from quanta_tissu.training.trainer import Trainer, TrainConfig

VOCAB = 32
# (prompt, chosen, rejected) token ids: ragged prompts and completions, chosen longer in some pairs, shorter in others
PAIRS = [([5, 6, 7, 8, 9], [10, 11], [12, 13, 14, 15]),
         ([3], [20, 21, 22, 23, 24], [25]),
         ([1, 2, 3, 4, 5, 6, 7, 8], [9], [30, 31, 29])]


def tiny(seed: int = 0, std: float = 0.3) -> GPT:
    """A small Llama whose matrices are drawn with ``std``: sharper than GPT-2's 0.02, so that two seeds give
    clearly different distributions (with 0.02 every log-probability is close to -log V and the losses to ln 2)."""
    torch.manual_seed(seed)
    model = GPT(GPTConfig.llama(vocab_size=VOCAB, block_size=32, n_layer=2, n_head=4, n_embd=32, d_ff=64,
                                n_kv_heads=2, tie_weights=False))
    with torch.no_grad():
        for p in model.parameters():
            if p.dim() > 1:
                p.normal_(0.0, std)
    return model.eval()


def logprob_alone(model, prompt, completion) -> float:
    """log p(completion | prompt), one row, no padding, written out token by token."""
    ids = torch.tensor([prompt + completion])
    logps = model(ids)[0][0].double().log_softmax(-1)  # (T, V)
    return sum(logps[t - 1, ids[0, t]].item() for t in range(len(prompt), ids.size(1)))


# -- log-probabilities of completions ---------------------------------------------------------------------------------

@pytest.mark.parametrize("side", ["right", "left"])
def test_ragged_batch_padded_either_side_equals_each_row_alone(side):
    model = tiny()
    batch = dpo.preference_batch(PAIRS, pad_id=0, padding_side=side)
    with torch.no_grad():
        total = dpo.sequence_logprobs(model, batch.chosen_ids, batch.chosen_completion_mask,
                                      batch.chosen_attention_mask)
        mean = dpo.sequence_logprobs(model, batch.chosen_ids, batch.chosen_completion_mask,
                                     batch.chosen_attention_mask, average=True)
    alone = torch.tensor([logprob_alone(model, p, c) for p, c, _ in PAIRS], dtype=torch.float64)
    assert total.shape == (len(PAIRS),)
    assert torch.allclose(total.double(), alone, atol=1e-5, rtol=0)
    assert torch.allclose(mean.double(), alone / torch.tensor([len(c) for _, c, _ in PAIRS]), atol=1e-5, rtol=0)
    if side == "right":  # right padding needs no attention mask: a causal model never reads what comes after
        with torch.no_grad():
            unmasked = dpo.sequence_logprobs(model, batch.chosen_ids, batch.chosen_completion_mask)
        assert torch.allclose(unmasked, total, atol=1e-6, rtol=0)


@pytest.mark.parametrize("side", ["right", "left"])
def test_padding_tokens_change_nothing_and_prompt_tokens_only_condition(side):
    model = tiny()
    batch = dpo.preference_batch(PAIRS, pad_id=0, padding_side=side)
    other = dpo.preference_batch(PAIRS, pad_id=17, padding_side=side)
    assert not torch.equal(batch.rejected_ids, other.rejected_ids)
    with torch.no_grad():
        def logps(b, mask=None):
            return dpo.sequence_logprobs(model, b.rejected_ids, b.rejected_completion_mask if mask is None else mask,
                                         b.rejected_attention_mask)
        base = logps(batch)
        assert torch.allclose(logps(other), base, atol=1e-6, rtol=0)  # another padding token: the same numbers
        # the prompt is not scored: marking the prompt's tokens (after the first) adds exactly their log-probs
        prompt = batch.rejected_attention_mask.bool() & ~batch.rejected_completion_mask.bool()
        first = batch.rejected_attention_mask.int().argmax(1)  # (B,) the first real token: never scored
        prompt[torch.arange(len(PAIRS)), first] = False
        widened = logps(batch, batch.rejected_completion_mask | prompt.long())
        prompt_alone = torch.tensor([logprob_alone(model, p[:1], p[1:]) for p, _, _ in PAIRS], dtype=torch.float64)
        assert torch.allclose((widened - base).double(), prompt_alone, atol=1e-5, rtol=0)
        # and the prompt conditions the completion: another prompt token, another log-probability
        changed = batch._replace(rejected_ids=batch.rejected_ids.masked_fill(prompt, 4))
        assert not torch.allclose(logps(changed), base, atol=1e-3)


# -- the loss ---------------------------------------------------------------------------------------------------------

@pytest.mark.parametrize("loss_type", dpo.LOSS_TYPES)
def test_at_the_start_policy_equals_reference(loss_type):
    reference = tiny(1)
    policy = copy.deepcopy(reference)
    out = dpo.dpo_batch_loss(policy, reference, dpo.preference_batch(PAIRS), beta=0.1, loss_type=loss_type)
    expected = {"sigmoid": math.log(2), "hinge": 1.0, "ipo": (1 / (2 * 0.1)) ** 2}[loss_type]
    assert out.loss.dim() == 0 and out.loss.requires_grad
    assert abs(out.loss.item() - expected) < 1e-6 * max(1.0, expected)
    for rewards in (out.chosen_rewards, out.rejected_rewards, out.margins):
        assert rewards.shape == (len(PAIRS),) and not rewards.requires_grad
        assert torch.equal(rewards, torch.zeros(len(PAIRS)))


def test_loss_formulas_and_the_direction_of_their_gradient():
    pc, pr = torch.tensor([-3.0, -5.0, -2.0], requires_grad=True), torch.tensor([-4.0, -1.0, -6.0], requires_grad=True)
    rc, rr = torch.tensor([-3.5, -4.0, -2.5]), torch.tensor([-4.5, -2.0, -7.0])
    h = (pc - rc) - (pr - rr)  # 0, -2, -0.5: how much more the policy moved towards the chosen answer
    beta = 0.5
    expected = {"sigmoid": -torch.nn.functional.logsigmoid(beta * h), "hinge": torch.relu(1 - beta * h),
                "ipo": (h - 1 / (2 * beta)) ** 2}
    for loss_type in dpo.LOSS_TYPES:
        pc.grad = pr.grad = None
        out = dpo.dpo_loss(pc, pr, rc, rr, beta=beta, loss_type=loss_type)
        assert torch.allclose(out.loss, expected[loss_type].mean())
        assert torch.allclose(out.chosen_rewards, beta * (pc - rc)) and torch.allclose(out.rejected_rewards,
                                                                                       beta * (pr - rr))
        assert torch.allclose(out.margins, beta * h)
        out.loss.backward()
        assert (pc.grad < 0).all() and (pr.grad > 0).all(), loss_type  # descent: chosen up, rejected down
    pc.grad = pr.grad = None
    clipped = dpo.dpo_loss(pc, pr, rc, rr + 10, beta=beta, loss_type="hinge")  # h = 10, 8, 9.5: past the margin
    clipped.loss.backward()
    assert clipped.loss.item() == 0.0 and not pc.grad.any()  # hinge: pairs past 1 / beta stop pulling


def test_one_sgd_step_raises_the_margin():
    reference = tiny(1)
    policy = copy.deepcopy(reference).train()
    loss_fn = dpo.make_loss_fn(reference)
    batch = dpo.preference_batch(PAIRS)
    loss = loss_fn(policy, batch)
    loss.backward()
    assert all(p.grad is None for p in reference.parameters())  # only the policy learns
    torch.optim.SGD(policy.parameters(), lr=0.1).step()
    with torch.no_grad():
        after = dpo.dpo_batch_loss(policy, reference, batch)
    assert after.loss.item() < loss.item()
    assert (after.margins > 0).all()
    assert after.chosen_rewards.mean() > 0 > after.rejected_rewards.mean()


def test_loss_fn_drives_the_course_trainer():
    """The Trainer's seam (chapter 15): it slices a PreferenceBatch's rows like any tuple batch."""
    class Pairs:
        vocab_size, block_size = VOCAB, 16

        def get_batch(self, split, batch_size, generator, device):
            rows = torch.randint(len(PAIRS), (batch_size,), generator=generator).tolist()
            return dpo.preference_batch([PAIRS[i] for i in rows], padding_side="left")

    reference = tiny(1)
    policy = copy.deepcopy(reference)
    cfg = TrainConfig(max_steps=3, batch_size=4, lr=3e-3, warmup=0, weight_decay=0.0, eval_iters=1)
    trainer = Trainer(policy, Pairs(), cfg, loss_fn=dpo.make_loss_fn(reference, beta=0.1))
    losses = [trainer.train_step() for _ in range(3)]
    assert abs(losses[0] - math.log(2)) < 1e-6 and losses[-1] < losses[0]
    assert set(trainer.evaluate()) == {"train", "val"}


# -- against trl ------------------------------------------------------------------------------------------------------

CHARS = "abcdefghijklmnopqrstuvwxyz ."
TEXT_PAIRS = {"prompt": ["the cat", "a", "hello there.", "dog"],
              "chosen": [" sat.", " b c", " hi", " runs fast"],
              "rejected": [" ran away", " x", " go away now.", " no"]}
# beta per loss: trl computes log-probabilities in float32 whatever the model's dtype (its fused LM head), and sums
# them in float32, so its numbers carry about 1e-6 of rounding per sequence; these betas keep the loss's sensitivity
# to that rounding well under the 1e-6 asserted (IPO at trl's default 0.1 aims at 1 / (2 beta) = 5, a loss near 25
# whose float32 spacing alone is 2e-6)
TRL_BETA = {"sigmoid": 0.1, "hinge": 0.1, "ipo": 1.0}


def char_tokenizer():
    """A character tokenizer built in memory (no download): BPE without merges is one token per character."""
    from tokenizers import Tokenizer, models
    from transformers import PreTrainedTokenizerFast

    vocab = {"<pad>": 0, "</s>": 1, **{c: i + 2 for i, c in enumerate(CHARS)}}
    tokenizer = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    tokenizer.add_special_tokens(["<pad>", "</s>"])
    return PreTrainedTokenizerFast(tokenizer_object=tokenizer, eos_token="</s>", pad_token="<pad>")


@pytest.mark.parametrize("loss_type", dpo.LOSS_TYPES)
def test_matches_a_trl_dpo_trainer_step(tmp_path, monkeypatch, loss_type):
    """One real ``DPOTrainer.train()`` step (max_steps=1, plain SGD, no clipping, constant learning rate) on two
    transformers Llamas holding our policy's and reference's weights, on trl's own tokenization of text pairs (it
    appends EOS) and its own collator (right padding, prompts and completions ragged). Compared: the logged loss
    and rewards (trl logs batch means) and the gradient of every weight, (before - after) / lr.

    Both models run in float64, so ours is exact to ~1e-12; what remains is trl's float32 log-probabilities (see
    TRL_BETA). trl logs IPO's rewards from summed log-probabilities while its loss averages them per token; our
    IPO ``DPOOutput`` holds the averaged ones, so the rewards are compared with β · the summed log-ratios."""
    pytest.importorskip("trl")
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    from datasets import Dataset, disable_progress_bars
    from transformers import LlamaForCausalLM
    from trl import DPOConfig, DPOTrainer

    from quanta_tissu.interop.hf_llama import save_hf, state_to_hf

    disable_progress_bars()
    beta, lr = TRL_BETA[loss_type], 1.0
    policy, reference = tiny(0), tiny(1)
    hf = {}
    for name, model in (("policy", policy), ("reference", reference)):
        save_hf(model, tmp_path / name)
        hf[name] = LlamaForCausalLM.from_pretrained(tmp_path / name, dtype=torch.float64)
        model.double()
    args = DPOConfig(output_dir=str(tmp_path / "out"), report_to="none", use_cpu=True, bf16=False,
                     gradient_checkpointing=False, loss_type=[loss_type], beta=beta, max_length=None,
                     per_device_train_batch_size=len(TEXT_PAIRS["prompt"]), max_steps=1, learning_rate=lr,
                     lr_scheduler_type="constant", max_grad_norm=0.0, logging_steps=1, save_strategy="no",
                     disable_tqdm=True)
    assert args.label_smoothing == 0.0 and args.ld_alpha is None and args.f_divergence_type == "reverse_kl"
    trainer = DPOTrainer(model=hf["policy"], ref_model=hf["reference"], args=args, processing_class=char_tokenizer(),
                         train_dataset=Dataset.from_dict(TEXT_PAIRS),
                         optimizers=(torch.optim.SGD(hf["policy"].parameters(), lr=lr), None))
    before = {k: v.clone() for k, v in hf["policy"].state_dict().items()}
    trainer.train()
    logged = trainer.state.log_history[0]

    data = trainer.train_dataset  # trl's tokenization: prompt_ids, and completions ending in EOS
    pairs = [(row["prompt_ids"], row["chosen_ids"], row["rejected_ids"]) for row in data]
    assert len({len(p) for p, _, _ in pairs}) > 1 and len({len(c) for _, c, _ in pairs}) > 1  # ragged
    batch = dpo.preference_batch(pairs, pad_id=trainer.processing_class.pad_token_id)
    out = dpo.dpo_batch_loss(policy.train(), reference, batch, beta=beta, loss_type=loss_type)
    out.loss.backward()
    assert abs(out.loss.item() - logged["loss"]) < 1e-6

    with torch.no_grad():
        sums = {w: dpo.sequence_logprobs(m, torch.cat([batch.chosen_ids, batch.rejected_ids]),
                                         torch.cat([batch.chosen_completion_mask, batch.rejected_completion_mask]))
                for w, m in (("policy", policy), ("reference", reference))}
    chosen_logps, rejected_logps = sums["policy"].chunk(2)
    ratios = (sums["policy"] - sums["reference"]).chunk(2)
    assert abs(chosen_logps.mean().item() - logged["logps/chosen"]) < 1e-5  # sums of ~30 in float32: 2e-6 apart
    assert abs(rejected_logps.mean().item() - logged["logps/rejected"]) < 1e-5
    for key, rewards in (("chosen", ratios[0]), ("rejected", ratios[1]), ("margins", ratios[0] - ratios[1])):
        assert abs(beta * rewards.mean().item() - logged[f"rewards/{key}"]) < beta * 1e-5, key  # the same 2e-6
    if loss_type != "ipo":
        assert torch.allclose(out.chosen_rewards, beta * ratios[0]) and torch.allclose(out.margins,
                                                                                      beta * (ratios[0] - ratios[1]))

    grads = copy.deepcopy(policy)
    for g, p in zip(grads.parameters(), policy.parameters()):
        g.data = p.grad
    theirs = {k: (before[k] - v) / lr for k, v in hf["policy"].state_dict().items()}
    ours = state_to_hf(grads)
    assert set(ours) == set(theirs)
    worst = max((ours[k] - theirs[k]).abs().max().item() for k in ours)
    assert worst < 1e-5 and max(g.abs().max().item() for g in ours.values()) > 1e-2  # gradients that are not ~0


# -- clear errors -----------------------------------------------------------------------------------------------------

def test_clear_errors():
    model, x = tiny(), torch.zeros(2)
    with pytest.raises(ValueError, match=r"loss_type must be one of \('sigmoid', 'ipo', 'hinge'\), got 'dpo'"):
        dpo.dpo_loss(x, x, x, x, loss_type="dpo")
    for beta in (0, -0.1, float("nan")):
        with pytest.raises(ValueError, match="beta must be a number > 0"):
            dpo.dpo_loss(x, x, x, x, beta=beta)
    with pytest.raises(ValueError, match=r"one shape \(B,\).*\[\(2,\), \(3,\), \(2,\), \(2,\)\]"):
        dpo.dpo_loss(x, torch.zeros(3), x, x)
    with pytest.raises(ValueError, match="loss_type must be one of"):  # checked before any forward
        dpo.dpo_batch_loss(model, model, dpo.preference_batch(PAIRS), loss_type="Sigmoid")

    ids, mask = torch.tensor([[1, 2, 3], [4, 5, 6]]), torch.tensor([[0, 1, 1], [0, 0, 0]])
    with pytest.raises(ValueError, match=r"rows \[1\] have no completion token"):
        dpo.sequence_logprobs(model, ids, mask)
    with pytest.raises(ValueError, match=r"rows \[0\] start with a completion token"):
        dpo.sequence_logprobs(model, ids, torch.tensor([[1, 1, 1], [0, 1, 1]]))
    with pytest.raises(ValueError, match=r"rows \[1\] start with a completion token"):  # the first real token
        dpo.sequence_logprobs(model, ids, torch.tensor([[0, 1, 1], [0, 1, 1]]), torch.tensor([[1, 1, 1], [0, 1, 1]]))
    with pytest.raises(ValueError, match="completion_mask marks padding tokens"):
        dpo.sequence_logprobs(model, ids, torch.tensor([[0, 1, 1], [0, 1, 1]]), torch.tensor([[1, 1, 1], [1, 1, 0]]))
    with pytest.raises(ValueError, match=r"completion_mask must be a torch.Tensor of the shape of ids \(2, 3\), "
                                         r"got a torch.Tensor of torch.int64, shape \(2, 2\)"):
        dpo.sequence_logprobs(model, ids, mask[:, :2])
    with pytest.raises(ValueError, match="attention_mask must be a torch.Tensor of the shape of ids"):
        dpo.sequence_logprobs(model, ids, torch.tensor([[0, 1, 1], [0, 1, 1]]), torch.ones(3, 3, dtype=torch.long))
    with pytest.raises(ValueError, match="must hold only 0 and 1"):
        dpo.sequence_logprobs(model, ids, mask * 2)
    with pytest.raises(ValueError, match=r"ids must be a torch.Tensor of token ids, dtype torch.int64 or torch.int32, "
                                         r"got a torch.Tensor of torch.float32"):
        dpo.sequence_logprobs(model, ids.float(), mask)
    with pytest.raises(ValueError, match=r"got a numpy.ndarray of int64, shape \(2, 3\); convert it with torch.from_numpy"):
        dpo.sequence_logprobs(model, ids.numpy(), mask)  # the dtype alone would read as right: say it is an array
    with pytest.raises(ValueError, match=r"completion_mask must be a torch.Tensor .*got a numpy.ndarray"):
        dpo.sequence_logprobs(model, ids, mask.numpy())

    batch = dpo.preference_batch(PAIRS)._asdict()
    del batch["rejected_completion_mask"]
    with pytest.raises(ValueError, match=r"the batch lacks \['rejected_completion_mask'\]"):
        dpo.dpo_batch_loss(model, model, batch)
    short = dpo.preference_batch(PAIRS)._replace(rejected_ids=torch.zeros(3, 5, dtype=torch.long))
    with pytest.raises(ValueError, match=r"every field of the batch must have one shape.*'rejected_ids': \(3, 5\)"):
        dpo.dpo_batch_loss(model, model, short)
    with pytest.raises(ValueError, match="batch must be a PreferenceBatch, a tuple of its 6 fields"):
        dpo.dpo_batch_loss(model, model, dpo.preference_batch(PAIRS)[:4])
    with pytest.raises(ValueError, match=r"padding_side must be one of \('right', 'left'\), got 'middle'"):
        dpo.preference_batch(PAIRS, padding_side="middle")
    with pytest.raises(ValueError, match="none of them empty"):
        dpo.preference_batch([([], [1], [2])])
