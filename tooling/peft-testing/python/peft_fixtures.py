"""What the PEFT-parity fixture generators of the @peft packages share (packages/*/fixtures/*.py).

The tiny base models committed by @peft/models, loading them as the fixtures expect, seeded token ids,
logits, rounding for expected.json, and loading an `ours-*` folder (adapters written by our TypeScript
code) into PEFT. A generator imports it by path, relative to its own file:

    sys.path.insert(0, str(Path(__file__).resolve().parents[3] / "tooling" / "peft-testing" / "python"))
"""

import hashlib
import json
import os
import sys
from pathlib import Path

import peft
import torch
import transformers
from peft import PeftModel
from transformers import AutoModelForCausalLM

REPOSITORY = Path(__file__).resolve().parents[3]
MODELS = REPOSITORY / "packages" / "models" / "fixtures"
TOLERANCE = 1e-4


def fix_string_hash():
    """Re-run this script with PYTHONHASHSEED=0: PEFT keeps target_modules in a set and saves it as a list."""
    if os.environ.get("PYTHONHASHSEED") != "0":
        os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, "PYTHONHASHSEED": "0"})


def versions():
    return {"torch": torch.__version__, "transformers": transformers.__version__, "peft": peft.__version__}


def sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def tensor_sha256(tensor):
    """sha256 of a float32 tensor's little-endian bytes, row-major."""
    return hashlib.sha256(tensor.detach().contiguous().to(torch.float32).numpy().tobytes()).hexdigest()


def rounded(values):
    """Nested lists of floats with 8 significant digits (float32 carries ~7.2)."""
    if isinstance(values, list):
        return [rounded(v) for v in values]
    return float(f"{values:.8g}")


def load_base(base):
    """A model fixture of @peft/models by folder name, in float32 with eager attention, in eval mode."""
    model = AutoModelForCausalLM.from_pretrained(MODELS / base, dtype=torch.float32, attn_implementation="eager")
    # Saved as base_model_name_or_path: a repository-relative name rather than this machine's path.
    model.name_or_path = f"packages/models/fixtures/{base}"
    return model.eval()


def token_ids(vocab, seed, rows=2, length=7):
    generator = torch.Generator().manual_seed(seed)
    return torch.randint(1, vocab, (rows, length), generator=generator).tolist()


def logits_of(model, ids, mask=None, positions=None):
    """Logits for token ids, with an attention mask of ones unless one is given."""
    ids = torch.tensor(ids)
    mask = torch.ones_like(ids) if mask is None else torch.tensor(mask)
    kwargs = {} if positions is None else {"position_ids": torch.tensor(positions)}
    with torch.no_grad():
        return model(input_ids=ids, attention_mask=mask, **kwargs).logits


def folder_size(folder):
    return sum(f.stat().st_size for f in folder.rglob("*") if f.is_file())


def load_ours(folder):
    """An `ours-*` folder loaded in PEFT: (expected.json, the PeftModel in eval mode, sha256 of each file read)."""
    expected = json.loads((folder / "expected.json").read_text())
    model = load_base(expected["base"])
    assert sha256(MODELS / expected["base"] / "model.safetensors") == expected["base_sha256"], "base model changed"
    peft_model = None
    checked_files = {}
    for adapter_name, adapter in expected["adapters"].items():
        sub = folder / adapter["folder"]
        for file in ("adapter_config.json", "adapter_model.safetensors"):
            checked_files[str((sub / file).relative_to(folder))] = sha256(sub / file)
        if peft_model is None:
            peft_model = PeftModel.from_pretrained(model, sub, adapter_name=adapter_name)
        else:
            peft_model.load_adapter(sub, adapter_name=adapter_name)
    peft_model.eval()
    return expected, peft_model, checked_files


def write_peft_check(folder, result):
    """Records PEFT's verdict on an `ours-*` folder in peft_check.json (read by the package's parity test)."""
    (folder / "peft_check.json").write_text(json.dumps(result, indent=1) + "\n")
