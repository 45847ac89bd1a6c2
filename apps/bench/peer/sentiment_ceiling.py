"""How much sentiment a base model's features carry: longer fine-tuning runs in PyTorch than the bench's.

The bench's sentiment accuracies sit at chance with the built-in base model. This script checks that
the limit is the base model, not our training code, by fine-tuning the same folder with Hugging Face
transformers (and PEFT for LoRA) for many more sentences than the bench's 96, two ways:
  lm    the bench's formulation: "<sentence>\\nSentiment: positive|negative", loss on the label bytes,
        classified by comparing the two labels' log-likelihoods;
  head  a linear classifier on the mean of the last hidden states over the sentence (cross-entropy).
and `method` full (every weight trains), lora (r=8 on c_attn, PEFT) or frozen (head only; with `head`).
Byte-level models only (the built-in one). Data: the same UCI sentences (sentiment@5.0.2), shuffled
with a fixed seed: 600 test, the rest to train. Prints the accuracy on the test sentences four times
along the run.

Usage: python sentiment_ceiling.py <model-dir> <sentiment-fixtures-dir> lm|head full|lora|frozen <lr> <steps>
Run on 2026-11-29 with the built-in base model (apps/bench/README.md, "Sentiment"): every setting
stays within 47-56%, while word-presence naive Bayes reaches 66% from 96 of the same sentences.
"""

import json
import random
import sys
import time

import torch
from transformers import GPT2LMHeadModel

LABELS = [" negative", " positive"]
PROMPT = "\nSentiment:"


def sentences(fixtures):
    out = []
    for source in ("imdb", "yelp", "amazon"):
        with open(f"{fixtures}/{source}.json") as f:
            out += [(e["text"].strip(), e["class"]) for e in json.load(f)[:-1]]
    random.Random(42).shuffle(out)
    return out[:600], out[600:]


def pad(rows):
    n = max(len(ids) for ids, _ in rows)
    ids = torch.zeros(len(rows), n, dtype=torch.long)
    mask = torch.zeros(len(rows), n)
    for i, (r, m) in enumerate(rows):
        ids[i, : len(r)] = torch.tensor(r)
        mask[i, : len(m)] = torch.tensor(m, dtype=torch.float)
    return ids, mask


class LabelLikelihood(torch.nn.Module):
    """The bench's formulation: label log-likelihood after the prompt, bytes truncated from the start."""

    def __init__(self, lm):
        super().__init__()
        self.lm = lm

    def rows(self, text, label, length=128):
        prompt, answer = list((text + PROMPT).encode()), list(LABELS[label].encode())
        prompt = prompt[-(length + 1 - len(answer)) :]
        return prompt + answer, [0] * (len(prompt) - 1) + [1] * len(answer) + [0]

    def label_log_likelihood(self, batch):
        ids, mask = pad([self.rows(t, l) for t, l in batch])
        logp = torch.log_softmax(self.lm(ids[:, :-1]).logits, -1)
        return (logp.gather(-1, ids[:, 1:, None])[..., 0] * mask[:, :-1]).sum(1), mask[:, :-1].sum()

    def loss(self, batch):
        ll, count = self.label_log_likelihood(batch)
        return -ll.sum() / count

    def predict(self, texts):
        ll, _ = self.label_log_likelihood([(t, l) for t in texts for l in (0, 1)])
        return (ll.view(-1, 2)[:, 1] > ll.view(-1, 2)[:, 0]).long()


class MeanPooledHead(torch.nn.Module):
    def __init__(self, lm):
        super().__init__()
        self.lm = lm
        self.head = torch.nn.Linear(lm.config.n_embd, 2)

    def logits(self, texts):
        ids, mask = pad([(list(t.encode())[:128], [1] * min(len(t.encode()), 128)) for t in texts])
        h = self.lm.transformer(ids).last_hidden_state
        return self.head((h * mask[..., None]).sum(1) / mask.sum(1, keepdim=True))

    def loss(self, batch):
        return torch.nn.functional.cross_entropy(
            self.logits([t for t, _ in batch]), torch.tensor([l for _, l in batch])
        )

    def predict(self, texts):
        return self.logits(texts).argmax(-1)


def main(model_dir, fixtures, readout, method, lr, steps, batch=8):
    torch.set_num_threads(1)
    torch.manual_seed(0)
    test, train = sentences(fixtures)
    lm = GPT2LMHeadModel.from_pretrained(model_dir, dtype=torch.float32)
    if method == "lora":
        from peft import LoraConfig, get_peft_model

        lm = get_peft_model(
            lm, LoraConfig(r=8, lora_alpha=16, target_modules=["c_attn"], fan_in_fan_out=True)
        ).base_model.model
    elif method == "frozen":
        lm.requires_grad_(False)
    model = LabelLikelihood(lm) if readout == "lm" else MeanPooledHead(lm)
    params = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)

    def accuracy():
        model.eval()
        with torch.no_grad():
            right = sum(
                (model.predict([t for t, _ in test[i : i + 50]]) == torch.tensor([l for _, l in test[i : i + 50]]))
                .sum()
                .item()
                for i in range(0, len(test), 50)
            )
        model.train()
        return right / len(test)

    started = time.time()
    print(json.dumps({"readout": readout, "method": method, "lr": lr, "step": 0, "accuracy": accuracy()}), flush=True)
    for step in range(steps):
        loss = model.loss(train[(step * batch) % len(train) :][:batch])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        optimizer.step()
        if (step + 1) % max(1, steps // 4) == 0:
            print(
                json.dumps(
                    {"step": step + 1, "sentences": (step + 1) * batch, "loss": round(loss.item(), 4),
                     "accuracy": accuracy(), "seconds": round(time.time() - started)}
                ),
                flush=True,
            )


if __name__ == "__main__":
    if len(sys.argv) != 7:
        sys.exit(__doc__)
    main(sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], float(sys.argv[5]), int(sys.argv[6]))
