// Every technique package of the workspace, imported for its registration line
// (`registerPeftMethod(...)`): `--adapter` folders are read, and `merge` and `train` work (each with
// the optimizer its technique registers), for each technique listed here. A new technique package is
// added here and to package.json's dependencies.
import '@peft/delta-lora';
import '@peft/lora';
import '@peft/lora-fa';
import '@peft/prefix';
import '@peft/vera';
