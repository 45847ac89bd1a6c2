"""The bench's --peer run: the same training step in Hugging Face PEFT on PyTorch CPU.

Loads the bench's model folder with transformers (float32), applies each technique with the bench's
settings (PEFT's own LoRA, LoRA-FA optimizer, VeRA and prefix tuning; full fine-tuning with AdamW),
and times optimizer steps of the bench shape (batch x length tokens, causal-LM loss, gradient
clipping 1.0) on the given number of threads, in wall time and in process CPU time. Prints one JSON
object on the last line of stdout: {"torch": ..., "peft": ..., "threads": n, "methods": {name:
{"step_seconds_median": s, "step_cpu_seconds_median": s, "trainable_params": n} | {"error": "..."}}}.

Usage: python peft_step.py '<json spec>' where the spec holds model, batch, length, threads, steps,
warmup, seed and methods: [{name, config, lr}].

Or python peft_step.py --serve '<json spec>' with model, batch, length, threads, seed and one method
{name, config, lr}: builds it, prints {"ready": true, "torch", "peft", "threads", "trainable_params"}
on a line, then runs one step for each line "step" on stdin and prints {"seconds", "cpu_seconds"} on
a line; it ends at the end of stdin. The bench interleaves these steps with its own (the speed
checks), so that the machine's load hits both alike.
"""

import json
import statistics
import sys
import time


def build(name, config, lr, model_dir, torch, transformers, peft):
    model = transformers.AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32)
    model.config.use_cache = False
    if name == "full":
        params = [p for p in model.parameters() if p.requires_grad]
        return model, torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    config = dict(config)
    task_type = config.pop("task_type", "CAUSAL_LM")
    if name in ("lora", "lora-fa"):
        peft_config = peft.LoraConfig(task_type=task_type, **config)
    elif name == "vera":
        peft_config = peft.VeraConfig(task_type=task_type, **config)
    elif name == "prefix":
        peft_config = peft.PrefixTuningConfig(task_type=task_type, **config)
    else:
        raise ValueError(f"PEFT has no technique {name!r}")
    model = peft.get_peft_model(model, peft_config)
    if name == "lora-fa":
        from peft.optimizers import create_lorafa_optimizer

        optimizer = create_lorafa_optimizer(
            model, r=config["r"], lora_alpha=config["lora_alpha"], lr=lr, weight_decay=0.0
        )
    else:
        params = [p for p in model.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=lr, weight_decay=0.0)
    return model, optimizer


def step_runner(model, optimizer, spec, torch):
    """One optimizer step of the bench shape (fixed random ids), timed: (wall s, process CPU s)."""
    generator = torch.Generator().manual_seed(spec["seed"])
    vocab = model.config.vocab_size
    ids = torch.randint(0, vocab, (spec["batch"], spec["length"]), generator=generator)
    model.train()
    trainable = [p for p in model.parameters() if p.requires_grad]

    def step():
        start = time.perf_counter()
        cpu_start = time.process_time()
        optimizer.zero_grad(set_to_none=True)
        loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        return time.perf_counter() - start, time.process_time() - cpu_start

    return step, sum(p.numel() for p in trainable)


def time_steps(model, optimizer, spec, torch):
    step, trainable = step_runner(model, optimizer, spec, torch)
    times = []
    cpu_times = []
    for i in range(spec["warmup"] + spec["steps"]):
        elapsed, cpu = step()
        if i >= spec["warmup"]:
            times.append(elapsed)
            cpu_times.append(cpu)
    return statistics.median(times), statistics.median(cpu_times), trainable


def serve(spec, torch, transformers, peft):
    method = spec["method"]
    model, optimizer = build(method["name"], method["config"], method["lr"], spec["model"], torch, transformers, peft)
    step, trainable = step_runner(model, optimizer, spec, torch)
    ready = {"ready": True, "torch": torch.__version__, "peft": peft.__version__, "threads": torch.get_num_threads()}
    print(json.dumps({**ready, "trainable_params": trainable}), flush=True)
    for line in sys.stdin:
        if line.strip() != "step":
            raise ValueError(f"expected 'step', got {line.strip()!r}")
        seconds, cpu_seconds = step()
        print(json.dumps({"seconds": seconds, "cpu_seconds": cpu_seconds}), flush=True)


def main():
    serving = sys.argv[1] == "--serve"
    spec = json.loads(sys.argv[2] if serving else sys.argv[1])
    import torch
    import transformers
    import peft

    torch.set_num_threads(spec["threads"])
    torch.manual_seed(spec["seed"])
    if serving:
        serve(spec, torch, transformers, peft)
        return
    out = {"torch": torch.__version__, "peft": peft.__version__, "threads": torch.get_num_threads(), "methods": {}}
    for method in spec["methods"]:
        name = method["name"]
        try:
            model, optimizer = build(name, method["config"], method["lr"], spec["model"], torch, transformers, peft)
            seconds, cpu_seconds, trainable = time_steps(model, optimizer, spec, torch)
            out["methods"][name] = {
                "step_seconds_median": seconds,
                "step_cpu_seconds_median": cpu_seconds,
                "trainable_params": trainable,
            }
        except Exception as error:  # reported per technique, the others still run
            out["methods"][name] = {"error": f"{type(error).__name__}: {error}"}
        print(f"peer: {name} done", file=sys.stderr, flush=True)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
