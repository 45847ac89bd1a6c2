// Every technique package of the workspace, imported for its registration line
// (`registerPeftMethod(...)`): `--adapter` folders are read, and `merge` and `train` work, for each
// technique listed here. A new technique package is added here and to package.json's dependencies.
import '@peft/lora';
import '@peft/prefix';
